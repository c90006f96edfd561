"""UPerNet with a ResNet-101 encoder, as CSAILVision/semantic-segmentation-pytorch releases it for ADE20K.

The paper scores ADE20K with this network (``ade20k-resnet101-upernet``: ``encoder_epoch_50.pth``
and ``decoder_epoch_50.pth``). Module names and buffers follow the released files key for key,
including the three bookkeeping buffers of the repo's synchronized BatchNorm. Inference follows
its evaluation script: short side resized to each of (300, 375, 450, 525, 600) (longer side at
most 1000, both rounded up to multiples of 32, PIL bilinear), logits upsampled bilinearly to the
output size, softmax, probabilities averaged over scales, no flip.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from smisbench.segmenters.ade20k_classes import ADE20K_CLASSES
from smisbench.segmenters.base import Segmenter, SegmenterSpec, as_pil_rgb, pil_to_float
from smisbench.segmenters.checkpoints import (
    CheckpointFile, extract_state_dict, load_checkpoint_file, load_state_dict_strict, verify_checksum,
)
from smisbench.segmenters.registry import register
from smisbench.segmenters.resnet_blocks import Bottleneck

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SHORT_SIDES = (300, 375, 450, 525, 600)
SINGLE_SCALE_SHORT_SIDE = 450  # the repo does not say which size its single-scale number used
MAX_SIZE = 1000
PADDING = 32


class SyncBNLayoutBatchNorm2d(nn.BatchNorm2d):
    """Eval-mode BatchNorm that also carries the repo's sync-BN buffers, so its files load key for key."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.001):
        super().__init__(num_features, eps=eps, momentum=momentum)
        self.register_buffer("_tmp_running_mean", torch.zeros(num_features))
        self.register_buffer("_tmp_running_var", torch.ones(num_features))
        self.register_buffer("_running_iter", torch.ones(1))


def _conv_bn_relu(cin: int, cout: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False),
                         SyncBNLayoutBatchNorm2d(cout), nn.ReLU(inplace=True))


class ResNetEncoder(nn.Module):
    """ResNet-101 with the repo's three-convolution stem; returns the four stage outputs (strides 4..32)."""

    def __init__(self, layers: tuple[int, int, int, int] = (3, 4, 23, 3)):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, stride=2, padding=1, bias=False)
        self.bn1 = SyncBNLayoutBatchNorm2d(64)
        self.conv2 = nn.Conv2d(64, 64, 3, padding=1, bias=False)
        self.bn2 = SyncBNLayoutBatchNorm2d(64)
        self.conv3 = nn.Conv2d(64, 128, 3, padding=1, bias=False)
        self.bn3 = SyncBNLayoutBatchNorm2d(128)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self._inplanes = 128
        self.layer1 = self._stage(64, layers[0], 1)
        self.layer2 = self._stage(128, layers[1], 2)
        self.layer3 = self._stage(256, layers[2], 2)
        self.layer4 = self._stage(512, layers[3], 2)

    def _stage(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self._inplanes != planes * 4:
            downsample = nn.Sequential(
                nn.Conv2d(self._inplanes, planes * 4, 1, stride=stride, bias=False),
                SyncBNLayoutBatchNorm2d(planes * 4),
            )
        stage = [Bottleneck(self._inplanes, planes, stride, downsample, norm=SyncBNLayoutBatchNorm2d)]
        self._inplanes = planes * 4
        stage += [Bottleneck(self._inplanes, planes, norm=SyncBNLayoutBatchNorm2d) for _ in range(blocks - 1)]
        return nn.Sequential(*stage)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        x = self.relu(self.bn3(self.conv3(x)))
        x = self.maxpool(x)
        features = []
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = stage(x)
            features.append(x)
        return features


class UPerNetDecoder(nn.Module):
    """Pyramid pooling on the last stage plus an FPN over all four; logits at stride 4."""

    def __init__(self, num_classes: int = 150, fc_dim: int = 2048, pool_scales=(1, 2, 3, 6),
                 fpn_inplanes=(256, 512, 1024, 2048), fpn_dim: int = 512):
        super().__init__()
        self.pool_scales = tuple(pool_scales)
        self.ppm_conv = nn.ModuleList(_conv_bn_relu(fc_dim, 512, 1) for _ in pool_scales)
        self.ppm_last_conv = _conv_bn_relu(fc_dim + len(pool_scales) * 512, fpn_dim, 3)
        self.fpn_in = nn.ModuleList(_conv_bn_relu(c, fpn_dim, 1) for c in fpn_inplanes[:-1])
        self.fpn_out = nn.ModuleList(nn.Sequential(_conv_bn_relu(fpn_dim, fpn_dim, 3))
                                     for _ in fpn_inplanes[:-1])
        self.conv_last = nn.Sequential(
            _conv_bn_relu(len(fpn_inplanes) * fpn_dim, fpn_dim, 3),
            nn.Conv2d(fpn_dim, num_classes, 1),
        )

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        top = features[-1]
        size = top.shape[2:]
        pooled = [top] + [
            conv(F.interpolate(F.adaptive_avg_pool2d(top, scale), size, mode="bilinear", align_corners=False))
            for scale, conv in zip(self.pool_scales, self.ppm_conv, strict=True)
        ]
        f = self.ppm_last_conv(torch.cat(pooled, 1))
        pyramid = [f]
        for i in reversed(range(len(features) - 1)):
            lateral = self.fpn_in[i](features[i])
            f = lateral + F.interpolate(f, size=lateral.shape[2:], mode="bilinear", align_corners=False)
            pyramid.append(self.fpn_out[i](f))
        pyramid.reverse()
        size = pyramid[0].shape[2:]
        fused = [pyramid[0]] + [F.interpolate(p, size, mode="bilinear", align_corners=False) for p in pyramid[1:]]
        return self.conv_last(torch.cat(fused, 1))


class CsailUperNet(nn.Module):
    """Encoder and decoder as two submodules, one released file each."""

    def __init__(self, num_classes: int = 150):
        super().__init__()
        self.encoder = ResNetEncoder()
        self.decoder = UPerNetDecoder(num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def _round_up(x: int, multiple: int) -> int:
    return ((x - 1) // multiple + 1) * multiple


def scale_sizes(height: int, width: int, short_sides=SHORT_SIDES) -> list[tuple[int, int]]:
    """The (h, w) network input sizes for each short side, as the CSAIL evaluation computes them."""
    sizes = []
    for short in short_sides:
        scale = min(short / min(height, width), MAX_SIZE / max(height, width))
        sizes.append((_round_up(int(height * scale), PADDING), _round_up(int(width * scale), PADDING)))
    return sizes


class CsailUperNetSegmenter(Segmenter):
    def __init__(self, *args: Any, short_sides: tuple[int, ...] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.short_sides = short_sides or (SHORT_SIDES if self.multi_scale else (SINGLE_SCALE_SHORT_SIDE,))
        self._mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1) * 255
        self._std = torch.tensor(IMAGENET_STD).view(3, 1, 1) * 255

    @torch.inference_mode()
    def scores(self, image: Any, out_size: tuple[int, int] | None = None) -> torch.Tensor:
        pil = as_pil_rgb(image)
        out_size = tuple(out_size or (pil.height, pil.width))
        total = torch.zeros(self.num_classes, *out_size, device=self.device)
        sizes = scale_sizes(pil.height, pil.width, self.short_sides)
        for h, w in sizes:
            x = (pil_to_float(pil.resize((w, h), Image.BILINEAR)) - self._mean) / self._std
            logits = self.network(x.unsqueeze(0).to(self.device))
            logits = F.interpolate(logits, out_size, mode="bilinear", align_corners=False)
            total += F.softmax(logits, dim=1)[0] / len(sizes)
        return total


ENCODER = CheckpointFile(
    "encoder", "encoder_epoch_50.pth",
    "http://sceneparsing.csail.mit.edu/model/pytorch/ade20k-resnet101-upernet/encoder_epoch_50.pth",
    None, "not pinned yet: its sha256 is recorded with every score",
)
DECODER = CheckpointFile(
    "decoder", "decoder_epoch_50.pth",
    "http://sceneparsing.csail.mit.edu/model/pytorch/ade20k-resnet101-upernet/decoder_epoch_50.pth",
    None, "not pinned yet: its sha256 is recorded with every score",
)


def build() -> CsailUperNet:
    return CsailUperNet(150)


def load(spec: SegmenterSpec, paths: Mapping[str, Any], *, device: str = "cpu", multi_scale: bool | None = None,
         expected_sha256: Mapping[str, str] | None = None, allowed_globals=(), **options: Any) -> CsailUperNetSegmenter:
    network = spec.build()
    records = []
    for role, module in (("encoder", network.encoder), ("decoder", network.decoder)):
        record = verify_checksum(paths[role], role, spec.checkpoints, spec.name, (expected_sha256 or {}).get(role))
        raw = load_checkpoint_file(paths[role], allowed_globals=allowed_globals, source=f"{spec.name} {role}")
        load_state_dict_strict(module, extract_state_dict(raw, f"{spec.name} {role} file {paths[role]}"),
                               f"{spec.name} {role} file {paths[role]}")
        records.append(record)
    return CsailUperNetSegmenter(
        spec, network, device, multi_scale=True if multi_scale is None else multi_scale,
        provenance={"checkpoints": [r.to_dict() for r in records]}, **options,
    )


SPEC = register(SegmenterSpec(
    name="csail_upernet101_ade20k",
    dataset="ade20k",
    classes=ADE20K_CLASSES,
    label_convention="ade20k_sceneparsing",
    preprocessing={
        "input": "RGB / 255, ImageNet mean/std",
        "scales": {"short_sides": list(SHORT_SIDES), "max_size": MAX_SIZE, "round_up_to": PADDING,
                   "resize": "PIL bilinear", "single_scale_short_side": SINGLE_SCALE_SHORT_SIDE},
        "fusion": "logits bilinear (align_corners=False) to output size, softmax, mean over scales",
        "flip": False,
    },
    checkpoints=(ENCODER, DECODER),
    build=build,
    load=load,
    reference="github.com/CSAILVision/semantic-segmentation-pytorch (config ade20k-resnet101-upernet)",
    published="42.00 mIoU / 80.79 pixel acc. single scale; 42.66 / 81.01 multi-scale (ADE20K val)",
    notes="sceneparsing rule in its own evaluation (absent classes count 0)",
))
