"""DSCGAN (Yang et al., ICLR 2019, "Diversity-Sensitive Conditional GANs") on BicycleGAN's networks.

As in maga33/DSGAN's BicycleGAN setting: BicycleGAN's add-all U-Net generator (dropout on while
training, PyTorch's default init), no encoder (no KL, no latent regression) and one conditional
two-scale PatchGAN on (image, label) with keys ``model0.*``/``model1.*``. The diversity-sensitive
regulariser lives in :class:`smisbench.models.objectives_baselines.DSCGANObjective`.

Parameters: G 54,799,747 (DeepFashion; no encoder) against the paper's 58.4 M, which equals its
BicycleGAN entry; see ``PAPER_PARAMS``. DSGAN's own Cityscapes run used a pix2pixHD generator with a
64-d code and a VGG loss; here every dataset uses BicycleGAN's networks, as the GroupDNet paper's
identical counts suggest.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from smisbench.models.base import CodesKind, LatentLayout
from smisbench.models.bicyclegan import MultiPatchDiscriminator, ParamReference, UnetGANConfig, unet_generator
from smisbench.models.family import FamilyModel, config_values, global_code, register_family

PAPER_PARAMS = ParamReference(
    paper_millions=58.4,
    ours=54_799_747,
    explanation=(
        "DSCGAN has no encoder: G alone is BicycleGAN's 54,799,747. The paper prints BicycleGAN's 58.4 M "
        "for it, i.e. it counted BicycleGAN's encoder too (G + E would be 57,389,779, BicycleGAN's own "
        "count, itself 1.01 M below the printed 58.4): -3.60 M."
    ),
)


@dataclass(frozen=True)
class DSCGANConfig(UnetGANConfig):
    """Generator/discriminator options (BicycleGAN's names) and DSGAN's loss weights.

    ``lambda_ne`` is 8 in DSGAN's BicycleGAN-network configs (facades, maps) and 10 in its pix2pixHD one
    (Cityscapes); every config here uses BicycleGAN's networks, so 8.
    """

    num_D: int = 2
    use_dropout: bool = field(default=True, kw_only=True)  # DSGAN trains BicycleGAN's U-Net with dropout
    lambda_ne: float = 8.0


class DSCGAN(FamilyModel):
    """BicycleGAN's generator with one global code and no encoder (GLOBAL codes kind)."""

    codes_kind = CodesKind.GLOBAL

    def build_generator(self, config: DSCGANConfig) -> nn.Module:
        return unet_generator(config)

    def latent_layout(self, config: DSCGANConfig) -> LatentLayout:
        return global_code(config.nz)

    def init_weights(self) -> None:
        """DSGAN keeps PyTorch's default initialisation."""

    def training_objective(self, discriminator: nn.Module, **options):
        from smisbench.models.objectives_baselines import DSCGANObjective

        return DSCGANObjective(discriminator, **config_values(self.config, ("lambda_ne", "lambda_L1"), options))


class ConditionalPatchDiscriminator(MultiPatchDiscriminator):
    """DSGAN's D: BicycleGAN's multi-scale PatchGAN on the image concatenated with the label input."""

    def __init__(self, semantic_nc: int, ndf: int = 64, n_layers: int = 3, num_D: int = 2):
        super().__init__(3 + semantic_nc, ndf, n_layers, num_D, prefix="model")

    def forward(self, image: torch.Tensor, semantics: torch.Tensor | None = None) -> list[list[torch.Tensor]]:
        """``forward(torch.cat([image, semantics], 1))`` also works, as the trainer's D calls do."""
        x = image if semantics is None else torch.cat([image, semantics], 1)
        return super().forward(x)


def build_discriminator(config: DSCGANConfig) -> ConditionalPatchDiscriminator:
    """PyTorch's default init, as DSGAN's ``load_networks`` builds its D (and G) without an init call."""
    return ConditionalPatchDiscriminator(config.data.input_nc, config.ndf, config.n_layers_D, config.num_D)


_NOTE = "BicycleGAN's unet_256 add-all G (dropout in training), no encoder, conditional basic_256_multi D"


def tiny(dataset: str) -> DSCGANConfig:
    return DSCGANConfig(dataset, ngf=8, ndf=8, num_downs=6, notes="tiny smoke-test widths, unet_64")


ENTRY = register_family(
    "dscgan", DSCGAN, {name: DSCGANConfig(name, notes=_NOTE) for name in ("deepfashion", "cityscapes", "ade20k")},
    tiny, build_discriminator,
    description="DSCGAN: diversity-sensitive regularisation on a conditional GAN with BicycleGAN's G; one global code",
    paper="Yang et al., ICLR 2019 (maga33/DSGAN); GroupDNet paper Tables 1-2 (58.4 M printed)",
)
