"""Benchmark specs: shipped specs parse; every mistake names the bad key with its path; cell keys."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from benchmark_fakes import SMALL_SPEC
from smisbench.benchmark.cells import RunOptions, expand_cells, merge_protocol
from smisbench.benchmark.spec import (SpecError, load_spec, parse_seeds_option, parse_spec, shipped_specs,
                                      with_seeds)
from smisbench.errors import SmisbenchError

BASE = """
name = "t"
metrics = ["fid"]
[[datasets]]
name = "synthetic"
[[models]]
name = "groupdnet"
[[models]]
name = "vspade"
"""

CELLS = BASE + """
[[cells]]
model = "groupdnet"
dataset = "synthetic"
[[cells]]
model = "vspade"
dataset = "synthetic"
[[cells]]
model = "vspade"
dataset = "synthetic"
metrics = {bad}
"""


def error_of(text: str) -> SpecError:
    with pytest.raises(SpecError) as info:
        parse_spec(text, "test.toml")
    return info.value


def test_shipped_specs_parse_and_expand():
    counts = {name: len(expand_cells(load_spec(name), hasher=lambda p: None)) for name in shipped_specs()}
    assert counts == {"ablations": 6, "demo": 15, "table1": 8, "table2": 15, "zoo_seeds": 12}  # 4 models x 3 seeds
    demo = load_spec("demo")  # the zoo's entries (smisbench/zoo/zoo.toml), each scoring its shipped checkpoint
    assert [m.id for m in demo.models][:3] == ["groupdnet", "vspade", "groupnet"]
    assert all(m.train is None and m.checkpoint == f"{m.id}.pt" for m in demo.models)
    assert demo.datasets[0].name == "synthetic"
    assert set(demo.metrics) == {"fid", "mcsd_mocd", "lpips_diversity", "locality", "miou", "accuracy", "fps",
                                 "params"}


def test_shipped_spec_rows_match_paper_rows():
    from smisbench.benchmark.paper import paper_tables

    for name in ("table1", "table2", "ablations"):
        spec = load_spec(name)
        labels = {m.label for m in spec.models}
        assert labels == set(paper_tables()[name].rows), name
        datasets = {c.dataset for c in paper_tables()[name].columns}
        assert {d.id for d in spec.datasets} == datasets, name


@pytest.mark.parametrize("bad, key", [('"fid"', "cells[2].metrics"), ('["fid", "fidd"]', "cells[2].metrics[1]"),
                                      ("[]", "cells[2].metrics"), ('["fid", "fid"]', "cells[2].metrics")])
def test_bad_cell_metrics_name_the_key(bad, key):
    err = error_of(CELLS.replace("{bad}", bad))
    assert err.key == key
    assert str(err).startswith(f"test.toml: {key}:")


@pytest.mark.parametrize("edit, key, words", [
    (lambda t: t.replace('metrics = ["fid"]', 'metrcs = ["fid"]'), "metrcs", "not a known key"),
    (lambda t: t.replace('name = "t"', ""), "name", "missing"),
    (lambda t: t + '[protocol]\nn = "100"\n', "protocol.n", "integer"),
    (lambda t: t + "[protocol]\nn = 1\n", "protocol.n", "at least 2"),
    (lambda t: t + "[protocol]\nstats_cache = 1\n", "protocol.stats_cache", "boolean"),
    (lambda t: t + "[protocol]\nsegmenter_checkpoints = [\"a\", 2]\n", "protocol.segmenter_checkpoints", "string"),
    (lambda t: t + '[protocol]\nfid_dtype = "float16"\n', "protocol.fid_dtype", "not allowed"),
    (lambda t: t + "[protocol]\ngrid_rows = -1\n", "protocol.grid_rows", "at least 0"),
    (lambda t: t + '[protocol]\nmask_mode = "pixels"\n', "protocol.mask_mode", "not allowed"),
    (lambda t: t + "[protocol]\nimage_size = [64]\n", "protocol.image_size", "height, width"),
    (lambda t: t + "[protocol]\nsmis_samples = 3\n", "protocol.smis_samples", "not a known key"),
    (lambda t: t + "[protocol.extra]\nn = 3\n", "protocol.extra.n", "protocol field"),
    (lambda t: t.replace('name = "vspade"', 'name = "vspade"\ncheckpoint = 3'), "models[1].checkpoint", "string"),
    (lambda t: t.replace('name = "vspade"', 'name = "vspade"\nid = "groupdnet"'), "models[1].id", "used twice"),
    (lambda t: t.replace('name = "vspade"', 'name = "vspade"\ntrain = { steps = 0 }'), "models[1].train.steps",
     "at least 1"),
    (lambda t: t.replace('name = "vspade"', 'name = "vspade"\ntrain = { step = 5 }'), "models[1].train.step",
     "not a known key"),
    (lambda t: t.replace('name = "vspade"', 'name = "vspade"\ntrain = { batch_size = 5 }'), "models[1].train.steps",
     "missing"),
    (lambda t: t.replace('name = "synthetic"', 'name = "synthetic"\nsplit = 2'), "datasets[0].split", "string"),
    (lambda t: t + "[[cells]]\nmodel = \"nope\"\ndataset = \"synthetic\"\n", "cells[0].model", "no model"),
    (lambda t: t + '[[claims]]\ntext = "x"\nvalue = "mocd"\nmodel = "groupdnet"\nreference = "spade"\n'
                   "max_ratio = 0.5\n", "claims[0].reference", "no model"),
    (lambda t: t + '[[claims]]\ntext = "x"\nvalue = "mood"\nmodel = "groupdnet"\nreference = "vspade"\n'
                   "max_ratio = 0.5\n", "claims[0].value", "not allowed"),
    (lambda t: t.replace('name = "t"', 'name = "t"\nseed = true'), "seed", "integer"),
    (lambda t: t.replace('name = "t"', 'name = "t"\ndtype = "float64"'), "dtype", "not allowed"),
    (lambda t: t.replace('metrics = ["fid"]', 'metrics = ["she"]'), "metrics[0]", "unknown metric"),  # never computed
    (lambda t: t.replace('name = "t"', 'name = "t"\nseeds = 0'), "seeds", "at least 1"),
    (lambda t: t.replace('name = "t"', 'name = "t"\nseeds = []'), "seeds", "at least one seed"),
    (lambda t: t.replace('name = "t"', 'name = "t"\nseeds = [1, 1]'), "seeds", "twice"),
    (lambda t: t.replace('name = "t"', 'name = "t"\nseeds = [1, -2]'), "seeds", "at least 0"),
    (lambda t: t.replace('name = "t"', 'name = "t"\nseeds = [1, 2.5]'), "seeds", "integers"),
    (lambda t: t.replace('name = "t"', 'name = "t"\nseeds = "3"'), "seeds", "a count or an array"),
])
def test_mistakes_name_the_bad_key(edit, key, words):
    err = error_of(edit(BASE))
    assert err.key == key
    assert words in str(err)
    assert err.fix is None or isinstance(err.fix, str)


def test_unknown_key_error_lists_known_keys():
    err = error_of(BASE.replace('name = "vspade"', 'name = "vspade"\nchekpoint = "x"'))
    assert err.key == "models[1].chekpoint"
    assert "checkpoint" in err.fix


def test_toml_syntax_error_names_line():
    err = error_of(BASE + "[[models]\nname = 1\n")
    assert re.search(r"line \d+", str(err))


def test_load_spec_unknown_name_lists_shipped():
    with pytest.raises(Exception) as info:
        load_spec("tabel1")
    assert "table1" in str(info.value)


def test_load_spec_from_file(tmp_path: Path):
    path = tmp_path / "mine.toml"
    path.write_text(SMALL_SPEC)
    spec = load_spec(path)
    assert spec.name == "small" and spec.source == str(path)
    assert len(spec.sha256) == 64


def test_cell_keys_depend_on_content_not_labels(tmp_path: Path):
    spec = parse_spec(SMALL_SPEC)
    keys = [c.key for c in expand_cells(spec)]
    assert len(set(keys)) == 6  # every cell distinct (datasets differ in options)
    assert keys == [c.key for c in expand_cells(parse_spec(SMALL_SPEC))]  # stable
    relabelled = SMALL_SPEC.replace('label = "GroupDNet"', 'label = "GroupDNet (ours)"')
    assert [c.key for c in expand_cells(parse_spec(relabelled))] == keys
    reordered = SMALL_SPEC.replace('["fid", "mcsd_mocd", "params"]', '["params", "fid", "mcsd_mocd"]')
    assert [c.key for c in expand_cells(parse_spec(reordered))] == keys
    moved = expand_cells(spec, RunOptions(data_root=tmp_path))
    assert [c.key for c in moved] == keys  # where the data lives is not part of the key
    protocol = SMALL_SPEC.replace("n = 4", "n = 5")
    assert all(a != b for a, b in zip([c.key for c in expand_cells(parse_spec(protocol))], keys))
    on_gpu = expand_cells(spec, RunOptions(device="cuda"))
    assert all(a.key != b for a, b in zip(on_gpu, keys))


def test_cell_key_follows_checkpoint_content(tmp_path: Path):
    ckpt = tmp_path / "w.pt"
    text = SMALL_SPEC.replace('label = "VSPADE"', f'label = "VSPADE"\ncheckpoint = "{ckpt.name}"')
    options = RunOptions(checkpoint_root=tmp_path)
    missing = expand_cells(parse_spec(text), options)
    ckpt.write_bytes(b"one")
    first = expand_cells(parse_spec(text), options)
    ckpt.write_bytes(b"two!")
    second = expand_cells(parse_spec(text), options)
    vspade = [i for i, c in enumerate(first) if c.model.id == "vspade"]
    others = [i for i, c in enumerate(first) if c.model.id != "vspade"]
    for i in vspade:
        assert missing[i].checkpoint_sha256 is None
        assert len({missing[i].key, first[i].key, second[i].key}) == 3
    for i in others:
        assert missing[i].key == first[i].key == second[i].key


def test_protocol_layers_merge_in_order():
    text = BASE.replace('name = "synthetic"', 'name = "synthetic"\nprotocol = { n = 2, m = 2 }')
    text = text.replace('name = "vspade"', 'name = "vspade"\nprotocol = { m = 3 }')
    text += "[protocol]\nn = 5\nbatch_size = 4\n[protocol.extra]\nfoo = 1\n"
    text += '[[cells]]\nmodel = "vspade"\ndataset = "synthetic"\nprotocol = { batch_size = 9, extra = { bar = 2 } }\n'
    (cell,) = expand_cells(parse_spec(text))
    written = {key: cell.protocol[key] for key in ("n", "m", "batch_size", "extra")}
    assert written == {"n": 2, "m": 3, "batch_size": 9, "extra": {"foo": 1, "bar": 2}}
    assert cell.protocol["mask_mode"] == "image" and cell.protocol["fid_samples"] is None  # the defaults
    assert merge_protocol({"a": 1}, {"a": 2, "extra": {"x": 1}}) == {"a": 2, "extra": {"x": 1}}


def test_protocol_fields_are_the_evaluators():
    """Spec protocol names, types, defaults and allowed values are the evaluator's own definitions (one place)."""
    from smisbench.benchmark.spec import EXECUTOR_FIELDS, PROTOCOL_FIELDS
    from smisbench.metrics.protocol import protocol_fields

    set_by_executor = {"seed", "dtype", "device", "dataset_root", "split"}
    evaluator = {f.name: f for f in protocol_fields() if f.name not in set_by_executor}
    assert {name: f for name, f in PROTOCOL_FIELDS.items() if name not in EXECUTOR_FIELDS} == evaluator
    assert not set(EXECUTOR_FIELDS) & {f.name for f in protocol_fields()}


def test_unwritten_protocol_fields_get_the_evaluators_defaults_and_enter_the_key():
    """So the stored protocol names every setting, and a changed default (mask_mode) reruns a cell."""
    from smisbench.metrics.protocol import EvalProtocol

    (cell, *_) = expand_cells(parse_spec(BASE))
    defaults = EvalProtocol().to_dict()
    assert {k: v for k, v in cell.protocol.items() if k in defaults} == {
        k: v for k, v in defaults.items() if k not in ("seed", "dtype", "device", "dataset_root", "split")}
    assert cell.identity()["protocol"]["mask_mode"] == "image"
    lpips_map = expand_cells(parse_spec(BASE + '[protocol]\nmask_mode = "lpips_map"\n'))[0]
    assert lpips_map.key != cell.key


def _shipped_models():
    seen = set()
    for name in shipped_specs():
        for cell in expand_cells(load_spec(name), hasher=lambda path: None):
            key = (name, cell.model.id, cell.dataset.name)
            if key in seen:
                continue
            seen.add(key)
            yield pytest.param(name, cell.model.name, cell.dataset.name, cell.model.config, id="-".join(key))


@pytest.mark.parametrize("spec_name, model, dataset, config", list(_shipped_models()))
def test_shipped_spec_models_exist_with_their_config(spec_name, model, dataset, config):
    from smisbench.models.registry import model_config

    model_config(model, dataset, **config)  # raises for an unknown model, dataset config or config field


def test_protocol_docs_list_the_fields_as_defined():
    """docs/protocol.md renders the one definition of the fields; regenerate it with fields_markdown()."""
    from smisbench.benchmark.spec import EXECUTOR_FIELDS
    from smisbench.metrics.protocol import fields_markdown

    docs = Path(__file__).resolve().parents[1] / "docs" / "protocol.md"
    if not docs.is_file():
        pytest.skip(f"{docs} is not part of this installation")
    text = docs.read_text(encoding="utf-8")
    assert fields_markdown() in text and fields_markdown(tuple(EXECUTOR_FIELDS.values())) in text


def test_spec_toml_writes_back_every_shipped_spec_and_odd_values():
    """A spec composed in code is stored as TOML text: parse(spec_toml(spec)) must be the same spec."""
    import dataclasses

    from smisbench.benchmark.spec_toml import spec_toml

    odd = BASE + ('[[models]]\nid = "v2"\nname = "vspade"\nlabel = "say \\"hi\\"\\nnow"\nconfig = { ngf = 4 }\n'
                  'train = { steps = 3, batch_size = 2, options = { lr_g = 0.5, vgg = "none" } }\n'
                  'protocol = { n = 3, extra = { note = "x" } }\n'
                  "[protocol.extra]\nthreshold = 1e-9\nflag = true\n")
    specs = [load_spec(name) for name in shipped_specs()] + [parse_spec(odd, "odd.toml")]
    for spec in specs:
        again = parse_spec(spec_toml(spec, "a header\nof two lines"), "again")
        assert dataclasses.replace(again, text="", source="") == dataclasses.replace(spec, text="", source=""), spec.name


# ----------------------------------------------------------------------------- seeds
def test_seeds_expand_every_cell_into_k_cells_that_differ_only_in_seed():
    one = expand_cells(parse_spec(SMALL_SPEC))
    seeded = expand_cells(parse_spec(SMALL_SPEC.replace("seed = 3", "seed = 3\nseeds = 3")))
    assert len(seeded) == 3 * len(one) and [c.index for c in seeded] == list(range(18))
    for k, single in enumerate(one):
        group = seeded[3 * k:3 * k + 3]  # one model and dataset's seeds next to each other
        assert [c.seed for c in group] == [3, 4, 5]  # the spec's seed, then seed + 1, ...
        assert all(c.weights_seed == 3 for c in group)  # the model: built and trained with the spec's seed
        assert all(c.model_inputs() == single.model_inputs() and c.model == single.model for c in group)
        assert all((c.dataset, c.metrics, c.protocol) == (single.dataset, single.metrics, single.protocol)
                   for c in group)
        assert len({c.key for c in group}) == 3
        assert group[0].key == single.key  # the first seed's cell is the single-seed cell, reused
        assert group[1].title.endswith("seed 4") and not single.title.endswith("seed 3")
        identity = {"weights_sha256": "a" * 64, "code_sha256": "b" * 64}
        resolved = [c.resolved(identity) for c in group]  # keyed by the one model they all evaluate
        assert resolved[0].key == single.resolved(identity).key and len({c.key for c in resolved}) == 3
    listed = expand_cells(parse_spec(SMALL_SPEC.replace("seed = 3", "seed = 3\nseeds = [7, 3]")))
    assert [c.seed for c in listed[:2]] == [7, 3] and listed[1].key == one[0].key
    # a spec whose own seed is 4 trains another model: its cells are not the seed-4 replicates of seed 3
    other = expand_cells(parse_spec(SMALL_SPEC.replace("seed = 3", "seed = 4")))
    assert other[0].key != seeded[1].key


def test_seeds_option_overrides_the_spec():
    spec = parse_spec(SMALL_SPEC)
    assert spec.eval_seeds == (3,)
    assert parse_seeds_option("2", spec.seed) == (3, 4)
    assert parse_seeds_option("0,9", spec.seed) == (0, 9)
    three = with_seeds(spec, parse_seeds_option("3", spec.seed))
    assert three.eval_seeds == (3, 4, 5) and three.text == spec.text and len(expand_cells(three)) == 18
    for bad, words in (("0", "at least 1"), ("x", "not a number"), ("1,1", "twice"), ("1,", "not a number")):
        with pytest.raises(SmisbenchError, match=words) as info:
            parse_seeds_option(bad, 0)
        assert "--seeds 3" in info.value.fix
