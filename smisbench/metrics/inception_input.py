"""How images reach Inception's 299x299 input (``protocol.fid_resize``): TF1 bilinear, pytorch-fid's, or clean-fid's.

``legacy_tf``: uint8 images go to torch-fidelity's extractor, which resizes them inside the
network with its TF1-compatible bilinear (point sampling, no antialiasing), as the TF FID
graph did: what torch-fidelity and the TF FID code report.

``legacy_pytorch``: what mseitzer/pytorch-fid does (GroupDNet and OASIS used it): ``F.interpolate``
bilinear with ``align_corners=False`` and no antialiasing, on float values, then ``2x - 1`` of the
[0, 1] image. That is not ``legacy_tf``: TF1's bilinear samples at ``i * in / out`` (no half-pixel
offset), torch at ``(i + 0.5) * in / out - 0.5``. The resize is clean-fid's own ``legacy_pytorch``
resizer (clean-fid reports its legacy_pytorch mode matching pytorch-fid to about 2e-6), the scaling
pytorch-fid's, and the network our provisioned TF Inception (the weights pytorch-fid loads since its
PR #16).

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

from smisbench.imaging import UINT8_HALF_RANGE
from smisbench.errors import UnknownNameError
from smisbench.metrics.protocol import FID_RESIZES

INCEPTION_SIZE = 299
RESIZE_MEANING = {
    "legacy_tf": "torch-fidelity TF1-compatible bilinear to 299x299 inside the network (legacy TF FID)",
    "legacy_pytorch": "pytorch-fid's resize: torch bilinear (align_corners False, no antialiasing) to 299x299 "
                      "on float values, scaled 2x - 1 (clean-fid's legacy_pytorch resizer)",
    "clean": "clean-fid's resize: PIL bicubic to 299x299 on float values, no quantisation after it",
}
# clean-fid's resizer per mode, and the scaling of [0, 255] values to the network's input: (x - offset) / scale.
# torch-fidelity and the TF graph use (x - 128) / 128; pytorch-fid 2 * (x / 255) - 1 = (x - 127.5) / 127.5.
_CLEANFID_MODE = {"clean": "clean", "legacy_pytorch": "legacy_pytorch"}
_SCALING = {"clean": (128.0, 128.0), "legacy_pytorch": (UINT8_HALF_RANGE, UINT8_HALF_RANGE)}


def clean_resize(images_uint8: torch.Tensor, mode: str = "clean") -> torch.Tensor:
    """uint8 (N, 3, H, W) -> float32 (N, 3, 299, 299) in [0, 255], by clean-fid's own resizer of ``mode``."""
    import warnings

    from cleanfid.resize import build_resizer

    with warnings.catch_warnings():  # its torch resizer calls warnings.filterwarnings("ignore") for the process
        resize = build_resizer(_CLEANFID_MODE[mode])
    out = [torch.from_numpy(np.ascontiguousarray(resize(image.permute(1, 2, 0).numpy().astype(np.float32)),
                                                 dtype=np.float32)).permute(2, 0, 1)
           for image in images_uint8.detach().cpu()]
    return torch.stack(out) if out else torch.zeros(0, 3, INCEPTION_SIZE, INCEPTION_SIZE)


@torch.inference_mode()
def pool_features_of_floats(extractor: torch.nn.Module, images: torch.Tensor,
                            scaling: tuple[float, float] = _SCALING["clean"]) -> torch.Tensor:
    """2048-d pool3 features of float images already at 299x299 with values in [0, 255].

    torch-fidelity's own layers, in its order, after ``(x - offset) / scale`` (its own: 128, 128);
    its final ``fc`` is left out.
    """
    layers = dict(extractor.named_children())
    x = images.to(device=next(extractor.parameters()).device, dtype=extractor.feature_extractor_internal_dtype)
    x = (x - scaling[0]) / scaling[1]
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
    out = [pool_features_of_floats(extractor, clean_resize(images_uint8[start:start + batch_size], resize),
                                   _SCALING[resize])
           for start in range(0, images_uint8.shape[0], batch_size)]
    return torch.cat(out) if out else torch.zeros(0, 2048)


def features_of_image_set(extractor: torch.nn.Module, images: torch.utils.data.Dataset, resize: str,
                          batch_size: int = 32) -> torch.Tensor:
    """(N, 2048) features of a dataset of uint8 (3, H, W) images (``smisbench fid``'s folders), batch by batch."""
    chunks = []
    for start in range(0, len(images), batch_size):
        batch = torch.stack([images[i] for i in range(start, min(start + batch_size, len(images)))])
        chunks.append(inception_features(extractor, batch, resize, batch_size))
    return torch.cat(chunks) if chunks else torch.zeros(0, 2048)
