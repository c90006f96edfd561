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
        return types.SimpleNamespace(values={"params": float(count), "fps": 1.0, "probe": probe},
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
    monkeypatch.setitem(sys.modules, "smisbench.metrics.registry",
                        types.SimpleNamespace(metric_names=lambda: ["fid", "fps", "params"]))
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
