"""The real cell executor's plumbing: dataset, model, checkpoint, training reuse, grid and provenance.

The metrics and training entry points are replaced by small stand-ins here (their own tests live
with them), so these tests check what the executor does with them.
"""

from __future__ import annotations

import io
import sys
import types
from pathlib import Path

import pytest
import torch

from smisbench.benchmark.cells import RunOptions, expand_cells
from smisbench.benchmark.executor import execute_cell
from smisbench.benchmark.runner import ExecutionContext, run_spec
from smisbench.benchmark.spec import parse_spec
from smisbench.benchmark.store import Store

SPEC = """
name = "exec"
metrics = ["params", "fps"]
[protocol]
grid_rows = 2
[[datasets]]
name = "synthetic"
options = { length = 4 }
[[models]]
name = "groupdnet"
label = "GroupDNet"
{extra}
"""


class Calls:
    def __init__(self):
        self.evaluate, self.train = [], []


@pytest.fixture
def stand_ins(monkeypatch):
    """Stand-ins for smisbench.metrics.evaluate.evaluate and smisbench.training.trainer.train."""
    import torch

    torch.set_num_threads(1)
    calls = Calls()

    def evaluate(model, dataset, dataset_config, metrics, protocol, device, *, stats_cache_dir=None):
        calls.evaluate.append({"stats_cache_dir": stats_cache_dir, "metrics": metrics, "protocol": protocol,
                               "device": str(device),
                               "training": model.training, "length": len(dataset), "config": dataset_config.name})
        count = sum(p.numel() for p in model.parts()["G"].parameters())
        probe = float(next(model.parameters()).detach().sum())  # shows which weights were evaluated
        return types.SimpleNamespace(values={"params": float(count), "fps": 1.0, "fps_fast": 1.0, "probe": probe},
                                     protocol={**protocol.to_dict(), "filled": 1},
                                     provenance={"weights": {"lpips-alex": "0" * 64}}, notes=["stand-in"])

    def train(config):
        from smisbench.models.checkpoints import save_bundle
        from smisbench.models.registry import build_model

        calls.train.append((config.steps, config.batch_size, config.dataset_options, config.device, config.seed,
                            config.model_overrides, config.vgg))
        torch.manual_seed(config.seed)
        model = build_model(config.model, config.dataset, **config.model_overrides)
        with torch.no_grad():
            next(model.parameters()).add_(1.0)  # a visible change the saved bundle must carry
        save_bundle(Path(config.out) / "model.pt", model, model.config)
        (Path(config.out) / "run.json").write_text('{"finished": {"step": %d}}' % config.steps)

    monkeypatch.setitem(sys.modules, "smisbench.metrics.evaluate", types.SimpleNamespace(evaluate=evaluate))
    import smisbench.metrics.registry as real_registry

    entries = real_registry.registered_entries()  # specs know every metric (loaded before the swap) ...
    monkeypatch.setitem(sys.modules, "smisbench.metrics.registry", types.SimpleNamespace(  # ... the evaluator 3
        metric_names=lambda: ["fid", "fps", "params"], registered_entries=lambda: entries))
    monkeypatch.setattr("smisbench.training.trainer.train", train)
    return calls


def cell_of(extra: str = "", checkpoint_root: Path = Path(".")):
    (cell,) = expand_cells(parse_spec(SPEC.replace("{extra}", extra)), RunOptions(checkpoint_root=checkpoint_root))
    return cell


def test_execute_cell_with_random_weights(stand_ins, tmp_path: Path):
    ctx = ExecutionContext(tmp_path / "artifacts")
    outcome = execute_cell(cell_of(), ctx)
    (call,) = stand_ins.evaluate
    assert call["metrics"] == ["params", "fps"] and call["device"] == "cpu" and call["training"] is False
    protocol = call["protocol"]
    assert (protocol.seed, protocol.dtype, protocol.device, protocol.split) == (0, "float32", "cpu", "test")
    assert protocol.dataset_root == 'synthetic:{"length":4}' and call["config"] == "synthetic"
    assert outcome.values["params"] > 0 and outcome.protocol["filled"] == 1
    assert outcome.model_config["dataset"] == "synthetic"
    assert outcome.weights_sha256 == {"lpips-alex": "0" * 64}
    assert outcome.provenance["model_weights"].startswith("random initialisation")
    assert outcome.provenance["threads"] == 1 and outcome.provenance["dtype"] == "float32"
    (artifact,) = outcome.artifacts
    assert artifact.kind == "smis_grid" and (ctx.artifacts_dir / artifact.path).is_file()


def test_training_budget_trains_once_and_reuses_the_result(stand_ins, tmp_path: Path):
    cell = cell_of('train = { steps = 3, batch_size = 2, options = { vgg = "none" } }')
    untrained = execute_cell(cell_of(), ExecutionContext(tmp_path / "other"))
    first = execute_cell(cell, ExecutionContext(tmp_path / "artifacts"))
    assert stand_ins.train == [(3, 2, {"length": 4}, "cpu", 0, {}, "none")]
    assert first.provenance["trained"] == "now" and len(first.provenance["checkpoint_sha256"]) == 64
    assert first.provenance["train_log"] == {"finished": {"step": 3}}
    # a new run (fresh context, e.g. after an interruption) finds the finished training instead of training again
    second = execute_cell(cell, ExecutionContext(tmp_path / "artifacts"))
    assert len(stand_ins.train) == 1
    assert second.provenance["trained"] == "reused"
    assert second.provenance["checkpoint_sha256"] == first.provenance["checkpoint_sha256"]
    assert second.values == first.values
    from smisbench.models.registry import build_model

    n = next(build_model("groupdnet", "synthetic").parameters()).numel()  # the stand-in trainer added 1 to each
    assert first.values["probe"] == pytest.approx(untrained.values["probe"] + n, rel=1e-5)


def test_other_ranks_never_train_and_never_draw_the_grid(stand_ins, tmp_path: Path, monkeypatch):
    """Under torchrun rank 0 trains while keying the cell and writes the grid; a follower only loads and evaluates."""
    from smisbench.errors import SmisbenchError
    from smisbench.metrics import sharding

    cell = cell_of('train = { steps = 3, batch_size = 2, options = { vgg = "none" } }')
    monkeypatch.setattr(sharding, "world", lambda: sharding.World(1, 2))
    with pytest.raises(SmisbenchError, match="rank 1 cannot find the model rank 0 trained"):
        execute_cell(cell, ExecutionContext(tmp_path / "artifacts"))
    assert stand_ins.train == []
    follower = execute_cell(cell_of(), ExecutionContext(tmp_path / "artifacts"))
    assert follower.artifacts == [] and not (tmp_path / "artifacts" / "grids").exists()


def test_unknown_training_option_is_named(stand_ins, tmp_path: Path):
    cell = cell_of("train = { steps = 3, options = { learning_rate = 1 } }")
    with pytest.raises(Exception, match="unknown training option 'learning_rate'"):
        execute_cell(cell, ExecutionContext(tmp_path / "artifacts"))


def test_unavailable_metric_is_noted_not_invented(stand_ins, tmp_path: Path):
    text = SPEC.replace('metrics = ["params", "fps"]', 'metrics = ["params", "miou"]').replace("{extra}", "")
    (cell,) = expand_cells(parse_spec(text))
    outcome = execute_cell(cell, ExecutionContext(tmp_path / "artifacts"))
    assert stand_ins.evaluate[0]["metrics"] == ["params"]
    assert "miou" not in outcome.values
    assert any("'miou' is not available" in note for note in outcome.notes)


@pytest.mark.parametrize("extra", ["", 'train = { steps = 3, batch_size = 2, options = { vgg = "none" } }'])
def test_seeds_score_one_model_with_other_codes(stand_ins, tmp_path: Path, extra: str):
    """`seeds = 3`: three cells, one model (the same weights, trained once), evaluated with seeds 0, 1, 2."""
    from smisbench.benchmark.executor import identify_cell

    text = SPEC.replace("{extra}", extra).replace('name = "exec"', 'name = "exec"\nseeds = 3')
    cells = expand_cells(parse_spec(text))
    ctx = ExecutionContext(tmp_path / "artifacts")
    identities = [identify_cell(cell, ctx) for cell in cells]
    assert identities[0] == identities[1] == identities[2]
    outcomes = [execute_cell(cell.resolved(identity), ctx) for cell, identity in zip(cells, identities)]
    assert [call["protocol"].seed for call in stand_ins.evaluate] == [0, 1, 2]  # the codes' seed
    assert len({o.values["probe"] for o in outcomes}) == 1  # the weights evaluated are the same
    assert [t[4] for t in stand_ins.train] == ([0] if extra else [])  # trained once, with the spec's seed
    # a fresh context (the next run) builds the same model again for a later seed
    again = identify_cell(cells[2], ExecutionContext(tmp_path / "artifacts"))
    assert again == identities[0] and len(stand_ins.train) == (1 if extra else 0)


def test_checkpoint_bundle_is_loaded_and_keyed(stand_ins, tmp_path: Path):
    import torch

    from smisbench.models.checkpoints import save_bundle
    from smisbench.models.registry import build_model, model_config

    model = build_model("groupdnet", "synthetic")
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(0.01)
    save_bundle(tmp_path / "w.pt", model, model_config("groupdnet", "synthetic"))
    cell = cell_of('checkpoint = "w.pt"', tmp_path)
    assert cell.checkpoint_sha256 is not None
    outcome = execute_cell(cell, ExecutionContext(tmp_path / "artifacts"))
    assert outcome.provenance["model_weights"]["format"] == "smisbench bundle"
    missing = cell_of('checkpoint = "absent.pt"', tmp_path)
    with pytest.raises(Exception, match="does not exist"):
        execute_cell(missing, ExecutionContext(tmp_path / "artifacts"))


def test_runner_with_real_executor_records_provenance(stand_ins, tmp_path: Path):
    with Store(tmp_path / "s.sqlite") as store:
        summary = run_spec(parse_spec(SPEC.replace("{extra}", "")), store, execute_cell, progress=False,
                           stream=io.StringIO())
        assert summary.ok
        cell = store.cell(store.finished_cell(summary.cells[0].key))
        assert cell["model_config"]["dataset"] == "synthetic"
        assert cell["weights_sha256"] == {"lpips-alex": "0" * 64}
        assert cell["versions"]["torch"] and cell["device_name"].startswith("cpu")
        assert cell["threads"] == 1 and cell["notes"] == ["stand-in"]
        assert store.artifacts(cell["cell_id"], "smis_grid")


def run_quietly(spec, store):
    return run_spec(spec, store, execute_cell, progress=False, stream=io.StringIO())


def test_rerun_after_the_models_weights_change_recomputes(stand_ins, tmp_path: Path, monkeypatch):
    """A randomly initialised model whose initialisation changed is computed again, not reported as reused."""
    from smisbench.models import family, layers

    spec = parse_spec(SPEC.replace("{extra}", ""))
    with Store(tmp_path / "s.sqlite") as store:
        first = run_quietly(spec, store)
        assert len(first.computed) == 1
        identical = run_quietly(spec, store)
        assert len(identical.reused) == 1 and len(stand_ins.evaluate) == 1
        monkeypatch.setattr(family, "xavier_init", lambda module: layers.xavier_init(module, gain=0.05))
        changed = run_quietly(spec, store)
        assert len(changed.computed) == 1 and len(stand_ins.evaluate) == 2
        old, new = (store.cell(store.finished_cell(s.cells[0].key))["provenance"]["model_identity"]
                    for s in (first, changed))
        assert old["weights_sha256"] != new["weights_sha256"] and old["code_sha256"] == new["code_sha256"]
        assert "smisbench.models.groupdnet" in new["code_modules"]


def test_rerun_after_the_trained_weights_change_recomputes(stand_ins, tmp_path: Path):
    from smisbench.models.checkpoints import load_bundle, save_bundle

    spec = parse_spec(SPEC.replace("{extra}", 'train = { steps = 3, batch_size = 2, options = { vgg = "none" } }'))
    with Store(tmp_path / "s.sqlite") as store:
        assert len(run_quietly(spec, store).computed) == 1
        identical = run_quietly(spec, store)
        assert len(identical.reused) == 1 and len(stand_ins.train) == 1 and len(stand_ins.evaluate) == 1
        (bundle,) = (store.artifacts_dir / "training").glob("*/model.pt")
        model, _ = load_bundle(bundle)  # the training folder now holds other weights (trained again, edited)
        with torch.no_grad():
            next(model.parameters()).mul_(2.0)
        save_bundle(bundle, model, model.config)
        changed = run_quietly(spec, store)
        assert len(changed.computed) == 1 and len(stand_ins.train) == 1 and len(stand_ins.evaluate) == 2


def test_dry_run_keys_cells_by_their_models_and_trains_nothing(stand_ins, tmp_path: Path):
    spec = parse_spec(SPEC.replace("{extra}", 'train = { steps = 3, batch_size = 2, options = { vgg = "none" } }'))
    with Store(tmp_path / "s.sqlite") as store:
        out = io.StringIO()
        run_spec(spec, store, execute_cell, dry_run=True, stream=out, progress=False)
        assert "to run (train 3 steps first)" in out.getvalue() and stand_ins.train == []
        run_quietly(spec, store)
        out = io.StringIO()
        run_spec(spec, store, None, dry_run=True, stream=out, progress=False)  # the built-in executor by default
        assert "1 cached, 0 to run" in out.getvalue() and len(stand_ins.train) == 1


def test_harness_refuses_a_bundle_of_another_model(stand_ins, tmp_path: Path):
    from smisbench.errors import WeightsError
    from smisbench.models.checkpoints import save_bundle
    from smisbench.models.registry import build_model, model_config

    save_bundle(tmp_path / "w.pt", build_model("vspade", "synthetic"), model_config("vspade", "synthetic"))
    cell = cell_of('checkpoint = "w.pt"', tmp_path)
    with pytest.raises(WeightsError, match="is a vspade/synthetic bundle, not groupdnet/synthetic"):
        execute_cell(cell, ExecutionContext(tmp_path / "artifacts"))


PIX2PIXHD_SPEC = """
name = "p2p"
metrics = ["params"]
[[datasets]]
name = "synthetic"
options = { length = 2 }
[[models]]
name = "pix2pixhd"
checkpoint = "checkpoints/local_release"
"""


def test_harness_reads_the_config_off_an_official_release_folder(stand_ins, tmp_path: Path):
    """A local-enhancer release (the label2city_1024p kind, at tiny widths) loads strictly in the harness."""
    from smisbench.models.registry import build_model

    source = build_model("pix2pixhd", "synthetic", n_local_enhancers=1)
    release = tmp_path / "checkpoints" / "local_release"
    release.mkdir(parents=True)
    torch.save({f"module.{k}": v for k, v in source.netG.state_dict().items()}, release / "latest_net_G.pth")
    (cell,) = expand_cells(parse_spec(PIX2PIXHD_SPEC), RunOptions(checkpoint_root=tmp_path))
    outcome = execute_cell(cell, ExecutionContext(tmp_path / "artifacts"))
    weights = outcome.provenance["model_weights"]
    assert weights["format"] == "official parts" and weights["config_from_checkpoint"]["n_local_enhancers"] == 1
    assert outcome.model_config["n_local_enhancers"] == 1
    assert outcome.values["params"] == sum(p.numel() for p in source.netG.parameters())
    from smisbench.weights import state_dict_digest

    digest = state_dict_digest({f"netG.{k}": v for k, v in source.netG.state_dict().items()})
    assert outcome.provenance["model_identity"]["weights_sha256"] == digest  # what was loaded is what is keyed


def read_listing(path: Path) -> dict[str, tuple[int, ...]]:
    out = {}
    for line in path.read_text().splitlines():
        name, shape = line.split(" ", 1)
        out[name] = tuple(int(s) for s in shape.strip("()").split(",") if s.strip())
    return out


def table2_pix2pixhd_cityscapes(tmp_path: Path, official_keys: Path, make):
    """Table 2's pix2pixHD Cityscapes cell with a label2city_1024p-layout file where its spec points."""
    from smisbench.benchmark.spec import load_spec

    listing = read_listing(official_keys / "pix2pixhd_label2city_1024p_G.txt")
    spec = load_spec("table2")
    (model,) = [m for m in spec.models if m.id == "pix2pixhd_cs"]
    release = tmp_path / model.checkpoint
    release.mkdir(parents=True)
    torch.save({k: make(shape) for k, shape in listing.items()}, release / "latest_net_G.pth")
    cells = expand_cells(spec, RunOptions(checkpoint_root=tmp_path, data_root=tmp_path, device="cpu"))
    (cell,) = [c for c in cells if c.model.id == "pix2pixhd_cs"]
    return cell


def test_table2_pix2pixhd_cityscapes_cell_fits_the_label2city_1024p_layout(tmp_path: Path, official_keys: Path):
    """Shape-only (meta tensors): the cell's checkpoint, model and dataset, as the harness passes them."""
    from smisbench.models.loader import check_checkpoint

    cell = table2_pix2pixhd_cityscapes(tmp_path, official_keys, lambda s: torch.empty(s, device="meta"))
    assert cell.checkpoint_sha256 is not None and cell.dataset.name == "cityscapes"
    report, inferred = check_checkpoint(cell.checkpoint_path, cell.model.name, cell.dataset.name,
                                        overrides=cell.model.config)
    assert report.fits, report.describe()
    assert inferred["ngf"] == 32 and inferred["n_local_enhancers"] == 1


@pytest.mark.slow
def test_table2_pix2pixhd_cityscapes_cell_loads_label2city_1024p_through_the_harness(
        stand_ins, tmp_path: Path, official_keys: Path, monkeypatch):
    """The real thing: 182 M random parameters in the official key layout, loaded and scored by execute_cell."""
    from smisbench.datasets_config import get_dataset_config

    generator = torch.Generator().manual_seed(0)
    cell = table2_pix2pixhd_cityscapes(tmp_path, official_keys, lambda s: torch.randn(s, generator=generator) * 0.02)
    items = _Items(get_dataset_config("cityscapes"))  # no Cityscapes here: the model is what is tested
    monkeypatch.setattr("smisbench.benchmark.executor._dataset", lambda cell, ctx, split: items)
    outcome = execute_cell(cell, ExecutionContext(tmp_path / "artifacts"))
    weights = outcome.provenance["model_weights"]
    assert weights["format"] == "official parts" and set(weights["files"]) == {"G"}
    assert outcome.model_config["ngf"] == 32 and outcome.model_config["n_local_enhancers"] == 1
    assert outcome.values["params"] == 182_857_059
    assert stand_ins.evaluate[0]["config"] == "cityscapes"


class _Items(list):
    """Two placeholder items with a dataset config: the stand-in evaluate reads only len() and the config."""

    def __init__(self, config):
        super().__init__([None, None])
        self.config = config
