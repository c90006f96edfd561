"""Device and precision choices in one place, so every command records them the same way."""

from __future__ import annotations

import os

import torch

from smisbench.errors import SmisbenchError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` takes CUDA when present, else the CPU; under torchrun ``auto`` and ``cuda`` mean the local rank's GPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SmisbenchError(f"device {name!r} asked for, but CUDA is not available here", "use --device cpu or auto")
    if device.type == "cuda" and device.index is None and "LOCAL_RANK" in os.environ:
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]) % torch.cuda.device_count())  # torchrun: own GPU
    return device


def pick_dtype(name: str) -> torch.dtype:
    try:
        return DTYPES[name]
    except KeyError:
        raise SmisbenchError(f"unknown dtype {name!r}", f"use one of {', '.join(DTYPES)}") from None


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work so wall-clock timings measure it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
