"""SPADE (Park et al., CVPR 2019) and VSPADE: the label-to-image baseline and its VAE variant with a global code.

``spade`` is the generator as NVlabs released it for Cityscapes/ADE20K (a random 256-d code through a
Linear ``fc``); ``vspade`` adds SPADE's conv encoder, as the GroupDNet paper's VSPADE baseline.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from smisbench.datasets_config import get_dataset_config
from smisbench.models.base import CodesKind, LatentLayout
from smisbench.models.family import CGNormConfig, FamilyModel, cgnorm_discriminator, global_code, register_family
from smisbench.models.layers import CGBlock, ConvEncoderTrunk, NormSpec


@dataclass(frozen=True)
class SpadeConfig(CGNormConfig):
    """SPADE generator/encoder shape. ``upsampling`` is the official ``num_upsampling_layers`` (normal: 5, more: 6)."""

    ngf: int = 64
    z_dim: int = 256
    upsampling: str = "more"
    use_encoder: bool = False
    encoder_ndf: int = 64
    encoder_layers: int = 6  # stride-2 convs; the official encoder resizes its input to 256x256 first
    encoder_size: tuple[int, int] | None = (256, 256)
    norm_hidden: int = 128
    dontcare_last: bool = False  # NVlabs' ADE20K order: raw label 0 ("other") is the last one-hot channel

    @property
    def num_up(self) -> int:
        return {"normal": 5, "more": 6}[self.upsampling]

    @property
    def latent_hw(self) -> tuple[int, int]:
        width = self.data.width // 2**self.num_up
        return (round(width / (self.data.width / self.data.height)), width)


class SpadeGenerator(nn.Module):
    """``fc`` (Linear on z) -> 7 SPADE ResBlks with nearest x2 upsamplings -> ``conv_img`` -> tanh."""

    def __init__(self, config: SpadeConfig):
        super().__init__()
        self.config = config
        nf, (h, w) = config.ngf, config.latent_hw
        self.fc = nn.Linear(config.z_dim, 16 * nf * h * w)
        norm = NormSpec(config.data.input_nc, config.norm_hidden, 1, 1)
        widths = [16 * nf, 16 * nf, 16 * nf, 16 * nf, 8 * nf, 4 * nf, 2 * nf, nf]
        names = ("head_0", "G_middle_0", "G_middle_1", "up_0", "up_1", "up_2", "up_3")
        for name, fin, fout in zip(names, widths, widths[1:]):
            setattr(self, name, CGBlock(fin, fout, 1, norm, config.spectral, config.norm_kind))
        self.conv_img = nn.Conv2d(nf, 3, 3, padding=1)
        # upsample before: G_middle_0, G_middle_1 ('more' only), up_0..up_3
        self.schedule = [(n, n not in ("head_0",) and (n != "G_middle_1" or config.upsampling == "more")) for n in names]

    def start_map(self, z: torch.Tensor) -> torch.Tensor:
        """The map the blocks start from: ``fc`` on the code vector, reshaped to ``latent_hw``."""
        h, w = self.config.latent_hw
        return self.fc(z).view(z.shape[0], 16 * self.config.ngf, h, w)

    def forward(self, semantics: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        x = self.start_map(z)
        for name, upsample in self.schedule:
            if upsample:
                x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = getattr(self, name)(x, semantics)
        return torch.tanh(self.conv_img(F.leaky_relu(x, 0.2)))


class SpadeEncoder(ConvEncoderTrunk):
    """SPADE's image encoder: stride-2 convs to 4x4, then Linear mu/logvar vectors (one global code)."""

    def __init__(self, config: SpadeConfig):
        ndf = config.encoder_ndf
        widths = tuple(ndf * min(2**i, 8) for i in range(config.encoder_layers))
        super().__init__(3, widths, groups=1, spectral=config.spectral)
        self.size = config.encoder_size
        flat = widths[-1] * 4 * 4
        self.fc_mu = nn.Linear(flat, config.z_dim)
        self.fc_var = nn.Linear(flat, config.z_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.size is not None and tuple(x.shape[-2:]) != tuple(self.size):
            x = F.interpolate(x, size=self.size, mode="bilinear")
        x = super().forward(x).flatten(1)
        return self.fc_mu(x), self.fc_var(x)


class Spade(FamilyModel):
    """SPADE generator with a global code (and, for VSPADE, the encoder that infers it from a real image)."""

    codes_kind = CodesKind.GLOBAL

    def build_generator(self, config: SpadeConfig) -> nn.Module:
        return SpadeGenerator(config)

    def build_encoder(self, config: SpadeConfig) -> nn.Module | None:
        return SpadeEncoder(config) if config.use_encoder else None

    def latent_layout(self, config: SpadeConfig) -> LatentLayout:
        return global_code(config.z_dim)

    def semantics(self, label: torch.Tensor, instance: torch.Tensor | None = None, source: str = "label map") -> torch.Tensor:
        semantics = super().semantics(label, instance, source)
        if self.config.dontcare_last:
            classes = self.dataset.semantic_nc
            semantics = torch.cat([semantics[:, 1:classes], semantics[:, :1], semantics[:, classes:]], dim=1)
        return semantics


def spade_tiny(dataset: str) -> SpadeConfig:
    """Narrow SPADE for a low-resolution dataset; the encoder (VSPADE's) reaches 4x4 without a resize."""
    data = get_dataset_config(dataset)
    return SpadeConfig(
        dataset=dataset,
        ngf=16,
        z_dim=64,
        upsampling="more",
        encoder_ndf=16,
        encoder_layers=int(math.log2(min(data.height, data.width) // 4)),
        encoder_size=None,
        norm_hidden=32,
        ndf=32,
        n_layers_D=3,
        notes="tiny configuration for low-resolution CPU runs",
    )


def with_encoder(config: SpadeConfig) -> SpadeConfig:
    """The VSPADE config of a SPADE config: the same generator plus the encoder."""
    return dataclasses.replace(config, use_encoder=True)


SPADE_CONFIGS = {
    "deepfashion": SpadeConfig("deepfashion"),
    "cityscapes": SpadeConfig("cityscapes", upsampling="more", notes="NVlabs release config"),
    "ade20k": SpadeConfig("ade20k", upsampling="normal", dontcare_last=True, notes="NVlabs release config"),
}

register_family(
    "spade", Spade, SPADE_CONFIGS, spade_tiny, cgnorm_discriminator,
    description="SPADE generator (label-to-image; random global code through a Linear fc)",
    paper="Park et al., Semantic Image Synthesis with Spatially-Adaptive Normalization, CVPR 2019",
)
register_family(
    "vspade", Spade, {name: with_encoder(config) for name, config in SPADE_CONFIGS.items()},
    lambda dataset: with_encoder(spade_tiny(dataset)), cgnorm_discriminator,
    description="VSPADE: SPADE generator + conv encoder with a global 256-d code (GroupDNet paper baseline)",
    paper="Zhu et al. CVPR 2020, Table 1 (VSPADE)",
)
