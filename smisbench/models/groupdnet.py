"""GroupDNet (Zhu et al., CVPR 2020): grouped encoder with per-class codes and a grouped CG-Block decoder.

The three released configurations are data (``OFFICIAL_CONFIGS``); their parameter counts and
state-dict keys equal the official ``latest_net_G.pth`` / ``latest_net_E.pth`` files. Architectural
switches for the paper's ablations live in the same config.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from smisbench.datasets_config import get_dataset_config
from smisbench.models.base import CodesKind, LatentLayout
from smisbench.models.family import CGNormConfig, FamilyModel, cgnorm_discriminator, per_class_codes, register_family
from smisbench.models.layers import CGBlock, ConvEncoderTrunk, NormSpec


@dataclass(frozen=True)
class BlockSpec:
    """One CG-Block: channels in/out, conv groups, and whether the features are upsampled x2 before it."""

    name: str
    fin: int
    fout: int
    groups: int
    upsample: bool


@dataclass(frozen=True)
class GroupDNetConfig(CGNormConfig):
    """Everything that shapes a GroupDNet; ``norm_rule`` picks how CG-Norm's label branch is sized."""

    fc_out: int
    blocks: tuple[BlockSpec, ...]
    encoder_widths: tuple[int, ...]
    norm_rule: str = "deepfashion"  # deepfashion | cityscapes | ade20k (see _norm_spec)
    norm_hidden: int = 128  # CG-Norm hidden width under the deepfashion rule
    z_per_class: int = 8
    latent_hw: tuple[int, int] = (4, 4)
    dead_blocks: tuple[BlockSpec, ...] = ()  # kept in the state dict, never run (ADE20K's up_4)
    encoder_split: bool = True  # ablation "w/o split" feeds the whole image to every group


def _norm_spec(config: GroupDNetConfig, groups: int) -> NormSpec:
    """CG-Norm label-branch shape per the released code's per-dataset rules (see groupdnet.md)."""
    classes = config.data.semantic_nc
    if config.norm_rule == "deepfashion":
        return NormSpec(classes, config.norm_hidden, groups, groups)
    if config.norm_rule == "cityscapes":  # label masks interleaved with the instance edge map
        return NormSpec(2 * classes, classes * groups, classes, classes)
    if config.norm_rule == "ade20k":
        hidden = 2 * classes if classes % groups == 0 else classes * groups
        return NormSpec(classes, hidden, classes, groups)
    raise ValueError(f"unknown norm rule {config.norm_rule!r}")


def upsample_x2(x: torch.Tensor) -> torch.Tensor:
    """The decoder's nearest-neighbour x2 upsampling before a block."""
    return F.interpolate(x, scale_factor=2, mode="nearest")


class GroupDNetGenerator(nn.Module):
    """Grouped decoder: per-class code maps -> ``fc`` (grouped conv) -> CG-Blocks -> image."""

    def __init__(self, config: GroupDNetConfig):
        super().__init__()
        self.config = config
        classes = config.data.semantic_nc
        self.fc = nn.Conv2d(classes * config.z_per_class, config.fc_out, 3, padding=1, groups=classes)
        for spec in config.blocks + config.dead_blocks:
            block = CGBlock(spec.fin, spec.fout, spec.groups, _norm_spec(config, spec.groups), config.spectral, config.norm_kind)
            setattr(self, spec.name, block)
        self.conv_img = nn.Conv2d(config.blocks[-1].fout, 3, 3, padding=1)

    def label_input(self, semantics: torch.Tensor) -> torch.Tensor:
        """Cityscapes interleaves each class mask with the instance edges (mask_0, edge, mask_1, edge, ...)."""
        if self.config.norm_rule != "cityscapes":
            return semantics
        masks, edge = semantics[:, :-1], semantics[:, -1:]
        return torch.stack([masks, edge.expand_as(masks)], dim=2).flatten(1, 2)

    def features(self, semantics: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Output of the last CG-Block, before ``conv_img`` (variants add a fusion module here)."""
        label = self.label_input(semantics)
        return self.run_blocks(self.fc(z), label)

    def run_blocks(self, x: torch.Tensor, label: torch.Tensor, start: int = 0) -> torch.Tensor:
        """The CG-Blocks from the ``start``-th on (each after its x2 upsampling, where it has one)."""
        for spec in self.config.blocks[start:]:
            x = getattr(self, spec.name)(upsample_x2(x) if spec.upsample else x, label)
        return x

    def forward(self, semantics: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv_img(F.leaky_relu(self.features(semantics, z), 0.2)))


class GroupDNetEncoder(ConvEncoderTrunk):
    """Grouped conv encoder: each class's crop runs through its own group and gets its own mu/logvar map."""

    def __init__(self, config: GroupDNetConfig):
        classes = config.data.semantic_nc
        super().__init__(3 * classes, config.encoder_widths, groups=classes, spectral=config.spectral)
        width, out = config.encoder_widths[-1], classes * config.z_per_class
        self.fc_mu = nn.Conv2d(width, out, 3, padding=1, groups=classes)
        self.fc_var = nn.Conv2d(width, out, 3, padding=1, groups=classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = super().forward(x)
        return self.fc_mu(x), self.fc_var(x)


def split_by_class(image: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """The encoder's input: for each class, the image inside its mask, cropped to the mask's bounding box
    and resized (nearest) back to the full size; an absent class gives zeros. (B,3,H,W),(B,C,H,W) -> (B,3C,H,W).

    Done with one gather instead of a loop over classes, so ADE20K's 151 classes cost one pass.
    """
    b, c, h, w = masks.shape
    present_rows, present_cols = masks.amax(dim=3) > 0, masks.amax(dim=2) > 0  # (B,C,H), (B,C,W)
    present = present_rows.any(dim=2)
    rows = torch.arange(h, device=masks.device)
    cols = torch.arange(w, device=masks.device)

    def bounds(hits: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        first = hits.float().argmax(dim=2)
        last = n - 1 - hits.flip(2).float().argmax(dim=2)
        return first, last - first + 1

    y0, hh = bounds(present_rows, h)
    x0, ww = bounds(present_cols, w)
    # nearest resize of the crop: source = first + floor(dst * crop / full), as F.interpolate(mode="nearest")
    src_rows = y0[..., None] + torch.div(rows * hh[..., None], h, rounding_mode="floor")
    src_cols = x0[..., None] + torch.div(cols * ww[..., None], w, rounding_mode="floor")
    index = (src_rows[..., :, None] * w + src_cols[..., None, :]).reshape(b, c, h * w)
    masked_mask = masks.reshape(b, c, h * w).gather(2, index)  # (B,C,HW)
    pixels = image.reshape(b, 1, 3, h * w).expand(b, c, 3, h * w)
    crops = pixels.gather(3, index[:, :, None, :].expand(b, c, 3, h * w)) * masked_mask[:, :, None]
    crops = crops * present[:, :, None, None].to(crops.dtype)
    return crops.reshape(b, 3 * c, h, w)


class PerClassModel(FamilyModel):
    """Per-class code maps (class c owns z channels [k*c, k*(c+1))), encoded from each class's own crop.

    Its configs carry ``z_per_class`` (k) and ``latent_hw`` (GroupDNet, GroupEnc, MulNet and variants).
    """

    codes_kind = CodesKind.PER_CLASS

    def latent_layout(self, config: Any) -> LatentLayout:
        return per_class_codes(config.data.semantic_nc, config.z_per_class, config.latent_hw)

    def encoder_input(self, image: torch.Tensor, semantics: torch.Tensor) -> torch.Tensor:
        return split_by_class(image, semantics[:, : self.dataset.semantic_nc])


class GroupDNet(PerClassModel):
    """Generator + grouped encoder with per-class latent maps: class c owns z channels [8c, 8c+8).

    Variants (baselines, ablations) override one of the build hooks and keep the rest.
    """

    def build_generator(self, config: GroupDNetConfig) -> nn.Module:
        return GroupDNetGenerator(config)

    def build_encoder(self, config: GroupDNetConfig) -> nn.Module:
        return GroupDNetEncoder(config)

    def encoder_input(self, image: torch.Tensor, semantics: torch.Tensor) -> torch.Tensor:
        if not self.config.encoder_split:  # ablation: every group sees the whole image
            return image.repeat(1, self.dataset.semantic_nc, 1, 1)
        return super().encoder_input(image, semantics)


def _blocks(rows: list[tuple[str, int, int, int, bool]]) -> tuple[BlockSpec, ...]:
    return tuple(BlockSpec(*row) for row in rows)


_NAMES = ("head_0", "G_middle_0", "G_middle_1", "up_0", "up_1", "up_2", "up_3")
_UPSAMPLE = (False, True, True, True, True, True, True)  # 'more': six x2 upsamplings from the 4x4 start


def _ladder(channels: list[int], groups: list[int]) -> tuple[BlockSpec, ...]:
    """The seven official blocks from their output widths and group counts (input = previous output)."""
    rows, fin = [], channels[0]
    for name, up, fout, g in zip(_NAMES, _UPSAMPLE, channels[1:], groups):
        rows.append((name, fin, fout, g, up))
        fin = fout
    return _blocks(rows)


def _official(dataset: str, channels: list[int], groups: list[int], encoder: tuple[int, ...],
              **rest: Any) -> GroupDNetConfig:
    """A released configuration from its ladder (``fc`` outputs the first block's input width)."""
    return GroupDNetConfig(dataset, channels[0], _ladder(channels, groups), encoder, **rest)


OFFICIAL_CONFIGS: dict[str, GroupDNetConfig] = {
    "deepfashion": _official(
        "deepfashion", [2560, 2560, 2560, 2560, 1280, 640, 320, 160], [8, 8, 4, 4, 2, 2, 1],
        (256, 512, 1024, 2048, 2048, 2048),
    ),
    "cityscapes": _official(
        "cityscapes", [4480, 4480, 4480, 4480, 2240, 1120, 560, 280], [35, 35, 20, 14, 10, 4, 1],
        (350, 700, 1400, 2800, 2800, 2800), norm_rule="cityscapes", latent_hw=(4, 8),
    ),
    "ade20k": _official(
        "ade20k", [2416, 2416, 2048, 1024, 1024, 512, 256, 128], [151, 16, 16, 8, 4, 2, 1],
        (604, 1208, 2416, 4832, 4832, 4832), norm_rule="ade20k", dead_blocks=_blocks([("up_4", 128, 64, 1, True)]),
        notes="up_4 (1.868 M parameters) is in the released state dict but never run",
    ),
}


def _largest_divisor_at_most(n: int, limit: int) -> int:
    return max(d for d in range(1, min(n, limit) + 1) if n % d == 0)


def tiny_config(dataset: str, per_class: int = 16, z_per_class: int = 8, **overrides) -> GroupDNetConfig:
    """A small GroupDNet for a low-resolution dataset (the synthetic set): same structure, fewer channels.

    Groups fall C, C, C/2.., 1 like the official ladders; the number of upsamplings follows the image size.
    """
    data = get_dataset_config(dataset)
    classes = data.semantic_nc
    n_up = int(math.log2(data.height // 4))
    half = _largest_divisor_at_most(classes, max(1, classes // 2))
    quarter = _largest_divisor_at_most(half, max(1, half // 2))
    top = classes * per_class
    widths = [top, top, top, top // 2, top // 4, top // 8, top // 16]
    groups = [classes, classes, half, half, quarter, quarter, 1]
    ups = [False] + [i < n_up for i in range(6)]
    rows, fin = [], top
    for name, fout, g, up in zip(_NAMES, widths, groups, ups):
        rows.append((name, fin, max(fout, g), g, up))
        fin = max(fout, g)
    enc = tuple(classes * per_class // 2 * 2 ** min(i, 2) for i in range(n_up))
    config = GroupDNetConfig(
        dataset=dataset,
        fc_out=top,
        blocks=_blocks(rows),
        encoder_widths=enc,
        norm_hidden=classes * 8,
        z_per_class=z_per_class,
        ndf=32,
        n_layers_D=3,
        notes="tiny configuration for low-resolution CPU runs",
    )
    return dataclasses.replace(config, **overrides)


register_family(
    "groupdnet", GroupDNet, OFFICIAL_CONFIGS, tiny_config, cgnorm_discriminator,
    description="GroupDNet: grouped encoder (per-class latent maps) + grouped CG-Block decoder",
    paper="Zhu et al., Semantically Multi-modal Image Synthesis, CVPR 2020",
)
