"""The interface every registered model offers, so metrics and the harness treat all models alike."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from smisbench.datasets_config import DatasetConfig
from smisbench.labels import encode_semantics


class CodesKind(str, enum.Enum):
    """How a model's latent code relates to classes; decides how SMIS metrics sample it."""

    PER_CLASS = "per_class"  # one code per class: a class can be redrawn alone
    GLOBAL = "global"  # one code for the image: only global resampling exists
    NONE = "none"  # deterministic label-to-image model


@dataclass(frozen=True)
class LatentLayout:
    """Shape of the latent code and which part of it each class owns.

    ``draw_shape`` is the shape random numbers are drawn in (per sample); ``shape`` what the
    generator takes. For per-class codes, ``draw_shape[0]`` is the class axis.
    """

    draw_shape: tuple[int, ...]
    shape: tuple[int, ...]
    per_class: bool


class SMISModel(nn.Module):
    """A generator (+ optional encoder) with a label-map-aware, seedable latent interface.

    Subclasses set ``netG`` (called as ``netG(semantics, z)``), optionally ``netE`` (called as
    ``netE(encoder_input)`` -> (mu, logvar)), and ``latent``.
    """

    codes_kind: CodesKind = CodesKind.NONE
    model_name: str = ""
    # modules beyond those of its classes whose code makes the model (a factory's): part of its code identity
    code_origins: tuple[str, ...] = ()

    def __init__(self, dataset: DatasetConfig):
        super().__init__()
        self.dataset = dataset
        self.latent: LatentLayout | None = None
        self.netE: nn.Module | None = None

    # ----- input -----
    def semantics(self, label: torch.Tensor, instance: torch.Tensor | None = None, source: str = "label map") -> torch.Tensor:
        """Validated one-hot network input for integer label maps."""
        device = next(self.parameters()).device
        return encode_semantics(label.to(device), self.dataset, None if instance is None else instance.to(device), source)

    @property
    def num_code_classes(self) -> int:
        assert self.latent is not None and self.latent.per_class
        return self.latent.draw_shape[0]

    # ----- latent codes -----
    def sample_z(self, batch: int, generator: torch.Generator | None = None, device: torch.device | str | None = None) -> torch.Tensor | None:
        """Draw codes from the prior; the same generator state gives the same codes on any device."""
        if self.latent is None:
            return None
        device = torch.device(device) if device is not None else next(self.parameters()).device
        z = torch.randn((batch, *self.latent.draw_shape), generator=generator, device="cpu")
        return z.to(device).reshape(batch, *self.latent.shape)

    def class_view(self, z: torch.Tensor) -> torch.Tensor:
        """``z`` seen as (B, C, ...) with class c's code at index c (a view, no copy)."""
        if self.latent is None or not self.latent.per_class:
            raise TypeError(f"{self.model_name} has no per-class codes (codes kind {self.codes_kind.value})")
        return z.reshape(z.shape[0], *self.latent.draw_shape)

    def redraw(self, z: torch.Tensor, classes: list[int] | None, generator: torch.Generator | None = None) -> torch.Tensor:
        """A copy of ``z`` with the codes of ``classes`` redrawn (all of z when ``classes`` is None)."""
        if classes is None or self.latent is None or not self.latent.per_class:
            return self.sample_z(z.shape[0], generator, z.device)
        out = self.class_view(z.clone())
        for c in classes:
            fresh = torch.randn((z.shape[0], *self.latent.draw_shape[1:]), generator=generator, device="cpu")
            out[:, c] = fresh.to(z.device, z.dtype)
        return out.reshape(z.shape)

    # ----- networks -----
    def generate(self, semantics: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        """Image in [-1, 1] for the given network input and codes."""
        return self.netG(semantics, z)

    def encoder_input(self, image: torch.Tensor, semantics: torch.Tensor) -> torch.Tensor:
        return image

    def encode(self, image: torch.Tensor, semantics: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior (mu, logvar) of a real image's codes, in the generator's latent shape."""
        if self.netE is None:
            raise TypeError(f"{self.model_name} has no encoder: it cannot encode real images")
        mu, logvar = self.netE(self.encoder_input(image, semantics))
        return mu.reshape(image.shape[0], *self.latent.shape), logvar.reshape(image.shape[0], *self.latent.shape)

    def forward(self, semantics: torch.Tensor, z: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        if z is None and self.latent is not None:
            z = self.sample_z(semantics.shape[0], generator, semantics.device)
        return self.generate(semantics, z)

    def parts(self) -> dict[str, nn.Module]:
        """The separately saved networks (G, E), keyed as official checkpoints name them."""
        out = {"G": self.netG}
        if self.netE is not None:
            out["E"] = self.netE
        return out


@dataclass(frozen=True)
class ModelEntry:
    """How to build one model family: ``configs`` maps a dataset name to its default config."""

    name: str
    description: str
    codes_kind: CodesKind
    configs: Callable[[], dict[str, Any]]
    build: Callable[[Any], SMISModel]
    build_discriminator: Callable[[Any], nn.Module] | None = None
    paper: str = ""  # where the model comes from (paper table, citation)
    # drops entries old releases carry that current modules lack (e.g. pix2pixHD's InstanceNorm stats)
    checkpoint_filter: Callable[[dict], tuple[dict, list[str]]] | None = None
    # config overrides read off a G state dict, for families whose releases differ in shape (pix2pixHD)
    config_from_checkpoint: Callable[[dict], dict] | None = None

    def datasets(self) -> list[str]:
        return list(self.configs())
