"""SPADE (Park et al., CVPR 2019) and VSPADE: the label-to-image baseline and its VAE variant with a global code.

``spade`` is the generator as NVlabs released it for Cityscapes/ADE20K (a random 256-d code through a
Linear ``fc``); ``vspade`` adds SPADE's conv encoder, as the GroupDNet paper's VSPADE baseline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from smisbench.datasets_config import DatasetConfig, get_dataset_config
from smisbench.models.base import CodesKind, LatentLayout, SMISModel
from smisbench.models.discriminator import discriminator_for
from smisbench.models.layers import CGBlock, ConvEncoderTrunk, NormSpec, xavier_init
from smisbench.models.registry import ModelEntry, register, synthetic_available


@dataclass(frozen=True)
class SpadeConfig:
    """SPADE generator/encoder shape. ``upsampling`` is the official ``num_upsampling_layers`` (normal: 5, more: 6)."""

    dataset: str
    ngf: int = 64
    z_dim: int = 256
    upsampling: str = "more"
    use_encoder: bool = False
    encoder_ndf: int = 64
    encoder_layers: int = 6  # stride-2 convs; the official encoder resizes its input to 256x256 first
    encoder_size: tuple[int, int] | None = (256, 256)
    norm_hidden: int = 128
    spectral: bool = True
    norm_kind: str = "batch"
    sync_bn: bool = True
    dontcare_last: bool = False  # NVlabs' ADE20K order: raw label 0 ("other") is the last one-hot channel
    ndf: int = 64
    num_D: int = 2
    n_layers_D: int = 4
    notes: str = field(default="", compare=False)

    @property
    def data(self) -> DatasetConfig:
        return get_dataset_config(self.dataset)

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

    def forward(self, semantics: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        h, w = self.config.latent_hw
        x = self.fc(z).view(z.shape[0], 16 * self.config.ngf, h, w)
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


class Spade(SMISModel):
    """SPADE generator with a global code (and, for VSPADE, the encoder that infers it from a real image)."""

    codes_kind = CodesKind.GLOBAL

    def __init__(self, config: SpadeConfig):
        super().__init__(config.data)
        self.config = config
        self.netG = SpadeGenerator(config)
        self.netE = SpadeEncoder(config) if config.use_encoder else None
        self.latent = LatentLayout((config.z_dim,), (config.z_dim,), False)
        xavier_init(self)

    def semantics(self, label: torch.Tensor, instance: torch.Tensor | None = None, source: str = "label map") -> torch.Tensor:
        semantics = super().semantics(label, instance, source)
        if self.config.dontcare_last:
            classes = self.dataset.semantic_nc
            semantics = torch.cat([semantics[:, 1:classes], semantics[:, :1], semantics[:, classes:]], dim=1)
        return semantics


def spade_discriminator(config: SpadeConfig) -> nn.Module:
    return discriminator_for(config.data.input_nc, config.ndf, config.n_layers_D, config.num_D, config.spectral)


def _tiny(dataset: str, use_encoder: bool) -> SpadeConfig:
    data = get_dataset_config(dataset)
    layers = int(math.log2(min(data.height, data.width) // 4))
    return SpadeConfig(
        dataset=dataset,
        ngf=16,
        z_dim=64,
        upsampling="more",
        use_encoder=use_encoder,
        encoder_ndf=16,
        encoder_layers=layers,
        encoder_size=None,
        norm_hidden=32,
        ndf=32,
        n_layers_D=3,
        notes="tiny configuration for low-resolution CPU runs",
    )


def spade_configs() -> dict[str, SpadeConfig]:
    configs = {
        "deepfashion": SpadeConfig("deepfashion"),
        "cityscapes": SpadeConfig("cityscapes", upsampling="more", notes="NVlabs release config"),
        "ade20k": SpadeConfig("ade20k", upsampling="normal", dontcare_last=True, notes="NVlabs release config"),
    }
    if synthetic_available():
        configs["synthetic"] = _tiny("synthetic", use_encoder=False)
    return configs


def vspade_configs() -> dict[str, SpadeConfig]:
    configs = {
        name: SpadeConfig(**{**config.__dict__, "use_encoder": True})
        for name, config in spade_configs().items()
        if name != "synthetic"
    }
    if synthetic_available():
        configs["synthetic"] = _tiny("synthetic", use_encoder=True)
    return configs


register(
    ModelEntry(
        name="spade",
        description="SPADE generator (label-to-image; random global code through a Linear fc)",
        codes_kind=CodesKind.GLOBAL,
        configs=spade_configs,
        build=Spade,
        build_discriminator=spade_discriminator,
        paper="Park et al., Semantic Image Synthesis with Spatially-Adaptive Normalization, CVPR 2019",
    )
)

register(
    ModelEntry(
        name="vspade",
        description="VSPADE: SPADE generator + conv encoder with a global 256-d code (GroupDNet paper baseline)",
        codes_kind=CodesKind.GLOBAL,
        configs=vspade_configs,
        build=Spade,
        build_discriminator=spade_discriminator,
        paper="Zhu et al. CVPR 2020, Table 1 (VSPADE)",
    )
)
