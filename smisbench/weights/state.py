"""Tensor files of the store: a format-independent digest, deterministic bytes, tensor-only loading."""

from __future__ import annotations

import hashlib
import io
import os
from typing import Any

from smisbench.errors import WeightsError


def state_dict_digest(state: dict[str, Any]) -> str:
    """sha256 over names, dtypes, shapes and values: the same for equal weights whatever the file format."""
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().cpu().contiguous()
        digest.update(f"{key}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def serialize_state_dict(state: dict[str, Any]) -> bytes:
    """``torch.save`` bytes (deterministic for equal tensors and torch version)."""
    import torch

    def canonical(tensor: Any) -> Any:  # fresh storage with standard strides: equal tensors, equal bytes
        return torch.empty(tuple(tensor.shape), dtype=tensor.dtype).copy_(tensor.detach().cpu())

    buffer = io.BytesIO()
    torch.save({k: canonical(v) for k, v in sorted(state.items())}, buffer)
    return buffer.getvalue()


def load_state_dict_file(path: str | os.PathLike) -> dict[str, Any]:
    """A tensor-only checkpoint (``weights_only`` loading; legacy CUDA-saved files map to CPU)."""
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise WeightsError(f"{path} holds {type(state).__name__}, not a state_dict")
    return state
