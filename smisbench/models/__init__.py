"""Models: the registered generators (+ encoders), their checkpoints and the one loader.

``from smisbench.models import load_model`` is the Python API's way to load weights: the same
loader as ``smisbench sample``/``import-checkpoint`` and the benchmark harness.
"""

from __future__ import annotations

from typing import Any

_API = {"load_model": "smisbench.models.loader", "LoadedModel": "smisbench.models.loader",
        "check_checkpoint": "smisbench.models.loader", "save_bundle": "smisbench.models.checkpoints"}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:  # imported on first use: `import smisbench.models.registry` stays light
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'smisbench.models' has no attribute {name!r}")
