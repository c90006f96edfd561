"""DRN-D-105 for Cityscapes, in the layout of fyu/drn's ``DRNSeg('drn_d_105', 19)``.

The paper scores Cityscapes with ``drn-d-105_ms_cityscapes.pth``, the bare state_dict of
``DRNSeg``: the dilated backbone as ``base.0`` .. ``base.8``, a 1x1 classifier ``seg`` and a fixed
bilinear transposed convolution ``up`` (kernel 16, stride 8, one group per class). Inference
follows ``segment.py``: RGB / 255 with the Cityscapes mean/std, full resolution, log-softmax after
``up``; its ``--ms`` mode adds scales 0.5, 0.75, 1.25, 1.5, 1.75 (PIL bicubic), resizes the
log-probabilities back bilinearly (PIL, i.e. antialiased when shrinking) and sums them, no flip.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from smisbench.segmenters.base import Segmenter, SegmenterSpec, as_pil_rgb, pil_to_float
from smisbench.segmenters.checkpoints import (
    CheckpointFile, extract_state_dict, load_checkpoint_file, load_state_dict_strict, verify_checksum,
)
from smisbench.segmenters.label_conventions import cityscapes_tables
from smisbench.segmenters.registry import register
from smisbench.segmenters.resnet_blocks import Bottleneck

CITYSCAPES_MEAN = (0.29010095242892997, 0.32808144844279574, 0.28696394422942517)
CITYSCAPES_STD = (0.1829540508368939, 0.18656561047509476, 0.18447508988480435)
EXTRA_SCALES = (0.5, 0.75, 1.25, 1.5, 1.75)
CHANNELS = (16, 32, 64, 128, 256, 512, 512, 512)
DRN_D_105_LAYERS = (1, 1, 3, 4, 23, 3, 1, 1)


def _plain_convs(cin: int, cout: int, count: int, stride: int = 1, dilation: int = 1) -> tuple[nn.Sequential, int]:
    modules: list[nn.Module] = []
    for i in range(count):
        modules += [nn.Conv2d(cin, cout, 3, stride=stride if i == 0 else 1, padding=dilation,
                              dilation=dilation, bias=False),
                    nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
        cin = cout
    return nn.Sequential(*modules), cout


def _bottleneck_stage(cin: int, planes: int, count: int, stride: int = 1,
                      dilation: int = 1) -> tuple[nn.Sequential, int]:
    downsample = None
    if stride != 1 or cin != planes * 4:
        downsample = nn.Sequential(nn.Conv2d(cin, planes * 4, 1, stride=stride, bias=False),
                                   nn.BatchNorm2d(planes * 4))
    # DRN-D's dilated stages start at their full dilation (``new_level=False``).
    blocks = [Bottleneck(cin, planes, stride, downsample, dilation)]
    blocks += [Bottleneck(planes * 4, planes, dilation=dilation) for _ in range(count - 1)]
    return nn.Sequential(*blocks), planes * 4


def drn_d_backbone(layers=DRN_D_105_LAYERS, channels=CHANNELS) -> nn.Sequential:
    """The nine stages of DRN-D as one Sequential (``base.0`` .. ``base.8``), output stride 8."""
    stem = nn.Sequential(nn.Conv2d(3, channels[0], 7, padding=3, bias=False),
                         nn.BatchNorm2d(channels[0]), nn.ReLU(inplace=True))
    stages: list[nn.Module] = [stem]
    c = channels[0]
    for conf in (
        ("conv", channels[0], layers[0], 1, 1), ("conv", channels[1], layers[1], 2, 1),
        ("bottleneck", channels[2], layers[2], 2, 1), ("bottleneck", channels[3], layers[3], 2, 1),
        ("bottleneck", channels[4], layers[4], 1, 2), ("bottleneck", channels[5], layers[5], 1, 4),
        ("conv", channels[6], layers[6], 1, 2), ("conv", channels[7], layers[7], 1, 1),
    ):
        kind, width, count, stride, dilation = conf
        if kind == "conv":
            stage, c = _plain_convs(c, width, count, stride, dilation)
        else:
            stage, c = _bottleneck_stage(c, width, count, stride, dilation)
        stages.append(stage)
    return nn.Sequential(*stages)


def bilinear_upsampling_kernel(size: int) -> torch.Tensor:
    """The (size, size) bilinear interpolation kernel DRNSeg writes into its fixed ``up`` weights."""
    f = math.ceil(size / 2)
    c = (2 * f - 1 - f % 2) / (2.0 * f)
    ramp = 1 - (torch.arange(size, dtype=torch.float64) / f - c).abs()
    return (ramp[:, None] * ramp[None, :]).float()


class DRNSeg(nn.Module):
    """DRN-D backbone, 1x1 classifier, fixed x8 bilinear transposed convolution; returns log-probabilities."""

    def __init__(self, num_classes: int = 19, layers=DRN_D_105_LAYERS):
        super().__init__()
        self.base = drn_d_backbone(layers)
        self.seg = nn.Conv2d(CHANNELS[-1], num_classes, 1, bias=True)
        self.up = nn.ConvTranspose2d(num_classes, num_classes, 16, stride=8, padding=4, groups=num_classes,
                                     bias=False)
        with torch.no_grad():
            self.up.weight.copy_(bilinear_upsampling_kernel(16).expand_as(self.up.weight))
        self.up.weight.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(self.up(self.seg(self.base(x))), dim=1)


class DRNSegmenter(Segmenter):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._mean = torch.tensor(CITYSCAPES_MEAN).view(3, 1, 1) * 255
        self._std = torch.tensor(CITYSCAPES_STD).view(3, 1, 1) * 255

    def _forward(self, pil: Image.Image) -> torch.Tensor:
        x = (pil_to_float(pil) - self._mean) / self._std
        return self.network(x.unsqueeze(0).to(self.device))

    @torch.inference_mode()
    def scores(self, image: Any, out_size: tuple[int, int] | None = None) -> torch.Tensor:
        """Summed log-probabilities. Inputs whose sides are not multiples of 8 give an output of a
        slightly different size, which is resized to ``out_size`` like every other scale."""
        pil = as_pil_rgb(image)
        out_size = tuple(out_size or (pil.height, pil.width))
        inputs = [pil]
        if self.multi_scale:
            inputs += [pil.resize((int(pil.width * s), int(pil.height * s)), Image.BICUBIC) for s in EXTRA_SCALES]
        total = torch.zeros(self.num_classes, *out_size, device=self.device)
        for item in inputs:
            out = self._forward(item)
            if tuple(out.shape[2:]) != out_size:
                out = F.interpolate(out, out_size, mode="bilinear", align_corners=False, antialias=True)
            total += out[0]
        return total


CHECKPOINT = CheckpointFile(
    "weights", "drn-d-105_ms_cityscapes.pth", "http://dl.yf.io/drn/drn-d-105_ms_cityscapes.pth",
    None, "not pinned yet: its sha256 is recorded with every score",
)


def build() -> DRNSeg:
    return DRNSeg(19)


def _is_optional(key: str) -> bool:
    # The fixed upsampling kernel is not learned; an old file without it still loads (the kernel is rebuilt).
    return key.endswith("num_batches_tracked") or key == "up.weight"


def load(spec: SegmenterSpec, paths: Mapping[str, Any], *, device: str = "cpu", multi_scale: bool | None = None,
         expected_sha256: Mapping[str, str] | None = None, allowed_globals=(), **options: Any) -> DRNSegmenter:
    network = spec.build()
    path = paths["weights"]
    record = verify_checksum(path, "weights", spec.checkpoints, spec.name, (expected_sha256 or {}).get("weights"))
    raw = load_checkpoint_file(path, allowed_globals=allowed_globals, source=spec.name)
    load_state_dict_strict(network, extract_state_dict(raw, f"{spec.name} file {path}"),
                           f"{spec.name} file {path}", optional=_is_optional)
    return DRNSegmenter(spec, network, device, multi_scale=False if multi_scale is None else multi_scale,
                        provenance={"checkpoints": [record.to_dict()]}, **options)


SPEC = register(SegmenterSpec(
    name="drn_d_105_cityscapes",
    dataset="cityscapes",
    classes=cityscapes_tables()[1],
    label_convention="cityscapes_labelids",
    preprocessing={
        "input": "RGB / 255, Cityscapes mean/std",
        "mean": list(CITYSCAPES_MEAN), "std": list(CITYSCAPES_STD),
        "output_stride": 8,
        "upsampling": "fixed bilinear ConvTranspose2d(kernel 16, stride 8, padding 4, groups 19), log-softmax",
        "multi_scale": {"extra_scales": list(EXTRA_SCALES), "resize": "PIL bicubic",
                        "fusion": "log-probabilities resized bilinearly (antialiased, as PIL) and summed",
                        "flip": False},
    },
    checkpoints=(CHECKPOINT,),
    build=build,
    load=load,
    reference="github.com/fyu/drn (segment.py, DRNSeg('drn_d_105', 19))",
    published="75.6 mIoU (Cityscapes val, drn-d-105 ms)",
    notes="nan-mean over present classes in its own evaluation; default here is single scale",
))
