"""GroupNet (Zhu et al. CVPR 2020, Sec. 3.4 and Table 1): every encoder and decoder conv grouped by class.

Unlike GroupDNet, the number of groups never decreases: every CG-Block keeps ``groups = C``, so class
c's features depend only on class c's code and mask until a small fusion module of plain convs merges
the classes at the end. ``GroupNetGenerator.pre_fusion`` exposes the features right before that module.

Configuration (not published; chosen to reproduce Table 1's 97.7 M, G + encoder, DeepFashion):
decoder = GroupDNet's DeepFashion ladder with every block at 8 groups and ngf 192
(3072 -> ... -> 192 channels, 24 per class at the end), CG-Norm hidden 128 (16 per class);
encoder = GroupDNet's grouped encoder; fusion = two 3x3 convs 192 -> 48 -> 48 (LeakyReLU 0.2 before
each) before ``conv_img`` 48 -> 3. Total 97,793,267 (paper 97.7; the paper truncates to one decimal:
GroupDNet's exact 109.16 M is printed as 109.1, GroupEnc's 105.56 M as 105.5).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from smisbench.errors import SmisbenchError
from smisbench.models.family import cgnorm_discriminator, register_family
from smisbench.models.groupdnet import (
    OFFICIAL_CONFIGS,
    GroupDNet,
    GroupDNetConfig,
    GroupDNetGenerator,
    _ladder,
    tiny_config,
)


@dataclass(frozen=True)
class GroupNetConfig(GroupDNetConfig):
    """GroupDNet's config with every block grouped by class, plus the widths of the fusion convs."""

    fusion_widths: tuple[int, ...] = (48, 48)


def fusion_module(in_channels: int, widths: tuple[int, ...]) -> nn.Sequential:
    """Plain (ungrouped) 3x3 convs that merge the per-class features: LeakyReLU 0.2 before each conv."""
    layers: list[nn.Module] = []
    previous = in_channels
    for width in widths:
        layers += [nn.LeakyReLU(0.2), nn.Conv2d(previous, width, 3, padding=1)]
        previous = width
    return nn.Sequential(*layers)


def check_grouped_by_class(config: GroupDNetConfig) -> None:
    """GroupNet's defining property: every block has exactly one group per class."""
    classes = config.data.semantic_nc
    wrong = [spec.name for spec in config.blocks if spec.groups != classes]
    if wrong:
        raise SmisbenchError(
            f"GroupNet needs one group per class ({classes}) in every block; blocks {wrong} differ",
            "give every BlockSpec groups equal to the dataset's class count (GroupDNet is the model with fewer)",
        )


class GroupNetGenerator(GroupDNetGenerator):
    """GroupDNet's decoder with class-grouped blocks throughout, then the fusion module and ``conv_img``."""

    def __init__(self, config: GroupNetConfig):
        check_grouped_by_class(config)
        super().__init__(config)
        last = config.blocks[-1].fout
        self.fusion = fusion_module(last, config.fusion_widths)
        self.conv_img = nn.Conv2d(config.fusion_widths[-1] if config.fusion_widths else last, 3, 3, padding=1)

    def pre_fusion(self, semantics: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Features entering the fusion module: class c owns channels ``[c*k, (c+1)*k)``, k = channels / C."""
        return self.features(semantics, z)

    def forward(self, semantics: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        x = self.fusion(self.pre_fusion(semantics, z))
        return torch.tanh(self.conv_img(F.leaky_relu(x, 0.2)))


class GroupNet(GroupDNet):
    """Grouped encoder (per-class code maps, as GroupDNet) + class-grouped decoder + fusion module."""

    def build_generator(self, config: GroupNetConfig) -> nn.Module:
        return GroupNetGenerator(config)

    def pre_fusion(self, semantics: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.netG.pre_fusion(semantics, z)


def derive_config(base: GroupDNetConfig, kind: type[GroupDNetConfig], **changes) -> GroupDNetConfig:
    """``base``'s fields as a ``kind`` config (a GroupDNetConfig subclass) with ``changes`` applied."""
    fields = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
    return kind(**{**fields, **changes})


def all_groups(config: GroupDNetConfig, groups: int) -> tuple:
    """The same block ladder with every block at ``groups`` groups."""
    return tuple(dataclasses.replace(spec, groups=groups) for spec in config.blocks)


def groupnet_deepfashion() -> GroupNetConfig:
    ngf = 192
    return derive_config(
        OFFICIAL_CONFIGS["deepfashion"],
        GroupNetConfig,
        fc_out=16 * ngf,
        blocks=_ladder([16 * ngf] * 4 + [8 * ngf, 4 * ngf, 2 * ngf, ngf], [8] * 7),
        fusion_widths=(48, 48),
        notes="not published: every block at 8 groups, ngf 192, fusion 192->48->48 (97.79 M vs the paper's 97.7)",
    )


def groupnet_tiny(dataset: str, per_class: int = 32) -> GroupNetConfig:
    """GroupDNet's tiny ladder with every block at C groups; ``per_class`` channels per class at the start."""
    base = tiny_config(dataset, per_class=per_class)
    return derive_config(
        base,
        GroupNetConfig,
        blocks=all_groups(base, base.data.semantic_nc),
        fusion_widths=(16, 16),
        notes="tiny configuration for low-resolution CPU runs",
    )


# DeepFashion only, as the paper (GroupNet did not fit on GPUs for ADE20K; Table 1 is DeepFashion).
register_family(
    "groupnet", GroupNet, {"deepfashion": groupnet_deepfashion()}, groupnet_tiny, cgnorm_discriminator,
    description="GroupNet: class-grouped encoder and decoder (groups = C everywhere) + plain-conv fusion module",
    paper="Zhu et al. CVPR 2020, Sec. 3.4 and Table 1 (GroupNet, 97.7 M)",
)
