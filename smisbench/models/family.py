"""What every model family module shares, written once: the config fields all families have, the
switches of the SPADE-style families, their code layouts, and registration with a tiny synthetic config.

Configs stay flat typed dataclasses (``dataclasses.fields(config)`` is what overrides are checked
against), so the shared fields are inherited, keyword-only, with the names and defaults they always had.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from torch import nn

from smisbench.datasets_config import DatasetConfig, get_dataset_config
from smisbench.models.base import LatentLayout, SMISModel
from smisbench.models.discriminator import discriminator_for
from smisbench.models.layers import xavier_init
from smisbench.models.registry import ModelEntry, register, synthetic_available


@dataclass(frozen=True)
class ModelConfig:
    """Fields of every family's config: the dataset it is shaped for and a note on where it comes from."""

    dataset: str
    notes: str = field(default="", compare=False, kw_only=True)

    @property
    def data(self) -> DatasetConfig:
        return get_dataset_config(self.dataset)


@dataclass(frozen=True, kw_only=True)
class CGNormConfig(ModelConfig):
    """Switches of the SPADE-style families (SPADE/CG-Norm blocks, SPADE's multi-scale discriminator)."""

    spectral: bool = True  # ablation "w/o SpecNorm" sets False
    norm_kind: str = "batch"  # ablation "GroupNorm" sets "group"; SyncBN is applied by the trainer
    sync_bn: bool = True  # ablation "w/o SyncBN": the trainer keeps per-GPU BatchNorm
    ndf: int = 64  # discriminator width
    num_D: int = 2
    n_layers_D: int = 4


def cgnorm_discriminator(config: CGNormConfig) -> nn.Module:
    """SPADE's multi-scale discriminator on (semantics, image), as every SPADE-style family trains with."""
    return discriminator_for(config.data.input_nc, config.ndf, config.n_layers_D, config.num_D, config.spectral)


def per_class_codes(classes: int, z_per_class: int, hw: tuple[int, int]) -> LatentLayout:
    """Per-class code maps as the official sampler draws them: randn(B, C, k, h*w) viewed as (B, C*k, h, w)."""
    h, w = hw
    return LatentLayout((classes, z_per_class, h * w), (classes * z_per_class, h, w), True)


def global_code(size: int) -> LatentLayout:
    """One code vector per image, shared by every class."""
    return LatentLayout((size,), (size,), False)


class FamilyModel(SMISModel, abc.ABC):
    """A model built from its family's config in one fixed order: G, E, code layout, then the initial weights.

    Families say what each step builds; the defaults are no encoder, no codes and the official xavier
    init (gain 0.02) of every network.
    """

    def __init__(self, config: ModelConfig):
        super().__init__(config.data)
        self.config = config
        self.netG = self.build_generator(config)
        self.netE = self.build_encoder(config)
        self.latent = self.latent_layout(config)
        self.init_weights()

    @abc.abstractmethod
    def build_generator(self, config: Any) -> nn.Module:
        """The generator, called as ``netG(semantics, z)``."""

    def build_encoder(self, config: Any) -> nn.Module | None:
        return None

    def latent_layout(self, config: Any) -> LatentLayout | None:
        return None

    def init_weights(self) -> None:
        xavier_init(self)


def config_values(config: Any, names: tuple[str, ...], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The config's values of ``names`` (an objective's weights), with ``overrides`` applied on top."""
    return {**{name: getattr(config, name) for name in names}, **overrides}


def register_family(
    name: str,
    build: type[SMISModel],
    official: Mapping[str, Any],
    tiny: Callable[[str], Any],
    discriminator: Callable[[Any], nn.Module] | None,
    *,
    description: str,
    paper: str,
    **extra: Any,
) -> ModelEntry:
    """Register a family: ``official`` configs per dataset, plus ``tiny("synthetic")`` when the embedded
    synthetic set is available (asked on every lookup, not at import). The codes kind is the model
    class's own, so it is written in one place; ``extra`` goes to :class:`ModelEntry` as it is."""

    def configs() -> dict[str, Any]:
        out = dict(official)
        if synthetic_available():
            out["synthetic"] = tiny("synthetic")
        return out

    return register(
        ModelEntry(name=name, description=description, codes_kind=build.codes_kind, configs=configs, build=build,
                   build_discriminator=discriminator, paper=paper, **extra)
    )
