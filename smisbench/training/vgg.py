"""The VGG network of the perceptual loss, from local files only, with a record of what was used.

The official loss taps VGG19's relu1_1, relu2_1, relu3_1, relu4_1 and relu5_1 (ImageNet
weights, torchvision's ``vgg19-dcbb9e9a.pth``) and feeds it the generator's [-1, 1] images
without ImageNet normalisation. Nothing is downloaded: VGG19 is read from a file the user has
(``--vgg PATH``, ``$SMISBENCH_VGG19``, or torch's hub cache). Without one, the VGG16 features
of the LPIPS weights provisioned for the metrics stand in (same taps, relu*_1), and the run's
provenance records the substitution; ``--vgg none`` trains without the perceptual term.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from smisbench.errors import SmisbenchError, WeightsError
from smisbench.io import sha256_file

VGG19_FILE = "vgg19-dcbb9e9a.pth"  # torchvision's name; the hex is the start of its sha256
VGG19_SLICES = ((0, 2), (2, 7), (7, 12), (12, 21), (21, 30))  # features[...] up to relu1_1 .. relu5_1
VGG16_SLICES = ((0, 2), (2, 7), (7, 12), (12, 19), (19, 26))
NORMALIZATIONS = ("none", "imagenet")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class VGGRecord:
    """What the perceptual loss ran on: written to the run's provenance."""

    network: str  # vgg19 | vgg16 | none
    source: str | None
    sha256: str | None
    normalization: str
    substitution: str | None  # why the network is not the paper's VGG19, if it is not

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class VGGTaps(nn.Module):
    """VGG ``features`` cut into slices; returns the activation after each slice."""

    def __init__(self, features: nn.Sequential, slices: tuple[tuple[int, int], ...], normalization: str = "none"):
        super().__init__()
        if normalization not in NORMALIZATIONS:
            raise SmisbenchError(f"unknown VGG input normalisation {normalization!r}", "use none or imagenet")
        self.slices = nn.ModuleList(nn.Sequential(*list(features.children())[a:b]) for a, b in slices)
        self.normalization = normalization
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.normalization == "imagenet":  # [-1, 1] -> [0, 1] -> ImageNet statistics
            x = ((x + 1) / 2 - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        out = []
        for block in self.slices:
            x = block(x)
            out.append(x)
        return out


# conv widths per block of torchvision's VGG configurations "D" (VGG16) and "E" (VGG19); "M" = max-pool
VGG_LAYOUTS = {
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    "vgg19": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"),
}


def vgg_features(name: str) -> nn.Sequential:
    """torchvision's VGG ``features`` (same module order, so the same ``N.weight`` keys), without its
    classifier and without importing torchvision.models."""
    layers: list[nn.Module] = []
    channels = 3
    for item in VGG_LAYOUTS[name]:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(channels, item, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            channels = item
    return nn.Sequential(*layers)


def _features_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``features.N.*`` entries of a torchvision VGG state dict (or a bare features state dict)."""
    if any(k.startswith("features.") for k in state):
        return {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
    return dict(state)


def load_vgg19(path: str | os.PathLike, normalization: str = "none") -> tuple[VGGTaps, VGGRecord]:
    """VGG19 taps from a local torchvision checkpoint; every conv weight must load (strict)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"VGG19 weights {path} do not exist",
                           f"copy torchvision's {VGG19_FILE} there, or train with --vgg none")
    digest = sha256_file(path)
    if path.name == VGG19_FILE and not digest.startswith(VGG19_FILE.split("-")[1].split(".")[0]):
        raise WeightsError(f"{path} has sha256 {digest}, not torchvision's VGG19 file",
                           "download vgg19-dcbb9e9a.pth again (the hex in its name starts its sha256)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise WeightsError(f"cannot read VGG19 weights {path}: {err}", "pass torchvision's vgg19-dcbb9e9a.pth") from err
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    with torch.device("meta"):  # shapes only: the file supplies every tensor
        features = vgg_features("vgg19")
    try:
        features.load_state_dict(_features_state(state), strict=True, assign=True)
    except (RuntimeError, AttributeError) as err:
        raise WeightsError(f"{path} does not hold VGG19 weights: {str(err).splitlines()[0]}",
                           "pass torchvision's vgg19-dcbb9e9a.pth (a VGG19 state dict)") from err
    return VGGTaps(features, VGG19_SLICES, normalization), VGGRecord("vgg19", str(path), digest, normalization, None)


def find_vgg19() -> Path | None:
    """A local VGG19 file: ``$SMISBENCH_VGG19``, else torchvision's file in torch's hub cache."""
    env = os.environ.get("SMISBENCH_VGG19")
    if env:
        return Path(env)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILE
    return cached if cached.is_file() else None


def load_vgg16_standin(normalization: str = "none", store_dir: str | os.PathLike | None = None
                       ) -> tuple[VGGTaps, VGGRecord]:
    """VGG16 features of the LPIPS-VGG backbone in the metrics' weight store (``lpips-vgg-backbone``).

    The store verifies the file's sha256 (``smisbench.weights.require``); its
    ``features.*`` entries are torchvision's VGG16 layout and must all load.
    """
    from smisbench import weights as store

    try:
        path, digest = store.require("lpips-vgg-backbone", store_dir)
    except WeightsError as err:
        raise WeightsError(
            f"no VGG19 file was found and the VGG16 stand-in is not installed: {err.problem}",
            f"put torchvision's {VGG19_FILE} in {Path(torch.hub.get_dir()) / 'checkpoints'} (or pass --vgg PATH), "
            "install the metric weights (`smisbench weights install`), or train without the perceptual loss: "
            "--vgg none",
        ) from err
    with torch.device("meta"):
        features = vgg_features("vgg16")
    try:
        features.load_state_dict(_features_state(store.load_state_dict_file(path)), strict=True, assign=True)
    except RuntimeError as err:
        raise WeightsError(f"{path} does not fit torchvision's VGG16 features: {str(err).splitlines()[0]}",
                           "reinstall the metric weights (`smisbench weights install`)") from err
    record = VGGRecord("vgg16", str(path), digest, normalization,
                       "VGG19 weights are not available offline; VGG16 features of the LPIPS-VGG backbone "
                       "(relu1_1..relu5_1, same layer weights) stand in")
    return VGGTaps(features, VGG16_SLICES, normalization), record


def build_perceptual(choice: str = "auto", normalization: str = "none") -> tuple[VGGTaps | None, VGGRecord]:
    """``choice``: "auto" (VGG19 file if found, else the VGG16 stand-in), "vgg19", "vgg16", "none", or a path."""
    if choice == "none":
        return None, VGGRecord("none", None, None, normalization, "perceptual loss disabled (--vgg none)")
    if choice in ("auto", "vgg19"):
        found = find_vgg19()
        if found is not None:
            return load_vgg19(found, normalization)
        if choice == "vgg19":
            raise WeightsError("no local VGG19 weights found",
                               f"set SMISBENCH_VGG19 or put {VGG19_FILE} in {Path(torch.hub.get_dir()) / 'checkpoints'}")
        return load_vgg16_standin(normalization)
    if choice == "vgg16":
        return load_vgg16_standin(normalization)
    return load_vgg19(choice, normalization)
