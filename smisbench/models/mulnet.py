"""MulNet (Zhu et al. CVPR 2020, Sec. 3.4 and Table 1): one encoder/decoder pair per class, fused at the end.

Sub-network c encodes class c's crop (the same per-class crop GroupDNet's encoder gets) into its own
code map, and decodes that code with CG-Norm conditioned on class c's mask only; a fusion module of
plain convs merges the C feature maps into one image. With every sub-network as wide as one group of
GroupNet (``mulnet_from_groupnet``), MulNet computes GroupNet's function (the paper's "theoretically
equivalent"), except that spectral norm then normalises each sub-network's weight on its own.

Configuration (not published; the paper's 105.1 M could not be matched by any natural setting, see
baselines.md): every sub-network is one GroupNet group made one unit wider, ngf 25 (400 -> ... -> 25
channels; GroupNet's groups have 24), CG-Norm hidden 16, encoder = one group of GroupDNet's encoder
(32 -> 64 -> 128 -> 256 -> 256 -> 256, 3x3 conv heads to 8 channels), fusion = two 3x3 convs
200 -> 192 -> 192 (GroupNet's total decoder width) before ``conv_img`` 192 -> 3.
Total 105,163,499 (paper 105.1, +0.06 M).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from smisbench.errors import SmisbenchError
from smisbench.models.family import CGNormConfig, cgnorm_discriminator, register_family
from smisbench.models.groupdnet import BlockSpec, PerClassModel, _ladder
from smisbench.models.groupnet import GroupNetConfig, fusion_module, groupnet_tiny
from smisbench.models.layers import CGBlock, ConvEncoderTrunk, NormSpec


@dataclass(frozen=True)
class MulNetConfig(CGNormConfig):
    """Shape of ONE sub-network (all C are alike) and of the fusion module."""

    blocks: tuple[BlockSpec, ...]  # one sub-decoder's CG-Blocks (their ``groups`` must be 1)
    encoder_widths: tuple[int, ...]  # one sub-encoder's stride-2 convs
    norm_hidden: int = 16  # CG-Norm hidden width; its label input is the class's own mask
    fusion_widths: tuple[int, ...] = (192, 192)
    z_per_class: int = 8
    latent_hw: tuple[int, int] = (4, 4)


class SubDecoder(nn.Module):
    """One class's decoder: ``fc`` (3x3 conv on its code map) -> ungrouped CG-Blocks on its own mask."""

    def __init__(self, config: MulNetConfig):
        super().__init__()
        self.blocks = config.blocks
        if any(spec.groups != 1 for spec in config.blocks):
            raise SmisbenchError(
                "MulNet's sub-networks are ungrouped, but the config has blocks with groups > 1",
                "set groups=1 in every BlockSpec of MulNetConfig.blocks (each sub-network serves one class)",
            )
        self.fc = nn.Conv2d(config.z_per_class, config.blocks[0].fin, 3, padding=1)
        norm = NormSpec(1, config.norm_hidden, 1, 1)
        for spec in config.blocks:
            setattr(self, spec.name, CGBlock(spec.fin, spec.fout, 1, norm, config.spectral, config.norm_kind))

    def forward(self, mask: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        x = self.fc(z)
        for spec in self.blocks:
            if spec.upsample:
                x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = getattr(self, spec.name)(x, mask)
        return x


class MulNetGenerator(nn.Module):
    """C sub-decoders side by side, then the fusion module and ``conv_img``."""

    def __init__(self, config: MulNetConfig):
        super().__init__()
        self.classes, self.z_per_class = config.data.semantic_nc, config.z_per_class
        self.subnets = nn.ModuleList(SubDecoder(config) for _ in range(self.classes))
        features = self.classes * config.blocks[-1].fout
        self.fusion = fusion_module(features, config.fusion_widths)
        self.conv_img = nn.Conv2d(config.fusion_widths[-1] if config.fusion_widths else features, 3, 3, padding=1)

    def pre_fusion(self, semantics: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Sub-network outputs concatenated in class order: class c owns channels ``[c*k, (c+1)*k)``."""
        k = self.z_per_class
        outputs = [subnet(semantics[:, c : c + 1], z[:, c * k : (c + 1) * k]) for c, subnet in enumerate(self.subnets)]
        return torch.cat(outputs, dim=1)

    def forward(self, semantics: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        x = self.fusion(self.pre_fusion(semantics, z))
        return torch.tanh(self.conv_img(F.leaky_relu(x, 0.2)))


class SubEncoder(ConvEncoderTrunk):
    """One class's encoder: its crop (3 channels) -> stride-2 convs -> 3x3 conv mu/logvar code maps."""

    def __init__(self, config: MulNetConfig):
        super().__init__(3, config.encoder_widths, groups=1, spectral=config.spectral)
        width = config.encoder_widths[-1]
        self.fc_mu = nn.Conv2d(width, config.z_per_class, 3, padding=1)
        self.fc_var = nn.Conv2d(width, config.z_per_class, 3, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = super().forward(x)
        return self.fc_mu(x), self.fc_var(x)


class MulNetEncoder(nn.Module):
    """C sub-encoders; input: the per-class crops (B, 3C, H, W); output: code maps in class order."""

    def __init__(self, config: MulNetConfig):
        super().__init__()
        self.subnets = nn.ModuleList(SubEncoder(config) for _ in range(config.data.semantic_nc))

    def forward(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pairs = [subnet(crops[:, 3 * c : 3 * c + 3]) for c, subnet in enumerate(self.subnets)]
        return torch.cat([mu for mu, _ in pairs], dim=1), torch.cat([logvar for _, logvar in pairs], dim=1)


class MulNet(PerClassModel):
    """Per-class codes: class c's code map (z channels [8c, 8c+8)) reaches only sub-network c."""

    def build_generator(self, config: MulNetConfig) -> nn.Module:
        return MulNetGenerator(config)

    def build_encoder(self, config: MulNetConfig) -> nn.Module:
        return MulNetEncoder(config)

    def pre_fusion(self, semantics: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.netG.pre_fusion(semantics, z)


def mulnet_from_groupnet(config: GroupNetConfig, **changes) -> MulNetConfig:
    """The MulNet whose sub-network c is GroupNet's group c (same widths, same parameter count)."""
    classes = config.data.semantic_nc
    if config.norm_rule != "deepfashion":
        raise SmisbenchError(
            f"GroupNet config with CG-Norm rule {config.norm_rule!r} has no per-class MulNet twin",
            "use a GroupNet config with norm_rule='deepfashion' (one label channel per class group)",
        )
    if config.fc_out != config.blocks[0].fin:
        raise SmisbenchError(
            f"GroupNet fc width {config.fc_out} differs from the first block's input {config.blocks[0].fin}",
            "set fc_out to blocks[0].fin",
        )
    blocks = tuple(
        BlockSpec(spec.name, spec.fin // classes, spec.fout // classes, 1, spec.upsample) for spec in config.blocks
    )
    shared = {f.name: getattr(config, f.name) for f in dataclasses.fields(MulNetConfig)}  # GroupNet has them all
    widths = {
        "blocks": blocks,
        "encoder_widths": tuple(w // classes for w in config.encoder_widths),
        "norm_hidden": config.norm_hidden // classes,
    }
    return MulNetConfig(**{**shared, **widths, **changes})


def mulnet_deepfashion() -> MulNetConfig:
    ngf = 25
    return MulNetConfig(
        dataset="deepfashion",
        blocks=_ladder([16 * ngf] * 4 + [8 * ngf, 4 * ngf, 2 * ngf, ngf], [1] * 7),
        encoder_widths=(32, 64, 128, 256, 256, 256),
        norm_hidden=16,
        fusion_widths=(192, 192),
        notes="not published: 8 sub-networks of ngf 25 (GroupNet groups have 24), fusion 200->192->192 "
        "(105.16 M vs the paper's 105.1)",
    )


def mulnet_tiny(dataset: str) -> MulNetConfig:
    """GroupNet's tiny config split into per-class sub-networks (GroupNet's exact twin)."""
    return mulnet_from_groupnet(groupnet_tiny(dataset))


# DeepFashion only, as the paper (MulNet did not fit on GPUs for ADE20K; Table 1 is DeepFashion).
register_family(
    "mulnet", MulNet, {"deepfashion": mulnet_deepfashion()}, mulnet_tiny, cgnorm_discriminator,
    description="MulNet: one encoder/decoder pair per class, fused by plain convs at the end",
    paper="Zhu et al. CVPR 2020, Sec. 3.4 and Table 1 (MulNet, 105.1 M)",
)
