"""Test doubles for the benchmark harness: a deterministic fake executor and small specs.

The fake executor's numbers are a pure function of the cell key, so an interrupted-then-resumed
run must end with exactly the numbers of an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from smisbench.benchmark.catalog import catalog
from smisbench.benchmark.grids import save_grid
from smisbench.benchmark.runner import CellOutcome

# A small spec: 3 models x 2 datasets = 6 cells; no torch, no files.
SMALL_SPEC = """
name = "small"
table = "small"
seed = 3
device = "cpu"
metrics = ["fid", "mcsd_mocd", "params"]

[protocol]
n = 4

[[datasets]]
name = "synthetic"
label = "syn"

[[datasets]]
id = "synthetic_b"
name = "synthetic"
label = "syn-b"
options = { seed = 1 }

[[models]]
name = "groupdnet"
label = "GroupDNet"

[[models]]
name = "vspade"
label = "VSPADE"

[[models]]
name = "groupnet"
label = "GroupNet"
"""


def fake_value(cell_key: str, value_key: str) -> float:
    """A number in stored units that depends only on (cell key, value key)."""
    h = int(hashlib.sha256(f"{cell_key}/{value_key}".encode()).hexdigest()[:12], 16) / float(1 << 48)
    return {"params": round(1e6 + 1e6 * h), "miou": h, "accuracy": h}.get(value_key, 1.0 + 10.0 * h)


def fake_environment(device: str) -> dict[str, Any]:
    """Provenance without importing torch (keeps subprocess tests fast)."""
    return {"git_commit": "0" * 40, "versions": {"smisbench": "test"}, "device": device,
            "device_name": "fake cpu", "threads": 1, "python": "3", "platform": "test"}


def fake_outcome(cell) -> CellOutcome:
    values = {key: fake_value(cell.key, key) for key in catalog().produces(cell.metrics)}
    return CellOutcome(values=values, protocol={"resolved": True}, provenance={"weights_sha256": {"lpips": "ab" * 32}},
                       notes=["fake executor"], model_config={"name": cell.model.name, **cell.model.config})


def execute(cell, ctx) -> CellOutcome:
    """Fake executor with a stored SMIS grid (for report tests and the CLI)."""
    outcome = fake_outcome(cell)
    rng = np.random.default_rng(int(cell.key[:8], 16))
    classes = 4
    grid = {
        "images": rng.integers(0, 256, (3, classes, 16, 16, 3), dtype=np.uint8),
        "base": rng.integers(0, 256, (16, 16, 3), dtype=np.uint8),
        "label": rng.integers(0, classes, (16, 16)).astype(np.int32),
        "classes": np.arange(classes, dtype=np.int32),
        "class_names": np.array(["background", "disc", "square", "triangle"]),
        "palette": np.array([(40, 40, 40), (230, 25, 75), (60, 180, 75), (255, 225, 25)], dtype=np.uint8),
        "per_class": np.array(cell.model.name != "vspade"),
    }
    path = ctx.artifacts_dir / "grids" / f"{cell.key[:20]}.npz"
    save_grid(grid, path)
    outcome.artifacts.append(ctx.artifact("smis_grid", path, {"model": cell.model.label}))
    return outcome


def plain(cell, ctx) -> CellOutcome:
    return fake_outcome(cell)


def slow(cell, ctx) -> CellOutcome:
    time.sleep(0.02)
    return fake_outcome(cell)


class InterruptAt:
    """Executor that is interrupted (Ctrl-C) when asked for its ``k``-th cell."""

    def __init__(self, k: int):
        self.k, self.calls = k, 0

    def __call__(self, cell, ctx) -> CellOutcome:
        if self.calls == self.k:
            raise KeyboardInterrupt
        self.calls += 1
        return fake_outcome(cell)


class Counting:
    """Executor that records which cells it computed; ``fail`` names model ids that raise."""

    def __init__(self, fail: tuple[str, ...] = ()):
        self.seen: list[str] = []
        self.fail = fail

    def __call__(self, cell, ctx) -> CellOutcome:
        self.seen.append(cell.key)
        if cell.model.id in self.fail:
            raise ValueError(f"planted failure in {cell.model.id}")
        return fake_outcome(cell)


_ARRIVED: list[bool] = []


def recorded(cell, ctx) -> CellOutcome:
    """Fake executor for ``smisbench run`` in subprocesses, steered by environment variables.

    ``SMISBENCH_FAKE_LOG``: a file to append "<cell key> <pid>" to for each computed cell;
    ``SMISBENCH_FAKE_BARRIER=DIR:N``: the first cell of each process waits until N processes have
    reached theirs (so concurrent runs really overlap); ``SMISBENCH_FAKE_DELAY``: seconds per cell;
    ``SMISBENCH_FAKE_HANG_AFTER=K``: the process hangs in its (K+1)-th cell (to be killed there).
    """
    pid = os.getpid()
    barrier = os.environ.get("SMISBENCH_FAKE_BARRIER")
    if barrier and not _ARRIVED:
        _ARRIVED.append(True)
        folder, _, count = barrier.rpartition(":")
        Path(folder, str(pid)).touch()
        deadline = time.monotonic() + 120
        while len(os.listdir(folder)) < int(count) and time.monotonic() < deadline:
            time.sleep(0.02)
    log = os.environ.get("SMISBENCH_FAKE_LOG")
    hang_after = os.environ.get("SMISBENCH_FAKE_HANG_AFTER")
    if hang_after is not None and log and Path(log).is_file():
        if sum(line.endswith(f" {pid}") for line in Path(log).read_text().splitlines()) >= int(hang_after):
            time.sleep(3600)
    time.sleep(float(os.environ.get("SMISBENCH_FAKE_DELAY", "0")))
    outcome = fake_outcome(cell)
    if log:
        with open(log, "a", encoding="utf-8") as handle:  # one short append: whole lines even with 4 writers
            handle.write(f"{cell.key} {pid}\n")
    return outcome


class Identified:
    """Executor that keys its cells by a model identity it is told (per model id), as the real one does.

    ``weights``/``code`` map a model id to the digest its model would have; ``fail`` names model ids
    whose identification raises (a checkpoint of another model, say).
    """

    def __init__(self, weights: dict[str, str] | None = None, code: dict[str, str] | None = None,
                 fail: tuple[str, ...] = ()):
        self.weights, self.code, self.fail = weights or {}, code or {}, fail
        self.seen: list[str] = []
        self.identified: list[str] = []

    def identify(self, cell, ctx) -> dict[str, str]:
        self.identified.append(cell.model.id)
        if cell.model.id in self.fail:
            raise ValueError(f"planted identification failure in {cell.model.id}")
        return {"weights_sha256": self.weights.get(cell.model.id, "0" * 64),
                "code_sha256": self.code.get(cell.model.id, "1" * 64)}

    def __call__(self, cell, ctx) -> CellOutcome:
        assert cell.model_identity is not None  # the runner resolved the key first
        self.seen.append(cell.key)
        return fake_outcome(cell)
