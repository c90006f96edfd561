"""Wall-time checkpoints: a run killed between step checkpoints resumes from minutes ago, bit for bit.

The demo trains 60 steps and step checkpoints come every 500, so before ``checkpoint_every_s`` a
killed demo training restarted at step 0. Wall time is a fake clock here (each step "takes" 50 s),
and the kill is an exception raised inside a step, after which nothing more is written.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from smisbench.errors import SmisbenchError
from smisbench.training import checkpointing
from smisbench.training.config import TrainConfig
from smisbench.training.trainer import Trainer, train
from test_training_run import checkpoint_tensors, read_losses, tiny_overrides, tiny_run


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Killed(Exception):
    """Stands for kill -9: the run ends inside a step, with no final checkpoint."""


def killed_at(monkeypatch, step: int, clock: FakeClock | None = None, seconds_per_step: float = 50.0):
    """Make Trainer.train_step advance ``clock`` per step and die when asked for step ``step + 1``."""
    original = Trainer.train_step

    def train_step(self, batch):
        if self.step == step:
            raise Killed
        if clock is not None:
            clock.now += seconds_per_step
        return original(self, batch)

    monkeypatch.setattr(Trainer, "train_step", train_step)
    return original


def same_losses(a, b) -> bool:
    drop = ("sec_per_step",)
    return [{k: v for k, v in r.items() if k not in drop} for r in a] == \
           [{k: v for k, v in r.items() if k not in drop} for r in b]


def test_a_killed_run_resumes_from_its_wall_time_checkpoint_bit_for_bit(tmp_path, monkeypatch):
    run = dict(steps=7, decay_steps=4, checkpoint_every=100)  # no step checkpoint before the end
    whole = train(tiny_run(tmp_path / "whole", **run, checkpoint_every_s=0))

    clock = FakeClock()
    original = killed_at(monkeypatch, 5, clock)  # 50 s a step, latest.pt every 120 s: after step 3 (150 s)
    with pytest.raises(Killed):
        train(tiny_run(tmp_path / "parts", **run, checkpoint_every_s=120), clock=clock)
    folder = tmp_path / "parts" / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["latest.pt"]  # no step file, no rotation of step files
    assert checkpointing.load(folder / "latest.pt")["step"] == 3

    monkeypatch.setattr(Trainer, "train_step", original)
    trainer = Trainer(tiny_run(tmp_path / "parts", **run, resume=True))
    try:
        assert trainer.step == 3 and trainer.resumed_from.endswith("latest.pt")  # not step 0
        resumed = trainer.run()
    finally:
        trainer.close()
    assert resumed.step == 7 and not resumed.stopped_early

    a, b = checkpoint_tensors(whole.checkpoint), checkpoint_tensors(resumed.checkpoint)
    assert a.keys() == b.keys() and len(a) > 50
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"
    assert same_losses(read_losses(whole.losses_csv), read_losses(resumed.losses_csv))


def test_the_wall_time_trigger_restarts_after_each_checkpoint(tmp_path, monkeypatch):
    clock = FakeClock()
    saved: list[tuple[int, bool]] = []
    original_save = Trainer.save_checkpoint

    def save_checkpoint(self, history=True):
        saved.append((self.step, history))
        return original_save(self, history)

    monkeypatch.setattr(Trainer, "save_checkpoint", save_checkpoint)
    killed_at(monkeypatch, 99, clock, seconds_per_step=50.0)  # never killed; only the clock
    train(tiny_run(tmp_path, steps=8, checkpoint_every=4, checkpoint_every_s=120,
                   dataset_options={"length": 16}), clock=clock)
    # 50 s a step: wall time at steps 3 and 7; the step checkpoint at 4 restarts the count; 8 is the end
    assert saved == [(3, False), (4, True), (7, False), (8, True)]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "latest.pt", "step_00000004.pt", "step_00000008.pt"]
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == [
        "latest.png", "step_00000004.png", "step_00000008.png"]  # no grid for the wall-time ones


def test_latest_only_keeps_the_step_history(tmp_path):
    for step in (10, 20):
        checkpointing.save(tmp_path, step, {"x": step}, keep=2)
    checkpointing.save(tmp_path, 25, {"x": 25}, keep=2, history=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.pt", "step_00000010.pt", "step_00000020.pt"]
    assert checkpointing.load(tmp_path / "latest.pt")["step"] == 25


@pytest.mark.parametrize("value", [-1, "120", True])
def test_checkpoint_every_s_is_checked(value):
    with pytest.raises(SmisbenchError, match="--checkpoint-every-s"):
        TrainConfig(model="groupdnet", checkpoint_every_s=value).validate()
    TrainConfig(model="groupdnet", checkpoint_every_s=None).validate()
    assert TrainConfig(model="groupdnet").checkpoint_every_s == 120.0


def test_the_cli_passes_it_on():
    from smisbench.cli import build_parser
    from smisbench.training.cli import config_from_args

    args = build_parser().parse_args(["train", "groupdnet", "--checkpoint-every-s", "30"])
    assert config_from_args(args).checkpoint_every_s == 30.0
    assert config_from_args(build_parser().parse_args(["train", "groupdnet"])).checkpoint_every_s == 120.0


SPEC = """
name = "demo-like"
metrics = ["params"]
[protocol]
grid_rows = 0
[[datasets]]
name = "synthetic"
options = { length = 16 }
[[models]]
name = "groupdnet"
train = { steps = 5, batch_size = 4, options = { vgg = "none", checkpoint_every_s = 1e-9, log_every = 1, samples = 2, threads = 1, progress = false } }
"""


def test_the_benchmark_executor_resumes_a_killed_training(tmp_path, monkeypatch):
    """What the demo does: a cell with a training budget, killed mid-training, then run again."""
    from smisbench.benchmark.cells import expand_cells
    from smisbench.benchmark.executor import execute_cell
    from smisbench.benchmark.runner import ExecutionContext
    from smisbench.benchmark.spec import parse_spec

    torch.set_num_threads(1)
    (cell,) = expand_cells(parse_spec(SPEC))
    cell = dataclasses.replace(cell, model=dataclasses.replace(cell.model, config=tiny_overrides()))
    original = killed_at(monkeypatch, 3)  # a checkpoint after every step (1e-9 s): latest.pt holds step 3
    with pytest.raises(Killed):
        execute_cell(cell, ExecutionContext(tmp_path / "a"))
    (training,) = (tmp_path / "a" / "training").iterdir()
    assert checkpointing.load(training / "checkpoints" / "latest.pt")["step"] == 3
    monkeypatch.setattr(Trainer, "train_step", original)
    resumed = execute_cell(cell, ExecutionContext(tmp_path / "a"))
    run = json.loads((training / "run.json").read_text())
    assert run["resumed_from"].endswith("latest.pt") and run["finished"]["session_steps"] == 2
    whole = execute_cell(cell, ExecutionContext(tmp_path / "b"))  # never killed
    assert resumed.values["params"] == whole.values["params"]
    a = torch.load(resumed.provenance["checkpoint"], weights_only=True)["state_dict"]
    b = torch.load(whole.provenance["checkpoint"], weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # the same trained weights
