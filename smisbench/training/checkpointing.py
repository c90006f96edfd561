"""Training checkpoints that resume bit for bit: networks, optimisers, schedulers, scalers, RNGs, data position.

A checkpoint is one file written atomically (never a truncated file after a crash) holding
everything the next step depends on: the G/E and D weights and buffers (spectral-norm vectors,
BatchNorm statistics), both Adam states, both LR schedulers and GradScalers, every rank's
Python/NumPy/torch (CPU and CUDA) RNG states and its noise generator, and the position in
the data (epoch, batches done in it). ``latest.pt`` always holds the newest one: it is also written
every few minutes of wall time between the step checkpoints, so a killed run loses minutes, not steps.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from smisbench.errors import SmisbenchError
from smisbench.io import atomic_torch_save

FORMAT = "smisbench-train-checkpoint/1"
LATEST = "latest.pt"
STEP_FILE = re.compile(r"^step_(\d{8})\.pt$")


def capture_rng(noise: torch.Generator) -> dict[str, Any]:
    """This process's RNG states (Python, NumPy, torch CPU, every CUDA device) and the trainer's noise generator."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
        "noise": noise.get_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any], noise: torch.Generator) -> None:
    random.setstate(_python_state(state["python"]))
    np.random.set_state(_numpy_state(state["numpy"]))
    torch.set_rng_state(state["torch"])
    noise.set_state(state["noise"])
    if "cuda" in state and torch.cuda.is_available():
        states = state["cuda"]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)


def _python_state(value: Any) -> tuple:
    """``random.getstate()`` comes back from a weights-only load as lists; rebuild its tuples."""
    version, internal, gauss = value
    return (version, tuple(internal), gauss)


def _numpy_state(value: dict[str, Any]) -> tuple:
    keys = value["keys"].numpy().astype(np.uint32)
    return (value["kind"], keys, value["pos"], value["has_gauss"], value["cached"])


def step_path(folder: Path, step: int) -> Path:
    return folder / f"step_{step:08d}.pt"


def save(folder: Path, step: int, payload: dict[str, Any], keep: int = 2, history: bool = True) -> Path:
    """Write ``step_XXXXXXXX.pt`` and ``latest.pt`` atomically; keep the newest ``keep`` step files.

    ``history=False`` writes ``latest.pt`` alone: the wall-time checkpoints that bound the work a
    crash loses, without pushing the step checkpoints out of the ``keep`` newest.
    """
    folder.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "step": step, **payload}
    atomic_torch_save(payload, folder / LATEST)
    if not history:
        return folder / LATEST
    path = step_path(folder, step)
    atomic_torch_save(payload, path)
    if keep > 0:
        steps = sorted(int(m.group(1)) for p in folder.iterdir() if (m := STEP_FILE.match(p.name)))
        for old in steps[:-keep]:
            step_path(folder, old).unlink(missing_ok=True)
    return path


def load(path: Path) -> dict[str, Any]:
    """A checkpoint written by :func:`save`, read with torch's weights-only unpickler (RNG states are plain data)."""
    if not path.is_file():
        raise SmisbenchError(f"no checkpoint at {path}", "start without --resume, or point --resume at a step_*.pt file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated or not a torch file
        raise SmisbenchError(f"cannot read checkpoint {path}: {err}", "resume from an older step_*.pt file") from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise SmisbenchError(f"{path} is not a smisbench training checkpoint",
                             "resume from a file written by `smisbench train` (checkpoints/latest.pt)")
    return payload


def resolve(resume: str | bool, folder: Path) -> Path | None:
    """The checkpoint a ``--resume`` value names: True means ``folder/latest.pt``."""
    if resume is False or resume is None:
        return None
    if resume is True or resume == "latest":
        return folder / LATEST
    return Path(resume)
