"""pix2pixHD (Wang et al., CVPR 2018): global generator, optional local enhancer, multi-scale D.

A deterministic label-to-image baseline (Table 2 of the GroupDNet paper): it has no latent code.
Module names and ``nn.Sequential`` indices follow NVIDIA/pix2pixHD so that released generators
(``label2city_1024p``: local enhancer; global-generator files) load strictly; old checkpoints
carry InstanceNorm ``running_mean``/``running_var`` entries that :func:`legacy_key_filter` drops.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from smisbench.errors import SmisbenchError
from smisbench.models.base import CodesKind
from smisbench.models.family import FamilyModel, ModelConfig, config_values, register_family

LEGACY_NORM_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")


@dataclass(frozen=True)
class Pix2PixHDConfig(ModelConfig):
    """pix2pixHD's generator/discriminator options (same names and defaults as its ``--`` flags).

    ``ngf`` is the width of the finest stage: with ``n_local_enhancers`` = 1 the global generator inside
    runs at ``2 * ngf`` on a half-resolution input (``--netG local``); with 0 it is the whole generator.
    """

    ngf: int = 64
    n_downsample_global: int = 4
    n_blocks_global: int = 9
    n_local_enhancers: int = 0
    n_blocks_local: int = 3
    ndf: int = 64
    n_layers_D: int = 3
    num_D: int = 2
    lambda_feat: float = 10.0
    lambda_vgg: float = 10.0


def _norm(channels: int) -> nn.Module:
    return nn.InstanceNorm2d(channels, affine=False)


class ResnetBlock(nn.Module):
    """Two reflect-padded 3x3 convs with instance norm and an identity shortcut (``conv_block.1``/``.5``)."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, 3),
            _norm(dim),
            nn.ReLU(True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, 3),
            _norm(dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


def global_generator_layers(input_nc: int, ngf: int, n_downsampling: int, n_blocks: int, with_output: bool = True) -> list[nn.Module]:
    """The global generator as a flat layer list; without the output head when a local enhancer follows."""
    layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, 7), _norm(ngf), nn.ReLU(True)]
    for i in range(n_downsampling):
        width = ngf * 2**i
        layers += [nn.Conv2d(width, width * 2, 3, stride=2, padding=1), _norm(width * 2), nn.ReLU(True)]
    bottleneck = ngf * 2**n_downsampling
    layers += [ResnetBlock(bottleneck) for _ in range(n_blocks)]
    for i in range(n_downsampling):
        width = ngf * 2 ** (n_downsampling - i)
        layers += [
            nn.ConvTranspose2d(width, width // 2, 3, stride=2, padding=1, output_padding=1),
            _norm(width // 2),
            nn.ReLU(True),
        ]
    if with_output:
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7), nn.Tanh()]
    return layers


def _check_size(semantics: torch.Tensor, factor: int, what: str) -> None:
    h, w = semantics.shape[-2:]
    if h % factor or w % factor or min(h, w) < 2 * factor:  # reflect padding needs a bottleneck of 2 or more
        raise SmisbenchError(
            f"{what} needs height and width divisible by {factor} and at least {2 * factor}, got {h}x{w}",
            f"resize or crop the label map to a multiple of {factor} (the dataset's own size works)",
        )


class GlobalGenerator(nn.Module):
    """pix2pixHD's ``--netG global``: conv down, residual blocks, transposed-conv up (keys ``model.<i>``)."""

    def __init__(self, input_nc: int, ngf: int = 64, n_downsampling: int = 4, n_blocks: int = 9):
        super().__init__()
        self.factor = 2**n_downsampling
        self.model = nn.Sequential(*global_generator_layers(input_nc, ngf, n_downsampling, n_blocks))

    def forward(self, semantics: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        _check_size(semantics, self.factor, "pix2pixHD's global generator")
        return self.model(semantics)


class LocalEnhancer(nn.Module):
    """pix2pixHD's ``--netG local``: the global generator on a downsampled input plus enhancer branches.

    Keys: ``model.*`` (global generator without its output head), ``model<n>_1.*`` (enhancer front end)
    and ``model<n>_2.*`` (enhancer residual blocks and upsampling; the last one carries the output head).
    """

    def __init__(self, input_nc: int, ngf: int = 32, n_downsample_global: int = 4, n_blocks_global: int = 9,
                 n_local_enhancers: int = 1, n_blocks_local: int = 3):
        super().__init__()
        self.n_local_enhancers = n_local_enhancers
        self.factor = 2 ** (n_downsample_global + n_local_enhancers)
        global_ngf = ngf * 2**n_local_enhancers
        self.model = nn.Sequential(
            *global_generator_layers(input_nc, global_ngf, n_downsample_global, n_blocks_global, with_output=False)
        )
        for n in range(1, n_local_enhancers + 1):
            width = ngf * 2 ** (n_local_enhancers - n)
            front = [
                nn.ReflectionPad2d(3), nn.Conv2d(input_nc, width, 7), _norm(width), nn.ReLU(True),
                nn.Conv2d(width, width * 2, 3, stride=2, padding=1), _norm(width * 2), nn.ReLU(True),
            ]
            back: list[nn.Module] = [ResnetBlock(width * 2) for _ in range(n_blocks_local)]
            back += [
                nn.ConvTranspose2d(width * 2, width, 3, stride=2, padding=1, output_padding=1),
                _norm(width),
                nn.ReLU(True),
            ]
            if n == n_local_enhancers:
                back += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7), nn.Tanh()]
            setattr(self, f"model{n}_1", nn.Sequential(*front))
            setattr(self, f"model{n}_2", nn.Sequential(*back))
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)

    def forward(self, semantics: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        _check_size(semantics, self.factor, "pix2pixHD's local enhancer")
        pyramid = [semantics]
        for _ in range(self.n_local_enhancers):
            pyramid.append(self.downsample(pyramid[-1]))
        out = self.model(pyramid[-1])
        for n in range(1, self.n_local_enhancers + 1):
            finer = pyramid[self.n_local_enhancers - n]
            out = getattr(self, f"model{n}_2")(getattr(self, f"model{n}_1")(finer) + out)
        return out


class MultiscaleDiscriminator(nn.Module):
    """``num_D`` PatchGANs (padding 2) returning every layer's output, keys ``scale<i>_layer<j>.*``.

    As in pix2pixHD, the full-resolution input goes to the highest-numbered scale and each following
    one sees a 3x3/stride-2 average-pooled copy. Output: per scale a list whose last entry is the prediction.
    """

    def __init__(self, input_nc: int, ndf: int = 64, n_layers: int = 3, num_D: int = 2):
        super().__init__()
        self.num_D, self.n_layers = num_D, n_layers
        for i in range(num_D):
            for j, layer in enumerate(self._layers(input_nc, ndf, n_layers)):
                setattr(self, f"scale{i}_layer{j}", layer)
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)

    @staticmethod
    def _layers(input_nc: int, ndf: int, n_layers: int) -> list[nn.Sequential]:
        layers = [nn.Sequential(nn.Conv2d(input_nc, ndf, 4, stride=2, padding=2), nn.LeakyReLU(0.2, True))]
        width = ndf
        for n in range(1, n_layers + 1):
            previous, width = width, min(width * 2, 512)
            stride = 2 if n < n_layers else 1
            layers.append(
                nn.Sequential(nn.Conv2d(previous, width, 4, stride=stride, padding=2), _norm(width), nn.LeakyReLU(0.2, True))
            )
        layers.append(nn.Sequential(nn.Conv2d(width, 1, 4, stride=1, padding=2)))
        return layers

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        outputs = []
        for i in range(self.num_D):
            scale = self.num_D - 1 - i
            features, h = [], x
            for j in range(self.n_layers + 2):
                h = getattr(self, f"scale{scale}_layer{j}")(h)
                features.append(h)
            outputs.append(features)
            if i != self.num_D - 1:
                x = self.downsample(x)
        return outputs


def normal_init(module: nn.Module, std: float = 0.02) -> None:
    """pix2pixHD's ``weights_init``: N(0, 0.02) conv weights, biases left at PyTorch's default."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, std)
        elif isinstance(m, nn.BatchNorm2d) and m.affine:
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)


def build_generator(config: Pix2PixHDConfig) -> nn.Module:
    input_nc = config.data.input_nc
    if config.n_local_enhancers > 0:
        return LocalEnhancer(
            input_nc, config.ngf, config.n_downsample_global, config.n_blocks_global,
            config.n_local_enhancers, config.n_blocks_local,
        )
    return GlobalGenerator(input_nc, config.ngf, config.n_downsample_global, config.n_blocks_global)


class Pix2PixHD(FamilyModel):
    """pix2pixHD generator behind the SMIS interface: no codes (``netG(semantics, None)``)."""

    codes_kind = CodesKind.NONE

    def build_generator(self, config: Pix2PixHDConfig) -> nn.Module:
        return build_generator(config)

    def init_weights(self) -> None:
        normal_init(self.netG)

    def training_objective(self, discriminator: nn.Module, **options):
        from smisbench.models.objectives_baselines import Pix2PixHDObjective

        settings = config_values(self.config, ("n_layers_D", "lambda_feat", "lambda_vgg"), options)
        return Pix2PixHDObjective(discriminator, **settings)


def build_discriminator(config: Pix2PixHDConfig) -> MultiscaleDiscriminator:
    """Conditional D on (semantics, image): input channels = the generator's input + 3 (39 for Cityscapes)."""
    netD = MultiscaleDiscriminator(config.data.input_nc + 3, config.ndf, config.n_layers_D, config.num_D)
    normal_init(netD)
    return netD


def legacy_key_filter(state_dict: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Drop the running statistics that PyTorch < 0.4 saved for affine-free InstanceNorm layers.

    A ``running_mean``/``running_var``/``num_batches_tracked`` entry is dropped only when its module has
    no ``weight`` in the file, i.e. it cannot belong to a BatchNorm layer; the dropped names are returned
    so the import command can report them.
    """
    clean: dict[str, torch.Tensor] = {}
    dropped: list[str] = []
    for key, value in state_dict.items():
        module, _, leaf = key.rpartition(".")
        if leaf in LEGACY_NORM_SUFFIXES and f"{module}.weight" not in state_dict:
            dropped.append(key)
        else:
            clean[key] = value
    return clean, dropped


def infer_overrides(state_dict: dict[str, torch.Tensor]) -> dict[str, int]:
    """Config overrides that make a generator fit a pix2pixHD G file (global vs local enhancer, widths).

    Read from the file's own shapes, so ``label2city_1024p`` needs no flags: ``model1_1.1.weight`` gives
    the enhancer width, the count of ``model<n>_1`` prefixes the number of enhancers, and the
    ``conv_block`` indices of ``model.*`` the global depth.
    """
    state, _ = legacy_key_filter({k.removeprefix("module."): v for k, v in state_dict.items()})
    enhancers = len({k.split(".")[0] for k in state if k.startswith("model") and k.split(".")[0].endswith("_1")})
    blocks = sorted({int(k.split(".")[1]) for k in state if k.startswith("model.") and ".conv_block." in k})
    convs = [int(k.split(".")[1]) for k in state if k.startswith("model.") and k.endswith(".weight") and state[k].dim() == 4]
    if not blocks or "model.1.weight" not in state:
        raise SmisbenchError("the file is not a pix2pixHD generator (no model.1 / conv_block entries)",
                             "pass the latest_net_G.pth of a pix2pixHD release")
    downs = sum(1 for i in convs if 1 < i < blocks[0])
    global_ngf = int(state["model.1.weight"].shape[0])
    overrides = {"ngf": global_ngf, "n_local_enhancers": enhancers, "n_downsample_global": downs, "n_blocks_global": len(blocks)}
    if enhancers:
        local_blocks = {k.split(".")[1] for k in state if k.startswith("model1_2.") and ".conv_block." in k}
        overrides.update(ngf=int(state["model1_1.1.weight"].shape[0]), n_blocks_local=len(local_blocks))
    return overrides


# The official Cityscapes release ``label2city_1024p`` (--netG local --ngf 32, 36 input channels).
LABEL2CITY_1024P = {"ngf": 32, "n_local_enhancers": 1}
LABEL2CITY_1024P_SIZE = (1024, 2048)  # (H, W) it was trained and runs at


_SHARED_NOTE = "global generator, pix2pixHD defaults (ngf 64, 4 downsamplings, 9 blocks); D: 3 layers, 2 scales, ndf 64"
CONFIGS = {
    "deepfashion": Pix2PixHDConfig("deepfashion", notes=_SHARED_NOTE),
    "cityscapes": Pix2PixHDConfig(
        "cityscapes",
        notes=_SHARED_NOTE + " at the benchmark's 256x512; the label2city_1024p release loads with "
        "ngf=32, n_local_enhancers=1 and runs at 1024x2048 (LABEL2CITY_1024P, or infer_overrides(file))",
    ),
    "ade20k": Pix2PixHDConfig("ade20k", notes=_SHARED_NOTE),
}


def tiny(dataset: str) -> Pix2PixHDConfig:
    return Pix2PixHDConfig(dataset, ngf=8, n_downsample_global=2, n_blocks_global=2, ndf=8,
                           notes="tiny smoke-test widths for the 64x64 synthetic set")


ENTRY = register_family(
    "pix2pixhd", Pix2PixHD, CONFIGS, tiny, build_discriminator,
    description="pix2pixHD: global generator (+ optional local enhancer), multi-scale D, feature matching; no codes",
    paper="Wang et al., CVPR 2018 (NVIDIA/pix2pixHD); GroupDNet paper Table 2",
    checkpoint_filter=legacy_key_filter,
    config_from_checkpoint=infer_overrides,
)
