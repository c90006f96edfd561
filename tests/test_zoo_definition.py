"""The zoo definition: valid entries, the stated parameter balance holds for the built networks, the command a
manifest records is the training that runs, and demo.toml's zoo block is generated from zoo.toml."""

from __future__ import annotations

import argparse
import json
import re

import pytest

from smisbench.benchmark.paper import paper_tables
from smisbench.benchmark.spec import load_spec
from smisbench.errors import SmisbenchError
from smisbench.models.registry import model_config
from smisbench.zoo.definition import balance_report, load_zoo, parse_zoo, scaled_steps, settings_for

ZOO = load_zoo()


def test_every_entry_names_a_registered_model_and_a_valid_synthetic_config():
    assert len(ZOO.models) == 15 and ZOO.segmenter.id == "synthetic-fcn"
    table1 = {m.id for m in ZOO.rows_of("table1")}
    assert table1 == {"groupdnet", "vspade", "groupnet", "groupenc", "groupdec", "mulnet", "bicyclegan", "dscgan"}
    assert {m.id for m in ZOO.rows_of("table2")} == {"groupdnet", "bicyclegan", "dscgan", "spade", "pix2pixhd"}
    assert len(ZOO.rows_of("ablations")) == 6
    for m in ZOO.models:
        model_config(m.model, ZOO.dataset, **m.config)  # unknown fields raise


def test_the_stated_parameter_balance_holds_for_the_computed_counts():
    rows = balance_report(ZOO)
    assert all(r["G+E"] == r["G"] + r["E"] > 0 for r in rows)
    outside = [(r["id"], r["G+E"], r["band"]) for r in rows if not r["in_band"]]
    assert not outside, outside


def test_labels_are_the_paper_rows_of_their_tables():
    papers = paper_tables()
    for name, table in ZOO.tables.items():
        for m in ZOO.rows_of(name):
            assert m.label in papers[table.paper].rows, (name, m.label)


def _train_parser() -> argparse.ArgumentParser:
    from smisbench.training.cli import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    return parser


@pytest.mark.parametrize("ident", ["groupdnet", "vspade", "mulnet", "synthetic-fcn"])
def test_the_recorded_train_command_parses_to_the_config_that_runs(ident, tmp_path):
    from smisbench.training.cli import config_from_args

    settings = settings_for(ZOO, ident, 0.5)
    if settings.kind != "model":
        assert settings.steps == scaled_steps(ZOO.segmenter.steps, 0.5)
        return
    args = _train_parser().parse_args(settings.train_argv(tmp_path / "run"))
    parsed = config_from_args(args)
    ran = settings.train_config(tmp_path / "run")
    assert json.loads(parsed.to_json()) == {**json.loads(ran.to_json()), "progress": True}


def test_steps_scale():
    assert scaled_steps(2000, 0.01) == 20 and scaled_steps(5, 0.01) == 1 and scaled_steps(2000, 1.0) == 2000
    with pytest.raises(SmisbenchError):
        scaled_steps(10, 0)


def test_demo_spec_zoo_block_is_generated_from_zoo_toml():
    from importlib import resources

    from smisbench.reports.demo_spec import generated_block, zoo_models_toml

    text = resources.files("smisbench.benchmark").joinpath("specs", "demo.toml").read_text(encoding="utf-8")
    assert generated_block(text) == zoo_models_toml(ZOO), "regenerate demo.toml's block with zoo_models_toml()"
    spec = load_spec("demo")
    assert [m.id for m in spec.models] == [m.id for m in ZOO.models]
    assert all(m.checkpoint == f"{m.id}.pt" for m in spec.models)
    core = ("groupdnet", "vspade", "bicyclegan", "dscgan")  # zoo_seeds.toml: Table 1's core rows, 3 seeds
    text = resources.files("smisbench.benchmark").joinpath("specs", "zoo_seeds.toml").read_text(encoding="utf-8")
    assert generated_block(text) == zoo_models_toml(ZOO, ids=core, cells=False)
    seeds = load_spec("zoo_seeds")
    assert [m.id for m in seeds.models] == list(core) and seeds.eval_seeds == (0, 1, 2)
    assert {"kid", "precision_recall"} <= set(seeds.metrics)


def test_bad_zoo_definitions_name_the_entry():
    from importlib import resources

    text = resources.files("smisbench.zoo").joinpath("zoo.toml").read_text(encoding="utf-8")
    with pytest.raises(SmisbenchError, match="models\\[0\\]: balance 'nope'"):
        parse_zoo(text.replace('balance = "smis"', 'balance = "nope"', 1))
    with pytest.raises(SmisbenchError, match="table 'table9'"):
        parse_zoo(text.replace('tables = ["table1"]', 'tables = ["table9"]', 1))
    with pytest.raises(SmisbenchError, match="unknown key 'stpes'"):
        parse_zoo(re.sub(r"^steps = (\d+)$", r"stpes = \1", text, count=1, flags=re.M))
