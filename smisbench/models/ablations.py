"""The five GroupDNet ablations of the paper's supplementary Table 1 (DeepFashion), one registered model each.

Each is GroupDNet's configuration with one switch changed; what a switch does, and the parameter count
it gives against the paper's (G + encoder, DeepFashion; the paper truncates to one decimal, so exact
109.16 M prints as 109.1):

- ``groupdnet_wo_map`` (109.3): the encoder's mu/logvar maps are global-average-pooled to vectors
  (8 numbers per class); the decoder's ``fc`` becomes a class-grouped Linear (a grouped 1x1 conv) from
  each class's 8 numbers to its part of the 4x4 start map. Not published; chosen because it is the
  natural grouped counterpart of SPADE's Linear fc and gives 109,341,923 (+0.18 M over GroupDNet,
  paper +0.2).
- ``groupdnet_wo_split`` (109.1): every encoder group sees the whole image instead of its class's crop.
  Repeating the image per group and a single ungrouped 3-channel first conv have the same weights and
  compute the same function; the repeat is used so the state dict equals GroupDNet's. 109,160,163.
- ``groupdnet_groupnorm`` (109.1): every normalisation of G and E becomes GroupNorm whose group count is
  that of the conv that produced its input (the fc or the previous block's conv for a block's
  ``norm_0``/``norm_s``, ``conv_0`` for ``norm_1``, C in the encoder), as the paper's text says (the
  released code's unused GroupNorm option uses C groups everywhere). GroupNorm keeps its affine
  parameters, as in that option: 109,230,755 (+0.07 M; without them the count would equal GroupDNet's,
  as the paper prints). The discriminator is unchanged (the training set-up all compared models share).
  ``build_model("groupdnet", ..., norm_kind="group")`` differs: its ``norm_0``/``norm_s`` take the
  block's own group count.
- ``groupdnet_wo_syncbn`` (109.1): identical networks and parameters (109,160,163); ``sync_bn=False``
  tells the trainer to keep per-GPU BatchNorm statistics instead of converting to SyncBatchNorm, so the
  ablation differs from GroupDNet only in multi-GPU training.
- ``groupdnet_wo_specnorm`` (109.0): no spectral norm in G and E (the discriminator keeps it,
  ``spectral_D``). Spectral norm owns no parameters (its u/v vectors are buffers), so the count stays
  109,160,163; the paper's 0.1 M drop cannot come from removing it and is not reproduced. G and E share
  GroupDNetConfig's ``spectral`` switch. (The released code's helper for E/D norm layers only works with
  its spectral variants, a hint that the authors' run may have kept it in E; unknown.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from smisbench.models.base import LatentLayout
from smisbench.models.discriminator import discriminator_for
from smisbench.models.family import register_family
from smisbench.models.groupdnet import (
    OFFICIAL_CONFIGS,
    GroupDNet,
    GroupDNetConfig,
    GroupDNetEncoder,
    GroupDNetGenerator,
    tiny_config,
)
from smisbench.models.groupnet import derive_config


@dataclass(frozen=True)
class AblationConfig(GroupDNetConfig):
    """GroupDNet's config plus the two switches GroupDNetConfig lacks."""

    pooled_codes: bool = False  # "w/o map": vector codes from global average pooling
    spectral_D: bool = True  # the discriminator's spectral norm ("w/o SpecNorm" only removes G's and E's)


class GroupedLinearToMap(nn.Conv2d):
    """A class-grouped Linear from code vectors to the decoder's start map, stored as a grouped 1x1 conv.

    Group c maps class c's code numbers to channels [c*k, (c+1)*k) of the (channels, h, w) map.
    """

    def __init__(self, in_features: int, channels: int, hw: tuple[int, int], groups: int):
        super().__init__(in_features, channels * hw[0] * hw[1], 1, groups=groups)
        self.map_shape = (channels, *hw)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = super().forward(z.reshape(z.shape[0], -1, 1, 1))
        return out.reshape(z.shape[0], *self.map_shape)


class VectorCodeGenerator(GroupDNetGenerator):
    """GroupDNet's decoder started from per-class code vectors ("w/o map")."""

    def __init__(self, config: AblationConfig):
        super().__init__(config)
        classes = config.data.semantic_nc
        self.fc = GroupedLinearToMap(classes * config.z_per_class, config.fc_out, config.latent_hw, classes)


class PooledEncoder(GroupDNetEncoder):
    """GroupDNet's encoder with its mu/logvar maps averaged over space into vectors ("w/o map")."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = super().forward(x)
        return mu.mean(dim=(2, 3)), logvar.mean(dim=(2, 3))


def regroup_input_norms(generator: GroupDNetGenerator, config: GroupDNetConfig) -> None:
    """GroupNorm ablation: a block's ``norm_0``/``norm_s`` normalise the previous conv's output, so they take
    that conv's group count (the fc's C for the first block); ``norm_1`` already has the block's own."""
    previous = config.data.semantic_nc
    for spec in config.blocks + config.dead_blocks:
        block = getattr(generator, spec.name)
        block.norm_0.param_free_norm = nn.GroupNorm(previous, spec.fin)
        if block.learned_shortcut:
            block.norm_s.param_free_norm = nn.GroupNorm(previous, spec.fin)
        previous = spec.groups


def group_norm_encoder(encoder: GroupDNetEncoder, groups: int) -> None:
    """GroupNorm ablation: each encoder layer's InstanceNorm becomes GroupNorm with the conv's ``groups``."""
    for index in range(1, encoder.num_layers + 1):
        layer = getattr(encoder, f"layer{index}")
        layer[1] = nn.GroupNorm(groups, layer[1].num_features)


class GroupDNetAblation(GroupDNet):
    """GroupDNet built from an AblationConfig; with no switch set it is GroupDNet, key for key."""

    def build_generator(self, config: AblationConfig) -> nn.Module:
        generator = VectorCodeGenerator(config) if config.pooled_codes else GroupDNetGenerator(config)
        if config.norm_kind == "group":
            regroup_input_norms(generator, config)
        return generator

    def build_encoder(self, config: AblationConfig) -> nn.Module:
        encoder = PooledEncoder(config) if config.pooled_codes else GroupDNetEncoder(config)
        if config.norm_kind == "group":
            group_norm_encoder(encoder, config.data.semantic_nc)
        return encoder

    def latent_layout(self, config: AblationConfig) -> LatentLayout:
        if not config.pooled_codes:
            return super().latent_layout(config)
        classes, per_class = config.data.semantic_nc, config.z_per_class
        return LatentLayout((classes, per_class), (classes * per_class,), True)


def ablation_discriminator(config: AblationConfig) -> nn.Module:
    return discriminator_for(config.data.input_nc, config.ndf, config.n_layers_D, config.num_D, config.spectral_D)


@dataclass(frozen=True)
class Ablation:
    """One row of the supplementary ablation table: registered name, config switches, the paper's count."""

    name: str
    label: str
    changes: tuple[tuple[str, object], ...]
    paper_params_m: float
    description: str


ABLATIONS: tuple[Ablation, ...] = (
    Ablation(
        "groupdnet_wo_map",
        "w/o map",
        (("pooled_codes", True),),
        109.3,
        "GroupDNet w/o map: encoder codes pooled to per-class vectors, decoder fc a class-grouped Linear",
    ),
    Ablation(
        "groupdnet_wo_split",
        "w/o split",
        (("encoder_split", False),),
        109.1,
        "GroupDNet w/o split: every encoder group sees the whole image instead of its class's crop",
    ),
    Ablation(
        "groupdnet_groupnorm",
        "-> GroupNorm",
        (("norm_kind", "group"),),
        109.1,
        "GroupDNet -> GroupNorm: every G/E normalisation is GroupNorm with the preceding conv's group count",
    ),
    Ablation(
        "groupdnet_wo_syncbn",
        "w/o SyncBN",
        (("sync_bn", False),),
        109.1,
        "GroupDNet w/o SyncBN: same networks; per-GPU BatchNorm in multi-GPU training (no SyncBatchNorm)",
    ),
    Ablation(
        "groupdnet_wo_specnorm",
        "w/o SpecNorm",
        (("spectral", False),),
        109.0,
        "GroupDNet w/o SpecNorm: no spectral norm in G and E (the discriminator keeps it)",
    ),
)


def ablation_config(base: GroupDNetConfig, ablation: Ablation) -> AblationConfig:
    """``ablation`` applied to any GroupDNet config (official or tiny)."""
    return derive_config(base, AblationConfig, **dict(ablation.changes))


def _register(ablation: Ablation) -> None:
    """DeepFashion only, as the paper's ablation table (other datasets: ablation_config(OFFICIAL_CONFIGS[...]))."""
    register_family(
        ablation.name, GroupDNetAblation, {"deepfashion": ablation_config(OFFICIAL_CONFIGS["deepfashion"], ablation)},
        lambda dataset: ablation_config(tiny_config(dataset), ablation), ablation_discriminator,
        description=ablation.description,
        paper=f"Zhu et al. CVPR 2020, supplementary Table 1 ({ablation.label}, {ablation.paper_params_m} M)",
    )


for _ablation in ABLATIONS:
    _register(_ablation)
