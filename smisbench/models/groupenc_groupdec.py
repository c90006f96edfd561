"""GroupEnc and GroupDec (Zhu et al. CVPR 2020, Table 1): VSPADE with only its encoder, or only its decoder,
grouped by class.

Neither configuration is published; both were chosen to reproduce Table 1's parameter counts
(G + encoder, DeepFashion) with the official building blocks:

- GroupEnc = GroupDNet's grouped encoder (per-class 8-channel code maps, 12,835,712 parameters) + the
  SPADE decoder of VSPADE (ngf 64) whose Linear ``fc`` (vector z -> 4x4 map) is replaced by a 3x3 conv
  64 -> 1024 on the code maps: 105,561,155 (paper 105.5, which truncates to one decimal).
- GroupDec = GroupDNet's decoder (exact official shapes) + an ungrouped VSPADE-style encoder of width 96
  (3 -> 96 -> 192 -> 384 -> 768 -> 768 -> 768) on the whole image, ending in 3x3 conv mu/var heads that
  give the decoder's 64-channel 4x4 code maps: 111,312,387 (paper 111.3).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from smisbench.errors import SmisbenchError
from smisbench.models.family import CGNormConfig, cgnorm_discriminator, register_family
from smisbench.models.groupdnet import (
    OFFICIAL_CONFIGS,
    GroupDNet,
    GroupDNetConfig,
    GroupDNetEncoder,
    PerClassModel,
    tiny_config,
)
from smisbench.models.groupnet import derive_config
from smisbench.models.layers import ConvEncoderTrunk
from smisbench.models.spade import SpadeConfig, SpadeGenerator

# ----------------------------------------------------------------------------------------------- GroupEnc


@dataclass(frozen=True)
class GroupEncConfig(CGNormConfig):
    """SPADE decoder shape + GroupDNet grouped-encoder shape.

    The encoder fields carry GroupDNetConfig's names (``encoder_widths``, ``z_per_class``, ``spectral``),
    so GroupDNet's encoder is built from this config unchanged.
    """

    ngf: int = 64
    upsampling: str = "more"
    norm_hidden: int = 128
    encoder_widths: tuple[int, ...] = (256, 512, 1024, 2048, 2048, 2048)
    z_per_class: int = 8
    latent_hw: tuple[int, int] = (4, 4)

    def spade_config(self) -> SpadeConfig:
        """The VSPADE decoder this model keeps (its Linear fc is replaced; z_dim only sizes that placeholder)."""
        return SpadeConfig(
            dataset=self.dataset,
            ngf=self.ngf,
            z_dim=1,
            upsampling=self.upsampling,
            norm_hidden=self.norm_hidden,
            spectral=self.spectral,
            norm_kind=self.norm_kind,
            sync_bn=self.sync_bn,
        )


class GroupEncGenerator(SpadeGenerator):
    """SPADE's decoder started from per-class code maps by an ungrouped 3x3 conv (all classes mix here)."""

    def __init__(self, config: GroupEncConfig):
        super().__init__(config.spade_config())
        code_channels = config.data.semantic_nc * config.z_per_class
        self.fc = nn.Conv2d(code_channels, 16 * config.ngf, 3, padding=1)

    def start_map(self, z: torch.Tensor) -> torch.Tensor:
        return self.fc(z)


class GroupEnc(PerClassModel):
    """Per-class codes from the grouped encoder (class c owns z channels [8c, 8c+8)); the decoder is SPADE's,
    so redrawing one class's code may change every class's pixels (Table 1: mOCD 0.0065)."""

    def build_generator(self, config: GroupEncConfig) -> nn.Module:
        return GroupEncGenerator(config)

    def build_encoder(self, config: GroupEncConfig) -> nn.Module:
        return GroupDNetEncoder(config)  # reads data, encoder_widths, z_per_class, spectral


def groupenc_deepfashion() -> GroupEncConfig:
    return GroupEncConfig(
        dataset="deepfashion",
        notes="not published: GroupDNet encoder + VSPADE decoder with a 3x3 conv fc 64->1024 (105.56 M vs 105.5)",
    )


def groupenc_tiny(dataset: str) -> GroupEncConfig:
    """SPADE's tiny decoder (ngf 16, five upsamplings, so the codes are at least 2x2: instance norm needs
    more than one pixel) and a grouped encoder deep enough to reach that size."""
    spade = SpadeConfig(dataset, ngf=16, norm_hidden=32, upsampling="normal")
    h, w = spade.latent_hw
    if h < 1 or w < 1 or h * 2**spade.num_up != spade.data.height:
        raise SmisbenchError(
            f"dataset {dataset!r} ({spade.data.height}x{spade.data.width}) is too small or odd-sized for GroupEnc's "
            f"tiny config",
            f"use an image size that is a multiple of {2**spade.num_up} (at least {2**spade.num_up} pixels a side)",
        )
    classes = spade.data.semantic_nc
    widths = tuple(classes * 8 * 2 ** min(i, 2) for i in range(spade.num_up))
    return GroupEncConfig(
        dataset=dataset,
        ngf=16,
        upsampling="normal",
        norm_hidden=32,
        encoder_widths=widths,
        latent_hw=(h, w),
        ndf=32,
        n_layers_D=3,
        notes="tiny configuration for low-resolution CPU runs",
    )


# ----------------------------------------------------------------------------------------------- GroupDec


@dataclass(frozen=True)
class GroupDecConfig(GroupDNetConfig):
    """GroupDNet's config; ``encoder_widths`` are those of the ungrouped whole-image encoder."""


class GroupDecEncoder(ConvEncoderTrunk):
    """VSPADE-style encoder on the whole image (ungrouped convs) with 3x3 conv heads giving code maps."""

    def __init__(self, config: GroupDecConfig):
        super().__init__(3, config.encoder_widths, groups=1, spectral=config.spectral)
        width, out = config.encoder_widths[-1], config.data.semantic_nc * config.z_per_class
        self.fc_mu = nn.Conv2d(width, out, 3, padding=1)
        self.fc_var = nn.Conv2d(width, out, 3, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = super().forward(x)
        return self.fc_mu(x), self.fc_var(x)


class GroupDec(GroupDNet):
    """GroupDNet's decoder with an ungrouped encoder.

    Codes: per-class in the decoder's sense only. The decoder's ``fc`` is grouped by class, so z channels
    [8c, 8c+8) feed class c's group, and the SMIS sampler redraws that block as for GroupDNet; but the
    encoder sees the whole image, so every class's encoded block depends on every class's pixels.
    """

    def build_encoder(self, config: GroupDecConfig) -> nn.Module:
        return GroupDecEncoder(config)

    def encoder_input(self, image: torch.Tensor, semantics: torch.Tensor) -> torch.Tensor:
        return image


def groupdec_deepfashion() -> GroupDecConfig:
    return derive_config(
        OFFICIAL_CONFIGS["deepfashion"],
        GroupDecConfig,
        encoder_widths=(96, 192, 384, 768, 768, 768),
        notes="not published: GroupDNet decoder + ungrouped width-96 encoder with conv heads (111.31 M vs 111.3)",
    )


def groupdec_tiny(dataset: str) -> GroupDecConfig:
    base = tiny_config(dataset)
    widths = tuple(16 * 2 ** min(i, 2) for i in range(len(base.encoder_widths)))
    return derive_config(base, GroupDecConfig, encoder_widths=widths)


# DeepFashion only: the paper ran GroupEnc and GroupDec for Table 1 (DeepFashion) alone.
register_family(
    "groupenc", GroupEnc, {"deepfashion": groupenc_deepfashion()}, groupenc_tiny, cgnorm_discriminator,
    description="GroupEnc: VSPADE with a class-grouped encoder (per-class code maps) and SPADE's decoder",
    paper="Zhu et al. CVPR 2020, Table 1 (GroupEnc, 105.5 M)",
)
register_family(
    "groupdec", GroupDec, {"deepfashion": groupdec_deepfashion()}, groupdec_tiny, cgnorm_discriminator,
    description="GroupDec: VSPADE with GroupDNet's class-grouped decoder and an ungrouped encoder",
    paper="Zhu et al. CVPR 2020, Table 1 (GroupDec, 111.3 M)",
)
