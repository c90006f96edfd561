"""Where the weights store lives, and where other libraries keep files the store accepts."""

from __future__ import annotations

import os
from pathlib import Path

from smisbench.paths import cache_root, xdg_cache_home

ENV_WEIGHTS_DIR = "SMISBENCH_WEIGHTS_DIR"


def default_weights_dir() -> Path:
    return cache_root() / "weights"


def weights_dir(override: str | os.PathLike | None = None) -> Path:
    """Where the store lives: the ``--weights-dir`` flag, else ``$SMISBENCH_WEIGHTS_DIR``, else the user cache."""
    if override:
        return Path(override).expanduser()
    env = os.environ.get(ENV_WEIGHTS_DIR)
    return Path(env).expanduser() if env else default_weights_dir()


def dir_flag(store: Path) -> str:
    """The ``--weights-dir`` part of a suggested command, only where the store is not the one found by default."""
    return "" if store.resolve() == weights_dir().resolve() else f" --weights-dir {store}"


def torch_hub_checkpoints() -> Path:
    """torch.hub's checkpoint folder, where torchvision and torch-fidelity keep their downloads."""
    torch_home = os.environ.get("TORCH_HOME")
    return (Path(torch_home) if torch_home else xdg_cache_home() / "torch") / "hub" / "checkpoints"


def lpips_package_weights() -> Path | None:
    """``lpips/weights/v0.1`` of the installed lpips wheel (its linear layers are canonical files)."""
    import importlib.util

    spec = importlib.util.find_spec("lpips")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "weights" / "v0.1"
