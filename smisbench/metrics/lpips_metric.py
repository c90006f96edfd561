"""LPIPS v0.1 computed by the ``lpips`` package on the provisioned backbone, with its spatial map.

``lpips.LPIPS(pnet_rand=True)`` is built without any download and then loaded strictly
from the store; every tensor is compared after loading, because lpips's own ``model_path``
loading is non-strict and would ignore a wrong key. The forward pass reuses lpips's own
layers and helpers, split so that one backbone pass per image serves many pairs
(mCSD/mOCD compare each generated image with several others).
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import torch
from torch import nn

from smisbench.errors import SmisbenchError, WeightsError
from smisbench.metrics.protocol import LPIPS_NETS
from smisbench.weights import register_check

NETS = {net: (f"lpips-{net}-backbone", f"lpips-{net}-linear") for net in LPIPS_NETS}  # weights store entries
RANGE_TOLERANCE = 1e-3


class ImageRangeError(SmisbenchError, ValueError):
    """Images outside the range a metric expects (a [0, 255] or [0, 1] image passed as [-1, 1])."""


def check_image_range(images: torch.Tensor, what: str = "images", low: float = -1.0, high: float = 1.0) -> None:
    """Refuse float images outside [low, high] (with a small tolerance) or of the wrong shape."""
    if not torch.is_tensor(images) or not images.is_floating_point():
        raise ImageRangeError(
            f"{what} must be a float tensor in [{low:g}, {high:g}], got "
            f"{images.dtype if torch.is_tensor(images) else type(images).__name__}",
            "convert uint8 images with x / 127.5 - 1",
        )
    if images.dim() != 4 or images.shape[1] != 3:
        raise ImageRangeError(f"{what} must have shape (B, 3, H, W), got {tuple(images.shape)}",
                              "stack RGB images along a batch axis")
    lo, hi = float(images.min()), float(images.max())
    if lo < low - RANGE_TOLERANCE or hi > high + RANGE_TOLERANCE:
        hint = "x / 127.5 - 1 for [0, 255] images" if hi > 2 else "2 * x - 1 for [0, 1] images"
        raise ImageRangeError(
            f"{what} have values in [{lo:.4g}, {hi:.4g}], outside the expected [{low:g}, {high:g}]",
            f"scale them to [{low:g}, {high:g}] ({hint})",
        )


def new_lpips(net: str) -> Any:
    """An lpips.LPIPS v0.1 with random trunk (nothing downloaded) and no linear layers loaded."""
    import lpips

    if net not in NETS:
        from smisbench.errors import UnknownNameError

        raise UnknownNameError("LPIPS network", net, list(NETS))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision's notice about the `pretrained` argument lpips passes
        return lpips.LPIPS(net=net, version="0.1", pretrained=False, pnet_rand=True, verbose=False)


def full_state_dict(model: nn.Module, backbone: dict[str, torch.Tensor], linear: dict[str, torch.Tensor]) -> dict:
    """The complete lpips.LPIPS state_dict from a torchvision-layout trunk and lpips-layout linear layers.

    ``net.slice{k}.{i}.*`` take ``features.{i}.*``; ``lins.{k}`` are the same modules as ``lin{k}``;
    the scaling layer's constants come from lpips's code. Missing or unused inputs are errors.
    """
    full, used = {}, set()
    for key, tensor in model.state_dict().items():
        parts = key.split(".")
        if parts[0] == "scaling_layer":
            full[key] = tensor
            continue
        if parts[0] == "net":
            source, name = backbone, f"features.{parts[2]}.{parts[3]}"
        elif parts[0] == "lins":
            source, name = linear, f"lin{parts[1]}.{'.'.join(parts[2:])}"
        else:
            source, name = linear, key
        if name not in source:
            raise WeightsError(f"LPIPS weight {name} (for {key}) is missing from the provisioned files",
                               "reinstall with `smisbench weights install --force`")
        if tuple(source[name].shape) != tuple(tensor.shape):
            raise WeightsError(f"LPIPS weight {name} has shape {tuple(source[name].shape)}, "
                               f"the network needs {tuple(tensor.shape)}", "reinstall with `smisbench weights install --force`")
        full[key] = source[name].to(tensor.dtype)
        used.add((id(source), name))
    unused = [k for k in backbone if (id(backbone), k) not in used] + [k for k in linear if (id(linear), k) not in used]
    if unused:
        raise WeightsError(f"provisioned LPIPS files hold entries the network does not use: {unused[:6]}",
                           "reinstall with `smisbench weights install --force`")
    return full


def load_checked(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Strict load, then compare every tensor: nothing may be skipped or silently left random."""
    model.load_state_dict(state, strict=True)
    loaded = model.state_dict()
    wrong = [k for k, v in state.items() if not torch.equal(loaded[k], v.to(loaded[k].device, loaded[k].dtype))]
    if wrong:
        raise WeightsError(f"LPIPS weights did not load into: {wrong[:6]}", "reinstall with `smisbench weights install --force`")


def check_lpips_part(entry_name: str, state: dict[str, torch.Tensor]) -> None:
    """Install-time check: a converted backbone or linear file fits lpips.LPIPS exactly."""
    net = "alex" if "-alex-" in entry_name else "vgg"
    model = new_lpips(net)
    reference = model.state_dict()
    if entry_name.endswith("backbone"):
        expected = {f"features.{k.split('.')[2]}.{k.split('.')[3]}": v for k, v in reference.items() if k.startswith("net.")}
    else:
        expected = {k: v for k, v in reference.items() if k.startswith("lin") and not k.startswith("lins.")}
    if set(state) != set(expected):
        raise WeightsError(f"{entry_name}: keys {sorted(set(state) ^ set(expected))[:6]} do not fit lpips.LPIPS({net!r})")
    bad = [k for k in state if tuple(state[k].shape) != tuple(expected[k].shape)]
    if bad:
        raise WeightsError(f"{entry_name}: shapes of {bad[:6]} do not fit lpips.LPIPS({net!r})")


for _files in NETS.values():
    for _name in _files:
        register_check(_name, check_lpips_part)


class LPIPSMetric(nn.Module):
    """LPIPS v0.1 distances and spatial maps for images in [-1, 1]."""

    def __init__(self, model: nn.Module, net: str = "alex", provenance: dict[str, Any] | None = None):
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.net = net
        self.provenance = provenance or {}

    @classmethod
    def from_state_dicts(cls, backbone: dict, linear: dict, net: str = "alex",
                         provenance: dict[str, Any] | None = None) -> "LPIPSMetric":
        model = new_lpips(net)
        load_checked(model, full_state_dict(model, backbone, linear))
        return cls(model, net, provenance)

    @classmethod
    def load(cls, net: str = "alex", store_dir: str | os.PathLike | None = None,
             device: torch.device | str = "cpu") -> "LPIPSMetric":
        """LPIPS from the weights store (verified by sha256 before loading)."""
        from smisbench.weights import load_state_dict_file, require

        if net not in NETS:
            new_lpips(net)  # raises the unknown-name error
        backbone_name, linear_name = NETS[net]
        backbone_path, backbone_sha = require(backbone_name, store_dir)
        linear_path, linear_sha = require(linear_name, store_dir)
        backbone = load_state_dict_file(backbone_path)
        linear = load_state_dict_file(linear_path)
        provenance = {"lpips": f"v0.1 {net}", backbone_name: backbone_sha, linear_name: linear_sha}
        return cls.from_state_dicts(backbone, linear, net, provenance).to(device)

    # ----- pieces, each one call into lpips's own layers -----
    @torch.inference_mode()
    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Unit-normalised trunk activations per LPIPS layer (one backbone pass per image)."""
        from lpips import normalize_tensor

        check_image_range(images)
        images = images.to(next(self.model.parameters()).device, torch.float32)
        outs = self.model.net(self.model.scaling_layer(images))
        return [normalize_tensor(out) for out in outs]

    @torch.inference_mode()
    def spatial_from_features(self, f0: list[torch.Tensor], f1: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        """(B, 1, H, W) map: per-layer weighted squared differences upsampled to ``size`` and summed (lpips spatial=True)."""
        from lpips.lpips import upsample

        total = 0
        for k, (a, b) in enumerate(zip(f0, f1)):
            total = total + upsample(self.model.lins[k]((a - b) ** 2), out_HW=tuple(size))
        return total

    @torch.inference_mode()
    def distance_from_features(self, f0: list[torch.Tensor], f1: list[torch.Tensor]) -> torch.Tensor:
        """(B,) LPIPS: per-layer spatial means of the weighted squared differences, summed (lpips spatial=False)."""
        from lpips.lpips import spatial_average

        total = 0
        for k, (a, b) in enumerate(zip(f0, f1)):
            total = total + spatial_average(self.model.lins[k]((a - b) ** 2), keepdim=True)
        return total.reshape(-1)

    # ----- whole computations -----
    def distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """(B,) LPIPS between corresponding images of two batches in [-1, 1]."""
        _same_shape(a, b)
        return self.distance_from_features(self.features(a), self.features(b))

    def spatial_map(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) LPIPS map; its mean is close to (not equal to) :meth:`distance`."""
        _same_shape(a, b)
        return self.spatial_from_features(self.features(a), self.features(b), tuple(a.shape[-2:]))


def _same_shape(a: torch.Tensor, b: torch.Tensor) -> None:
    if tuple(a.shape) != tuple(b.shape):
        raise SmisbenchError(f"LPIPS needs images of the same shape, got {tuple(a.shape)} and {tuple(b.shape)}",
                             "resize one image to the other's size first")


def masked_mean(maps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of (P, 1, H, W) maps over the pixels where ``mask`` (1, 1, H, W) is 1; NaN for an empty mask."""
    area = mask.sum()
    if float(area) == 0:
        return torch.full((maps.shape[0],), float("nan"), device=maps.device)
    return (maps * mask).sum(dim=(1, 2, 3)) / area
