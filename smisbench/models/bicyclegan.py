"""BicycleGAN (Zhu et al., NeurIPS 2017): U-Net generator with the code added at every layer + ResNet encoder.

The released defaults (junyanz/BicycleGAN: ``unet_256``, ``where_add=all``, ``resnet_256``, nz 8,
instance norm, ``basic_256_multi`` discriminators) are the DeepFashion configuration; module names
match the official ``latest_net_G.pth``/``latest_net_E.pth`` so those files load strictly.

Size choices for the other datasets (not published by the GroupDNet authors):
- the U-Net keeps ``unet_256``'s 8 stride-2 levels wherever both image sides are multiples of 256:
  Cityscapes 256x512 runs the released network unchanged (its bottleneck is 1x2 instead of 1x1);
  the 64x64 synthetic set uses 6 levels (``unet_64``);
- the encoder's final ``AvgPool2d(8)`` becomes a global average pool: identical on the 8x8 map a
  256x256 image gives, and it keeps the ``fc`` input at 4 * nef for 512-wide Cityscapes images.

Parameters (G + E, DeepFashion): 54,799,747 + 2,590,032 = 57,389,779 against the paper's 58.4 M; see
``PAPER_PARAMS``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from smisbench.errors import SmisbenchError
from smisbench.models.base import CodesKind, LatentLayout
from smisbench.models.family import FamilyModel, ModelConfig, config_values, global_code, register_family
from smisbench.models.layers import xavier_init


@dataclass(frozen=True)
class ParamReference:
    """A paper's printed parameter count (G + encoder, DeepFashion) and why ours may differ from it."""

    paper_millions: float
    ours: int
    explanation: str

    @property
    def difference_millions(self) -> float:
        return self.ours / 1e6 - self.paper_millions


PAPER_PARAMS = ParamReference(
    paper_millions=58.4,
    ours=57_389_779,
    explanation=(
        "BicycleGAN's released defaults give G 54,799,747 + E 2,590,032 = 57.39 M; no natural option set "
        "gives 58.4 M (each extra input channel adds 1,024 and each extra code dimension 48,642), so the "
        "printed 58.4 is most likely a misprint of 57.4. We keep the released configuration: -1.01 M."
    ),
)


@dataclass(frozen=True, kw_only=True)
class UnetGANConfig(ModelConfig):
    """Options of BicycleGAN's add-all U-Net generator, its PatchGAN depth and L1 weight (DSCGAN shares them)."""

    nz: int = 8
    ngf: int = 64
    ndf: int = 64
    num_downs: int = 8  # unet_256
    n_layers_D: int = 3
    use_dropout: bool = False
    lambda_L1: float = 10.0


@dataclass(frozen=True)
class BicycleGANConfig(UnetGANConfig):
    """BicycleGAN's network options (names as its ``--`` flags) and loss weights (its train defaults)."""

    nef: int = 64
    encoder_blocks: int = 5  # resnet_256
    num_Ds: int = 2  # basic_256_multi: a full-size and a half-size PatchGAN
    conditional_D: bool = False
    lambda_kl: float = 0.01
    lambda_z: float = 0.5
    lambda_GAN: float = 1.0
    lambda_GAN2: float = 1.0


def _tile(z: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return z.view(z.shape[0], z.shape[1], 1, 1).expand(-1, -1, like.shape[2], like.shape[3])


class UnetBlockWithZ(nn.Module):
    """One U-Net level: the code is concatenated to this level's input before its stride-2 conv.

    ``down``/``submodule``/``up`` mirror BicycleGAN's ``UnetBlock_with_z`` so that keys read
    ``model.submodule.….down.1.weight``.
    """

    def __init__(self, input_nc: int, outer_nc: int, inner_nc: int, nz: int, submodule: "UnetBlockWithZ | None" = None,
                 outermost: bool = False, innermost: bool = False, use_dropout: bool = False):
        super().__init__()
        self.outermost, self.innermost, self.nz = outermost, innermost, nz
        downconv = nn.Conv2d(input_nc + nz, inner_nc, 4, stride=2, padding=1)
        if outermost:
            down: list[nn.Module] = [downconv]
            up: list[nn.Module] = [nn.ReLU(), nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, stride=2, padding=1), nn.Tanh()]
        elif innermost:
            down = [nn.LeakyReLU(0.2), downconv]
            up = [nn.ReLU(), nn.ConvTranspose2d(inner_nc, outer_nc, 4, stride=2, padding=1), _norm(outer_nc)]
        else:
            down = [nn.LeakyReLU(0.2), downconv, _norm(inner_nc)]
            up = [nn.ReLU(), nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, stride=2, padding=1), _norm(outer_nc)]
            if use_dropout:
                up.append(nn.Dropout(0.5))
        self.down = nn.Sequential(*down)
        self.submodule = submodule
        self.up = nn.Sequential(*up)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        x_and_z = torch.cat([x, _tile(z, x)], 1) if self.nz > 0 else x
        if self.innermost:
            return torch.cat([self.up(self.down(x_and_z)), x], 1)
        inner = self.submodule(self.down(x_and_z), z)
        if self.outermost:
            return self.up(inner)
        return torch.cat([self.up(inner), x], 1)


def _norm(channels: int) -> nn.Module:
    return nn.InstanceNorm2d(channels, affine=False)


class UnetGenerator(nn.Module):
    """BicycleGAN's ``G_Unet_add_all``: ``num_downs`` levels, widths ngf..8*ngf, code added at every level."""

    def __init__(self, input_nc: int, nz: int, ngf: int = 64, num_downs: int = 8, use_dropout: bool = False):
        super().__init__()
        if num_downs < 6:
            raise ValueError(f"the add-all U-Net needs at least 6 levels, got {num_downs}")
        self.nz, self.num_downs = nz, num_downs
        block = UnetBlockWithZ(ngf * 8, ngf * 8, ngf * 8, nz, innermost=True)
        for _ in range(num_downs - 5):
            block = UnetBlockWithZ(ngf * 8, ngf * 8, ngf * 8, nz, block, use_dropout=use_dropout)
        block = UnetBlockWithZ(ngf * 4, ngf * 4, ngf * 8, nz, block)
        block = UnetBlockWithZ(ngf * 2, ngf * 2, ngf * 4, nz, block)
        block = UnetBlockWithZ(ngf, ngf, ngf * 2, nz, block)
        self.model = UnetBlockWithZ(input_nc, 3, ngf, nz, block, outermost=True)

    def forward(self, semantics: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        factor = 2**self.num_downs
        h, w = semantics.shape[-2:]
        if h % factor or w % factor:
            raise SmisbenchError(
                f"this U-Net ({self.num_downs} levels) needs height and width divisible by {factor}, got {h}x{w}",
                "feed label maps at the dataset's size or build the model with num_downs <= log2 of the shorter side",
            )
        if z is None or z.dim() != 2 or z.shape[1] != self.nz:
            shape = None if z is None else tuple(z.shape)
            raise SmisbenchError(f"expected codes of shape (B, {self.nz}), got {shape}", "draw codes with model.sample_z(batch)")
        return self.model(semantics, z)


def unet_generator(config: UnetGANConfig) -> UnetGenerator:
    return UnetGenerator(config.data.input_nc, config.nz, config.ngf, config.num_downs, config.use_dropout)


class ResidualDownBlock(nn.Module):
    """BicycleGAN's encoder ``BasicBlock``: pre-activation 3x3 convs with 2x2 mean pooling, pooled 1x1 shortcut."""

    def __init__(self, inplanes: int, outplanes: int):
        super().__init__()
        self.conv = nn.Sequential(
            _norm(inplanes),
            nn.LeakyReLU(0.2),
            nn.Conv2d(inplanes, inplanes, 3, padding=1),
            _norm(inplanes),
            nn.LeakyReLU(0.2),
            nn.Sequential(nn.Conv2d(inplanes, outplanes, 3, padding=1), nn.AvgPool2d(2, 2)),
        )
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(inplanes, outplanes, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + self.shortcut(x)


class ResNetEncoder(nn.Module):
    """BicycleGAN's ``E_ResNet`` (VAE-like): image -> (mu, logvar) vectors through ``fc``/``fcVar``.

    The trailing pool averages the whole map (see the module docstring for why).
    """

    def __init__(self, nz: int, nef: int = 64, n_blocks: int = 5, input_nc: int = 3):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(input_nc, nef, 4, stride=2, padding=1)]
        width = nef
        for n in range(1, n_blocks):
            layers.append(ResidualDownBlock(nef * min(4, n), nef * min(4, n + 1)))
            width = nef * min(4, n + 1)
        layers += [nn.LeakyReLU(0.2), nn.AdaptiveAvgPool2d(1)]
        self.fc = nn.Sequential(nn.Linear(width, nz))  # heads first: the released files list them first
        self.fcVar = nn.Sequential(nn.Linear(width, nz))
        self.conv = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flat = self.conv(image).flatten(1)
        return self.fc(flat), self.fcVar(flat)


class MultiPatchDiscriminator(nn.Module):
    """BicycleGAN's ``D_NLayersMulti``: PatchGANs (padding 1) on the input and on 3x3/stride-2 pooled copies.

    Scale ``i`` has width ``ndf / 2**i``; submodules are named ``<prefix><i>`` (``model_0`` in
    BicycleGAN, ``model0`` in DSGAN), or ``model`` when there is one scale. Output: per scale the
    activations after each LeakyReLU and, last, the prediction map (the SPADE D's convention).
    """

    def __init__(self, input_nc: int, ndf: int = 64, n_layers: int = 3, num_D: int = 2, prefix: str = "model_"):
        super().__init__()
        self.names = ["model"] if num_D == 1 else [f"{prefix}{i}" for i in range(num_D)]
        for i, name in enumerate(self.names):
            self.add_module(name, nn.Sequential(*self._layers(input_nc, int(round(ndf / 2**i)), n_layers)))
        if num_D > 1:
            self.down = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)

    @staticmethod
    def _layers(input_nc: int, ndf: int, n_layers: int) -> list[nn.Module]:
        layers: list[nn.Module] = [nn.Conv2d(input_nc, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        mult = 1
        for n in range(1, n_layers + 1):
            previous, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(ndf * previous, ndf * mult, 4, stride=stride, padding=1), _norm(ndf * mult), nn.LeakyReLU(0.2)]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1))
        return layers

    @staticmethod
    def _features(model: nn.Sequential, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for layer in model:
            x = layer(x)
            if isinstance(layer, nn.LeakyReLU):
                features.append(x)
        return features + [x]

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        outputs = []
        for i, name in enumerate(self.names):
            outputs.append(self._features(getattr(self, name), x))
            if i != len(self.names) - 1:
                x = self.down(x)
        return outputs


class PairedDiscriminators(nn.Module):
    """BicycleGAN's two discriminators: ``D`` judges cVAE-GAN outputs (encoded z), ``D2`` cLR-GAN ones (random z)."""

    def __init__(self, make: Callable[[], nn.Module]):
        super().__init__()
        self.D = make()
        self.D2 = make()

    def forward(self, x: torch.Tensor, branch: str = "vae") -> list[list[torch.Tensor]]:
        if branch not in ("vae", "lr"):
            raise ValueError(f"branch must be 'vae' (D) or 'lr' (D2), got {branch!r}")
        return self.D(x) if branch == "vae" else self.D2(x)


class BicycleGAN(FamilyModel):
    """U-Net generator + ResNet encoder with one global code per image (GLOBAL codes kind); xavier init."""

    codes_kind = CodesKind.GLOBAL

    def build_generator(self, config: BicycleGANConfig) -> nn.Module:
        return unet_generator(config)

    def build_encoder(self, config: BicycleGANConfig) -> nn.Module:
        return ResNetEncoder(config.nz, config.nef, config.encoder_blocks)

    def latent_layout(self, config: BicycleGANConfig) -> LatentLayout:
        return global_code(config.nz)

    def encoder_input(self, image: torch.Tensor, semantics: torch.Tensor) -> torch.Tensor:
        """The encoder sees the real image only, never the label map."""
        return image

    def training_objective(self, discriminator: nn.Module, **options):
        from smisbench.models.objectives_baselines import BicycleGANObjective

        names = ("lambda_L1", "lambda_kl", "lambda_z", "lambda_GAN", "lambda_GAN2", "conditional_D")
        return BicycleGANObjective(discriminator, **config_values(self.config, names, options))


def build_discriminator(config: BicycleGANConfig) -> PairedDiscriminators:
    """D and D2 (``basic_256_multi``); they see the image alone unless ``conditional_D``."""
    input_nc = 3 + (config.data.input_nc if config.conditional_D else 0)
    pair = PairedDiscriminators(lambda: MultiPatchDiscriminator(input_nc, config.ndf, config.n_layers_D, config.num_Ds))
    xavier_init(pair)
    return pair


_RELEASED = "BicycleGAN release defaults: unet_256 (add-all), resnet_256 encoder, nz 8, basic_256_multi D x2"
CONFIGS = {
    "deepfashion": BicycleGANConfig("deepfashion", notes=_RELEASED),
    "cityscapes": BicycleGANConfig(
        "cityscapes", notes=_RELEASED + "; 256x512 input (bottleneck 1x2), encoder globally pooled"
    ),
    "ade20k": BicycleGANConfig("ade20k", notes=_RELEASED),
}


def tiny(dataset: str) -> BicycleGANConfig:
    return BicycleGANConfig(
        dataset, ngf=8, nef=8, ndf=8, num_downs=6, notes="tiny smoke-test widths, unet_64 for 64x64 images"
    )


ENTRY = register_family(
    "bicyclegan", BicycleGAN, CONFIGS, tiny, build_discriminator,
    description="BicycleGAN: add-all U-Net G + ResNet E, one global code; cVAE-GAN + cLR-GAN objective",
    paper="Zhu et al., NeurIPS 2017 (junyanz/BicycleGAN); GroupDNet paper Tables 1-2 (58.4 M printed)",
)
