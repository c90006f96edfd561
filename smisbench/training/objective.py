"""Training objectives: what a model's G (+E) and D steps minimise.

The trainer asks an objective for two losses per step and does the backward passes, optimiser
steps, mixed precision and gradient synchronisation itself:

- ``generator_loss(batch, model, generator=None) -> LossResult``
- ``discriminator_loss(batch, model, fakes=None, generator=None) -> LossResult``

``batch`` is a data-loader batch moved to the device, with a ready ``"semantics"`` tensor;
``generator`` is the trainer's CPU ``torch.Generator`` for every random draw, so a step is
reproducible and a resumed run draws the same numbers. ``LossResult.fakes`` are detached
generated images the D step may reuse when the objective sets ``reuse_fakes``. An objective
may carry ``optimizer`` (Adam ``lr`` and ``betas`` for both networks) and, to train under
DDP's own forward hooks, a ``distribute(wrap)`` method; objectives without it are trained
with an explicit gradient all-reduce (see :mod:`smisbench.training.distributed`).

:class:`SMISObjective` is the GroupDNet paper's objective (SPADE's): hinge GAN, feature
matching (lambda 10), VGG perceptual (lambda 10), KL (lambda 0.05, a sum over the elements
of ``kl_reference_batch`` images: the per-image KL times that batch, see
:func:`smisbench.training.losses.kl_divergence`), TTUR learning rates G 1e-4 / D 4e-4,
Adam betas (0, 0.9). Models that train differently (pix2pixHD,
BicycleGAN, DSCGAN) supply their own via ``model.training_objective(discriminator, **options)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol

import torch
from torch import nn

from smisbench.models.base import SMISModel
from smisbench.models.objective_api import LossResult, frozen
from smisbench.training import losses


@dataclass(frozen=True)
class AdamSettings:
    """Learning rates of G (+E) and D and Adam's betas."""

    lr_g: float = 1e-4
    lr_d: float = 4e-4
    betas: tuple[float, float] = (0.0, 0.9)


class Objective(Protocol):
    discriminator: nn.Module

    def generator_loss(self, batch: Mapping, model: SMISModel, generator: torch.Generator | None = None) -> Any: ...

    def discriminator_loss(self, batch: Mapping, model: SMISModel, fakes: Mapping | None = None,
                           generator: torch.Generator | None = None) -> Any: ...


def randn_cpu(shape: torch.Size | tuple[int, ...], generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    """Standard normal numbers drawn on the CPU (identical on every device), moved next to ``like``."""
    return torch.randn(tuple(shape), generator=generator, device="cpu").to(like.device, like.dtype)


class GeneratorForward(nn.Module):
    """One forward of G (+E) for training: encode the real image (reparameterised) or draw z from the prior.

    A module of its own so DDP can wrap exactly the computation whose gradients it must reduce.
    Returns (fake, mu, logvar); mu/logvar are None without an encoder.
    """

    def __init__(self, model: SMISModel):
        super().__init__()
        self.model = model

    def forward(self, semantics: torch.Tensor, image: torch.Tensor, generator: torch.Generator | None = None):
        model = self.model
        if model.netE is not None:
            mu, logvar = model.encode(image, semantics)
            z = mu + randn_cpu(mu.shape, generator, mu) * torch.exp(0.5 * logvar)
        else:
            mu = logvar = None
            z = model.sample_z(semantics.shape[0], generator, semantics.device)
        return model.generate(semantics, z), mu, logvar


def split_pyramid(outputs: list[list[torch.Tensor]], count: int) -> tuple[list[list[torch.Tensor]], list[list[torch.Tensor]]]:
    """D outputs of cat([fake, real]) -> (fake part, real part), per scale and per layer."""
    fake = [[t[:count] for t in scale] for scale in outputs]
    real = [[t[count:] for t in scale] for scale in outputs]
    return fake, real


class SMISObjective:
    """The GroupDNet/SPADE objective (see the module docstring); D sees cat(semantics, image).

    As in the official code, fake and real inputs go through D in one batch, and the D step
    generates new fakes (without gradients) after the G step; ``reuse_fakes=True`` reuses the
    G step's fakes instead (pix2pixHD's way: one generator pass less per step, not the paper's).
    ``kl_reference_batch`` (the trainer sets the dataset's official per-GPU batch) makes the KL term
    independent of the batch size; None sums over whatever batch comes.
    """

    optimizer = AdamSettings()

    def __init__(self, discriminator: nn.Module, lambda_feat: float = 10.0, lambda_vgg: float = 10.0,
                 lambda_kld: float = 0.05, perceptual: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                 use_feat: bool = True, reuse_fakes: bool = False, kl_reference_batch: int | None = None):
        self.discriminator = discriminator
        self.kl_reference_batch = kl_reference_batch
        self.reuse_fakes = reuse_fakes
        self.lambda_feat, self.lambda_vgg, self.lambda_kld = lambda_feat, lambda_vgg, lambda_kld
        self.perceptual = perceptual
        self.use_feat = use_feat
        self._generator_forward: nn.Module | None = None  # set by distribute()
        self._discriminator_train: nn.Module | None = None

    def distribute(self, model: SMISModel, wrap: Callable[[nn.Module, bool], nn.Module]) -> list[nn.Module]:
        """Route the gradient-carrying forwards through DDP; returns the wrappers (to delete at shutdown).

        ``wrap(module, find_unused)`` makes the DDP module. G may hold networks it never runs
        (ADE20K's dead ``up_4``), so its wrapper looks for unused parameters when the config says so.
        """
        dead = bool(getattr(getattr(model, "config", None), "dead_blocks", ()))
        self._generator_forward = wrap(GeneratorForward(model), dead)
        self._discriminator_train = wrap(self.discriminator, False)
        return [self._generator_forward, self._discriminator_train]

    def release(self) -> None:
        """Drop the DDP wrappers (before the process group is destroyed)."""
        self._generator_forward = self._discriminator_train = None

    def _discriminate(self, net: nn.Module, semantics: torch.Tensor, fake: torch.Tensor, real: torch.Tensor):
        both = torch.cat([torch.cat([semantics, fake], 1), torch.cat([semantics, real], 1)], 0)
        return split_pyramid(net(both), fake.shape[0])

    def generator_loss(self, batch: Mapping, model: SMISModel, generator: torch.Generator | None = None) -> LossResult:
        semantics, real = batch["semantics"], batch["image"]
        forward = self._generator_forward or GeneratorForward(model)
        fake, mu, logvar = forward(semantics, real, generator)
        with frozen(self.discriminator):
            pred_fake, pred_real = self._discriminate(self.discriminator, semantics, fake, real)
        terms = {"G_GAN": losses.hinge_g(pred_fake)}
        if self.use_feat:
            terms["G_GAN_Feat"] = losses.feature_matching(pred_fake, pred_real) * self.lambda_feat
        if self.perceptual is not None:
            terms["G_VGG"] = self.perceptual(fake, real) * self.lambda_vgg
        if mu is not None:
            terms["KLD"] = losses.kl_divergence(mu, logvar, self.kl_reference_batch) * self.lambda_kld
        total = sum(terms.values())
        return LossResult(total, {k: v.detach() for k, v in terms.items()}, {"fake": fake.detach()})

    def discriminator_loss(self, batch: Mapping, model: SMISModel, fakes: Mapping | None = None,
                           generator: torch.Generator | None = None) -> LossResult:
        semantics, real = batch["semantics"], batch["image"]
        if fakes is not None and "fake" in fakes:
            fake = fakes["fake"]
        else:
            with torch.no_grad():
                fake, _, _ = GeneratorForward(model)(semantics, real, generator)
        net = self._discriminator_train or self.discriminator
        pred_fake, pred_real = self._discriminate(net, semantics, fake.detach(), real)
        terms = {"D_Fake": losses.hinge_d_fake(pred_fake), "D_real": losses.hinge_d_real(pred_real)}
        return LossResult(terms["D_Fake"] + terms["D_real"], {k: v.detach() for k, v in terms.items()})


def build_objective(model: SMISModel, discriminator: nn.Module,
                    perceptual: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                    **options: Any) -> Objective:
    """The model's own objective (``model.training_objective``) or :class:`SMISObjective`.

    ``perceptual`` goes to objectives that take one; ``options`` override loss weights.
    """
    make = getattr(model, "training_objective", None)
    if make is None:
        return SMISObjective(discriminator, perceptual=perceptual, **options)
    objective = make(discriminator, **options)
    if perceptual is not None and hasattr(objective, "perceptual") and objective.perceptual is None:
        objective.perceptual = perceptual  # objectives with an optional VGG term (pix2pixHD)
    return objective
