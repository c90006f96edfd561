"""Feature spaces beside Inception: CLIP ViT-B/32 and DINOv2 ViT-L/14, from official files given by path.

Both are optional and never downloaded: the protocol names the file (``fd_clip_weights``,
``fd_dinov2_weights``) and its sha256 (``fd_clip_sha256`` defaults to the digest of OpenAI's
release; DINOv2's release publishes none, so ``fd_dinov2_sha256`` must be given). The file is
checked before it is read.

CLIP: OpenAI's ``ViT-B-32.pt`` is a TorchScript archive; torch-fidelity's ``FeatureExtractorCLIP``
reads its state dict into its own copy of OpenAI's visual tower (TF1-compatible bilinear to 224,
CLIP's mean/std, the 512-d projected image embedding). DINOv2: :mod:`smisbench.metrics.dinov2`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from smisbench.errors import WeightsError

SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
CLIP_NAME = "clip-vit-b-32"
CLIP_FEATURE = "clip"
# OpenAI's ViT-B/32 visual tower: patch 32, width 768, 12 layers, 224 input, 512-d embedding
CLIP_VIT_B32 = {"patch": 32, "width": 768, "layers": 12, "resolution": 224, "embed": 512}


def verified_path(path: str | os.PathLike | None, sha256: str | None, what: str, metric: str) -> tuple[Path, str]:
    """``path`` after its sha256 matched the pinned one; (path, digest)."""
    from smisbench.io import sha256_file

    if not path:
        raise WeightsError(f"{metric} needs the {what} weights file, and protocol {metric}_weights is empty",
                           f"set protocol {metric}_weights to the official release file's path (never downloaded)")
    if not sha256:
        raise WeightsError(f"{metric}: protocol {metric}_sha256 is empty, so the {what} file is not pinned",
                           f"set {metric}_sha256 to the sha256 of the official file (`sha256sum {path}`)")
    pinned = sha256.strip().lower()
    if not SHA256_HEX.match(pinned):
        raise WeightsError(f"{metric}_sha256 {sha256!r} is not a sha256 digest", "give the 64 hex digits")
    file = Path(path).expanduser()
    if not file.is_file():
        raise WeightsError(f"{metric}: {file} does not exist", f"point {metric}_weights at the {what} file")
    digest = sha256_file(file)
    if digest != pinned:
        raise WeightsError(f"{file} has sha256 {digest}, but {pinned} is pinned for {what}",
                           "pass the official release file, unmodified (or pin the file you mean to use)")
    return file, digest


def clip_architecture(extractor: torch.nn.Module) -> dict[str, int]:
    """The visual tower's shape as CLIP_VIT_B32 writes it (raises for a ResNet CLIP)."""
    visual = extractor.model.visual
    if not hasattr(visual, "transformer"):
        raise WeightsError("the CLIP file holds a ResNet visual tower, not ViT-B/32", "pass OpenAI's ViT-B-32.pt")
    return {"patch": int(visual.conv1.weight.shape[-1]), "width": int(visual.conv1.weight.shape[0]),
            "layers": int(visual.transformer.layers), "resolution": int(visual.input_resolution),
            "embed": int(visual.output_dim)}


def load_clip(path: str | os.PathLike | None, sha256: str | None, device: torch.device | str = "cpu",
              expect: dict[str, int] | None = CLIP_VIT_B32) -> torch.nn.Module:
    """torch-fidelity's CLIP extractor on OpenAI's ViT-B/32 file, its sha256 checked first."""
    import warnings

    from torch_fidelity.feature_extractor_clip import FeatureExtractorCLIP

    checked, digest = verified_path(path, sha256, "CLIP ViT-B/32", "fd_clip")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            extractor = FeatureExtractorCLIP(CLIP_NAME, [CLIP_FEATURE], feature_extractor_weights_path=str(checked))
    except (RuntimeError, KeyError, ValueError) as err:  # not TorchScript, or a state dict that does not fit
        raise WeightsError(f"{checked} is not a CLIP TorchScript file torch-fidelity can read "
                           f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})",
                           "pass OpenAI's released ViT-B-32.pt") from None
    shape = clip_architecture(extractor)
    if expect is not None and shape != expect:
        raise WeightsError(f"the CLIP file holds a visual tower {shape}, not ViT-B/32 {expect}",
                           "pass OpenAI's released ViT-B-32.pt")
    extractor.weights_sha256 = digest
    extractor.architecture = "CLIP ViT-B/32 visual tower" if shape == CLIP_VIT_B32 else f"CLIP visual tower {shape}"
    return extractor.to(device).eval()

