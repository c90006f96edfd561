"""How images reach Inception's 299x299 input (``protocol.fid_resize``): legacy TF1 bilinear or clean-fid's resize.

``legacy_tf``: uint8 images go to torch-fidelity's extractor, which resizes them inside the
network with its TF1-compatible bilinear (point sampling, no antialiasing), as the TF FID
graph did: what pytorch-fid, torch-fidelity and the SPADE-era papers report.

``clean`` (Parmar et al., clean-fid): each uint8 image is resized to 299x299 by clean-fid's own
resizer (``cleanfid.resize.build_resizer("clean")``: PIL bicubic on float32 channels, clipped to
[0, 255] and not quantised again), and those float values enter the same Inception network
(our provisioned weights) after its own ``(x - 128) / 128``. torch-fidelity's ``forward``
accepts uint8 only, so :func:`pool_features_of_floats` runs its layers on the float input; at
299x299 its TF1 resize is the identity, so for uint8 input this gives its forward's features
(a test holds the two equal).
"""

from __future__ import annotations

import numpy as np
import torch

from smisbench.errors import UnknownNameError
from smisbench.metrics.protocol import FID_RESIZES

INCEPTION_SIZE = 299
RESIZE_MEANING = {
    "legacy_tf": "torch-fidelity TF1-compatible bilinear to 299x299 inside the network (legacy TF FID)",
    "clean": "clean-fid's resize: PIL bicubic to 299x299 on float values, no quantisation after it",
}


def clean_resize(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> float32 (N, 3, 299, 299) in [0, 255], by clean-fid's own "clean" resizer."""
    from cleanfid.resize import build_resizer

    resize = build_resizer("clean")
    out = [torch.from_numpy(np.ascontiguousarray(resize(image.permute(1, 2, 0).numpy()))).permute(2, 0, 1)
           for image in images_uint8.detach().cpu()]
    return torch.stack(out) if out else torch.zeros(0, 3, INCEPTION_SIZE, INCEPTION_SIZE)


@torch.inference_mode()
def pool_features_of_floats(extractor: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """2048-d pool3 features of float images already at 299x299 with values in [0, 255].

    torch-fidelity's own layers, in its order, after its normalisation; its final ``fc`` is left out.
    """
    layers = dict(extractor.named_children())
    x = images.to(device=next(extractor.parameters()).device, dtype=extractor.feature_extractor_internal_dtype)
    x = (x - 128) / 128
    for name, layer in layers.items():
        if name == "fc":
            break
        x = layer(x)
    return torch.flatten(x, 1).float().cpu()


def inception_features(extractor: torch.nn.Module, images_uint8: torch.Tensor, resize: str,
                       batch_size: int = 32) -> torch.Tensor:
    """(N, 2048) pool features of uint8 images brought to 299x299 the way ``resize`` names."""
    from smisbench.metrics.fid import extract_features

    if resize not in FID_RESIZES:
        raise UnknownNameError("fid_resize", resize, list(FID_RESIZES))
    if resize == "legacy_tf":
        return extract_features(extractor, images_uint8, batch_size)
    out = [pool_features_of_floats(extractor, clean_resize(images_uint8[start:start + batch_size]))
           for start in range(0, images_uint8.shape[0], batch_size)]
    return torch.cat(out) if out else torch.zeros(0, 2048)
