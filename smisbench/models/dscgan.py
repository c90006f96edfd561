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

from smisbench.datasets_config import DatasetConfig, get_dataset_config
from smisbench.models.base import CodesKind, LatentLayout, SMISModel
from smisbench.models.bicyclegan import MultiPatchDiscriminator, ParamReference, UnetGenerator
from smisbench.models.registry import ModelEntry, register, synthetic_available

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
class DSCGANConfig:
    """Generator/discriminator options (BicycleGAN's names) and DSGAN's loss weights.

    ``lambda_ne`` is 8 in DSGAN's BicycleGAN-network configs (facades, maps) and 10 in its pix2pixHD one
    (Cityscapes); every config here uses BicycleGAN's networks, so 8.
    """

    dataset: str
    nz: int = 8
    ngf: int = 64
    ndf: int = 64
    num_downs: int = 8
    num_D: int = 2
    n_layers_D: int = 3
    use_dropout: bool = True
    lambda_ne: float = 8.0
    lambda_L1: float = 10.0
    notes: str = field(default="", compare=False)

    @property
    def data(self) -> DatasetConfig:
        return get_dataset_config(self.dataset)


class DSCGAN(SMISModel):
    """BicycleGAN's generator with one global code and no encoder (GLOBAL codes kind)."""

    codes_kind = CodesKind.GLOBAL

    def __init__(self, config: DSCGANConfig):
        super().__init__(config.data)
        self.config = config
        self.latent = LatentLayout(draw_shape=(config.nz,), shape=(config.nz,), per_class=False)
        self.netG = UnetGenerator(config.data.input_nc, config.nz, config.ngf, config.num_downs, config.use_dropout)

    def training_objective(self, discriminator: nn.Module, **options):
        from smisbench.models.objectives_baselines import DSCGANObjective

        weights = dict(lambda_ne=self.config.lambda_ne, lambda_L1=self.config.lambda_L1)
        weights.update(options)
        return DSCGANObjective(discriminator, **weights)


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


def _configs() -> dict[str, DSCGANConfig]:
    note = "BicycleGAN's unet_256 add-all G (dropout in training), no encoder, conditional basic_256_multi D"
    configs = {name: DSCGANConfig(name, notes=note) for name in ("deepfashion", "cityscapes", "ade20k")}
    if synthetic_available():
        configs["synthetic"] = DSCGANConfig("synthetic", ngf=8, ndf=8, num_downs=6, notes="tiny smoke-test widths, unet_64")
    return configs


ENTRY = register(
    ModelEntry(
        name="dscgan",
        description="DSCGAN: diversity-sensitive regularisation on a conditional GAN with BicycleGAN's G; one global code",
        codes_kind=CodesKind.GLOBAL,
        configs=_configs,
        build=DSCGAN,
        build_discriminator=build_discriminator,
        paper="Yang et al., ICLR 2019 (maga33/DSGAN); GroupDNet paper Tables 1-2 (58.4 M printed)",
    )
)
