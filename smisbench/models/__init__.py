"""Models: the reference models by name, the interface every model offers, the contract for your own, the one loader.

``from smisbench.models import wrap, build_model, model_names``; ``load_model`` is the Python
API's way to load weights (the same loader as ``smisbench sample``/``import-checkpoint`` and the
benchmark harness). Names are imported on first use, so ``import smisbench.models.registry``
stays light (the command line imports it for every command).
"""

from __future__ import annotations

from typing import Any

from smisbench.lazy import lazy_exports

_EXPORTS = {
    "wrap": "contract", "as_model": "contract", "ContractError": "contract", "WrappedModel": "contract",
    "build_model": "registry", "build_discriminator": "registry", "model_names": "registry",
    "get_entry": "registry", "model_config": "registry", "register": "registry",
    "ModelEntry": "base", "SMISModel": "base", "CodesKind": "base", "LatentLayout": "base",
    "load_model": "loader", "LoadedModel": "loader", "check_checkpoint": "loader", "save_bundle": "checkpoints",
    "load_factory": "plugins", "ENTRY_POINT_GROUP": "plugins",
}
__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
