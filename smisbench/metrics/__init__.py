"""Metrics: LPIPS, mCSD/mOCD, FID, parameters, FPS, and the evaluation entry point (weights: smisbench.weights).

``from smisbench.metrics import evaluate, EvalProtocol``. Names are imported on first use, so
``import smisbench.metrics`` stays cheap.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from smisbench.lazy import lazy_exports

_EXPORTS = {
    "evaluate": "evaluate", "EvaluationResult": "evaluate",
    "EvalProtocol": "protocol",
    "metric_names": "registry", "get_metric": "registry", "register_metric": "registry", "Metric": "base",
    "EvalContext": "base",
    "Preset": "presets", "PRESETS": "presets", "get_preset": "presets", "preset_names": "presets",
    "DEFAULT_PRESET": "presets",
}
__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())


class _Package(types.ModuleType):
    """Keeps ``smisbench.metrics.evaluate`` the function: importing the submodule of the same name
    would otherwise bind the module over it (``from smisbench.metrics.evaluate import ...`` still works)."""

    def __setattr__(self, name: str, value: Any) -> None:
        same_name = _EXPORTS.get(name) == name
        if same_name and isinstance(value, types.ModuleType) and value.__name__ == f"{__name__}.{name}":
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
