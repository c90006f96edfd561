"""Let mmsegmentation 1.2.2 import on ``mmcv-lite`` (the one workaround of the mmseg backend).

Why: mmseg 1.2.2 needs mmcv >= 2.0.0rc4, < 2.2.0. The full ``mmcv`` of those versions has no
wheels on PyPI and builds from source (about 9 minutes on 2 cores, with compiler pins);
``mmcv-lite`` installs in seconds but lacks the compiled ``mmcv._ext``, and importing
``mmcv.ops`` then fails. mmseg needs ``mmcv.ops`` only in a few places, none of them on the
inference path of the networks registered here: four modules import ``point_sample`` or
``sigmoid_focal_loss`` at import time, the rest guard their imports with
``except ModuleNotFoundError``.

What: when (and only when) ``mmcv._ext`` is missing, a small stand-in ``mmcv.ops`` module is put
in ``sys.modules``. It offers mmcv-lite's own pure-PyTorch ``point_sample`` (loaded from mmcv's
``ops/point_sample.py`` file, which needs nothing compiled), a ``sigmoid_focal_loss`` that raises
a clear error (it is a CUDA training op), and raises ``ModuleNotFoundError`` for every other name
so mmseg's guarded imports behave as on any machine without the compiled ops. With the full mmcv
installed nothing is changed.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

from smisbench.errors import SmisbenchError

STANDIN_FLAG = "__smisbench_standin__"


def compiled_mmcv_ops_available() -> bool:
    """True when mmcv's compiled extension is installed (full mmcv), checked without importing it."""
    try:
        return importlib.util.find_spec("mmcv._ext") is not None
    except ModuleNotFoundError:
        return False


def _compiled_op_unavailable(name: str):
    def unavailable(*args, **kwargs):
        raise SmisbenchError(
            f"mmcv.ops.{name} is a compiled operator, and mmcv-lite (no compiled ops) is installed",
            "install the full mmcv 2.1.0 (built from source) to train or use models that need compiled ops",
        )

    unavailable.__name__ = name
    return unavailable


def _load_pure_python_point_sample(mmcv_dir: Path) -> types.ModuleType:
    path = mmcv_dir / "ops" / "point_sample.py"
    spec = importlib.util.spec_from_file_location("mmcv.ops.point_sample", path)
    if spec is None or spec.loader is None:
        raise SmisbenchError(f"{path} is missing from the installed mmcv-lite",
                             "reinstall mmcv-lite==2.1.0")
    module = importlib.util.module_from_spec(spec)
    sys.modules["mmcv.ops.point_sample"] = module
    spec.loader.exec_module(module)
    return module


def install_mmcv_ops_standin() -> bool:
    """Provide ``mmcv.ops`` for mmcv-lite installs; returns True when the stand-in is (now) in place."""
    existing = sys.modules.get("mmcv.ops")
    if existing is not None:
        return bool(getattr(existing, STANDIN_FLAG, False))
    if compiled_mmcv_ops_available():
        return False
    import mmcv

    ops = types.ModuleType("mmcv.ops", "Stand-in for mmcv.ops on mmcv-lite (see smisbench.segmenters.mmseg_compat)")
    setattr(ops, STANDIN_FLAG, True)
    ops.__path__ = []  # a package, so ``mmcv.ops.point_sample`` resolves
    point_sample_module = _load_pure_python_point_sample(Path(mmcv.__file__).parent)
    ops.point_sample = point_sample_module.point_sample
    ops.sigmoid_focal_loss = _compiled_op_unavailable("sigmoid_focal_loss")

    def __getattr__(name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        raise ModuleNotFoundError(f"mmcv.ops.{name} needs the compiled mmcv; mmcv-lite is installed",
                                  name="mmcv._ext")

    ops.__getattr__ = __getattr__
    sys.modules["mmcv.ops"] = ops
    mmcv.ops = ops
    return True
