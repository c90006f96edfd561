"""Training objectives of the baselines that do not train like GroupDNet: pix2pixHD, BicycleGAN, DSCGAN.

Each objective is bound to its discriminator and offers two calls a training loop makes per step:

- ``generator_loss(batch, model, generator=None) -> LossResult``: the loss for G (+ E); the
  discriminator's parameters are kept out of its graph. ``result.fakes`` holds the detached images
  generated for it, which the discriminator step may reuse (as the original code does).
- ``discriminator_loss(batch, model, fakes=None, generator=None) -> LossResult``: the loss for D;
  without ``fakes`` it generates new images without gradients.

``batch`` is a data-loader batch (``{"label", "image"[, "instance"]}``, see ``smisbench.data.base``)
or holds a ready ``"semantics"`` tensor. ``generator`` seeds every random draw (codes, noise) from the
CPU, so a step is reproducible. ``optimizer`` gives the original Adam settings for G (+ E) and D.
All three use least-squares GAN losses, as their released defaults do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from smisbench.errors import SmisbenchError
from smisbench.models.base import SMISModel
from smisbench.models.objective_api import LossResult, frozen

Perceptual = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class OptimizerSettings:
    """Adam settings of the original code (the same for G, E and D in all three)."""

    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)


def lsgan_loss(outputs: list[list[torch.Tensor]], target_is_real: bool) -> torch.Tensor:
    """Least-squares GAN loss summed over scales; each scale's last entry is its prediction map."""
    target = 1.0 if target_is_real else 0.0
    losses = [F.mse_loss(scale[-1], torch.full_like(scale[-1], target)) for scale in outputs]
    return torch.stack(losses).sum()


def batch_inputs(model: SMISModel, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(network input, real image) of a batch, on the model's device."""
    device = next(model.parameters()).device
    if "image" not in batch:
        raise SmisbenchError("the training batch has no 'image'", "use a paired dataset (label maps with their images)")
    image = batch["image"].to(device)
    if "semantics" in batch:
        semantics = batch["semantics"].to(device)
    elif "label" in batch:
        semantics = model.semantics(batch["label"], batch.get("instance"), "training batch")
    else:
        raise SmisbenchError("the training batch has neither 'label' nor 'semantics'", "use a paired dataset")
    return semantics, image


def _randn_like(t: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(t.shape, generator=generator, device="cpu").to(t.device, t.dtype)


def fake_for_discriminator(fakes: Mapping[str, torch.Tensor] | None, make: Callable[[], torch.Tensor]) -> torch.Tensor:
    """The generator step's detached ``fakes["fake"]`` or, without it, ``make()`` run without gradients."""
    if fakes is not None:
        return fakes["fake"].detach()
    with torch.no_grad():
        return make()


def _terms(**values: torch.Tensor | float) -> dict[str, torch.Tensor]:
    return {k: (v.detach() if isinstance(v, torch.Tensor) else torch.tensor(float(v))) for k, v in values.items()}


class Pix2PixHDObjective:
    """pix2pixHD: LSGAN + discriminator feature matching (+ VGG perceptual loss when one is supplied).

    Feature matching weighs each scale by 1/num_D and each layer by 4/(n_layers_D + 1), times
    ``lambda_feat``; D's loss is half the sum of its real and fake terms. The VGG19 term needs ImageNet
    weights that cannot be fetched here: pass ``perceptual(fake, real)`` (the trainer's VGG loss) to use it.
    """

    optimizer = OptimizerSettings()

    def __init__(self, discriminator: nn.Module, n_layers_D: int = 3, lambda_feat: float = 10.0,
                 lambda_vgg: float = 10.0, perceptual: Perceptual | None = None):
        self.discriminator = discriminator
        self.feat_weight = 4.0 / (n_layers_D + 1)
        self.lambda_feat, self.lambda_vgg, self.perceptual = lambda_feat, lambda_vgg, perceptual

    def _judge(self, semantics: torch.Tensor, image: torch.Tensor) -> list[list[torch.Tensor]]:
        return self.discriminator(torch.cat([semantics, image], 1))

    def generator_loss(self, batch: Mapping, model: SMISModel, generator: torch.Generator | None = None) -> LossResult:
        semantics, real = batch_inputs(model, batch)
        fake = model.generate(semantics, None)
        with frozen(self.discriminator):
            pred_fake = self._judge(semantics, fake)
        with torch.no_grad():
            pred_real = self._judge(semantics, real)
        gan = lsgan_loss(pred_fake, True)
        scale_weight = 1.0 / len(pred_fake)
        feat = sum(
            F.l1_loss(f, r) * scale_weight * self.feat_weight * self.lambda_feat
            for fake_scale, real_scale in zip(pred_fake, pred_real)
            for f, r in zip(fake_scale[:-1], real_scale[:-1])
        )
        vgg = self.perceptual(fake, real) * self.lambda_vgg if self.perceptual is not None else fake.new_zeros(())
        total = gan + feat + vgg
        return LossResult(total, _terms(G_GAN=gan, G_GAN_Feat=feat, G_VGG=vgg), {"fake": fake.detach()})

    def discriminator_loss(self, batch: Mapping, model: SMISModel, fakes: Mapping[str, torch.Tensor] | None = None,
                           generator: torch.Generator | None = None) -> LossResult:
        semantics, real = batch_inputs(model, batch)
        fake = fake_for_discriminator(fakes, lambda: model.generate(semantics, None))
        d_fake = lsgan_loss(self._judge(semantics, fake), False)
        d_real = lsgan_loss(self._judge(semantics, real), True)
        return LossResult((d_fake + d_real) * 0.5, _terms(D_fake=d_fake, D_real=d_real))


class BicycleGANObjective:
    """BicycleGAN: cVAE-GAN on the first half of the batch, cLR-GAN on it with random codes.

    G + E loss: LSGAN on D (encoded codes) and D2 (random codes), L1 reconstruction (``lambda_L1``), KL
    summed over the batch (``lambda_kl``), and the latent regression |E(G(A, z)).mu - z| (``lambda_z``)
    whose gradient reaches G only, as the original freezes E for it. D/D2 see real images of the first
    and second half respectively (the image alone unless ``conditional_D``). Needs batches of 2 or more.
    """

    optimizer = OptimizerSettings()

    def __init__(self, discriminator: nn.Module, lambda_L1: float = 10.0, lambda_kl: float = 0.01, lambda_z: float = 0.5,
                 lambda_GAN: float = 1.0, lambda_GAN2: float = 1.0, conditional_D: bool = False):
        if not (hasattr(discriminator, "D") and hasattr(discriminator, "D2")):
            raise SmisbenchError("BicycleGAN's objective needs its paired discriminators (D and D2)",
                                 "build it with build_discriminator('bicyclegan', dataset)")
        self.discriminator = discriminator
        self.lambda_L1, self.lambda_kl, self.lambda_z = lambda_L1, lambda_kl, lambda_z
        self.lambda_GAN, self.lambda_GAN2, self.conditional_D = lambda_GAN, lambda_GAN2, conditional_D

    def _data(self, semantics: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return torch.cat([semantics, image], 1) if self.conditional_D else image

    @staticmethod
    def _halves(semantics: torch.Tensor, image: torch.Tensor):
        if image.shape[0] < 2:
            raise SmisbenchError("BicycleGAN trains on pairs of samples: a batch of 1 has no cLR half",
                                 "use a batch size of 2 or more (the original uses 2)")
        half = image.shape[0] // 2
        return semantics[:half], image[:half], semantics[half:], image[half:]

    def _generate(self, model: SMISModel, a_enc: torch.Tensor, b_enc: torch.Tensor, generator: torch.Generator | None):
        mu, logvar = model.netE(model.encoder_input(b_enc, a_enc))
        z_encoded = _randn_like(mu, generator) * torch.exp(0.5 * logvar) + mu
        z_random = model.sample_z(a_enc.shape[0], generator, a_enc.device)
        fake_encoded = model.generate(a_enc, z_encoded)
        fake_random = model.generate(a_enc, z_random)
        return mu, logvar, z_random, fake_encoded, fake_random

    def generator_loss(self, batch: Mapping, model: SMISModel, generator: torch.Generator | None = None) -> LossResult:
        semantics, image = batch_inputs(model, batch)
        a_enc, b_enc, _, _ = self._halves(semantics, image)
        mu, logvar, z_random, fake_encoded, fake_random = self._generate(model, a_enc, b_enc, generator)
        with frozen(self.discriminator):
            gan = lsgan_loss(self.discriminator.D(self._data(a_enc, fake_encoded)), True) * self.lambda_GAN
            gan2 = lsgan_loss(self.discriminator.D2(self._data(a_enc, fake_random)), True) * self.lambda_GAN2
        kl = torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) * (-0.5 * self.lambda_kl)
        l1 = F.l1_loss(fake_encoded, b_enc) * self.lambda_L1
        frozen_e = {k: v.detach() for k, v in model.netE.named_parameters()}
        mu2, _ = functional_call(model.netE, frozen_e, (model.encoder_input(fake_random, a_enc),))
        z_l1 = F.l1_loss(mu2, z_random) * self.lambda_z
        total = gan + gan2 + kl + l1 + z_l1
        fakes = {"fake_encoded": fake_encoded.detach(), "fake_random": fake_random.detach()}
        return LossResult(total, _terms(G_GAN=gan, G_GAN2=gan2, kl=kl, G_L1=l1, z_L1=z_l1), fakes)

    def discriminator_loss(self, batch: Mapping, model: SMISModel, fakes: Mapping[str, torch.Tensor] | None = None,
                           generator: torch.Generator | None = None) -> LossResult:
        semantics, image = batch_inputs(model, batch)
        a_enc, b_enc, a_rand, b_rand = self._halves(semantics, image)
        if fakes is None:
            with torch.no_grad():
                *_, fake_encoded, fake_random = self._generate(model, a_enc, b_enc, generator)
        else:
            fake_encoded, fake_random = fakes["fake_encoded"], fakes["fake_random"]
        d = self.discriminator
        d1_fake = lsgan_loss(d.D(self._data(a_enc, fake_encoded.detach())), False)
        d1_real = lsgan_loss(d.D(self._data(a_enc, b_enc)), True)
        d2_fake = lsgan_loss(d.D2(self._data(a_enc, fake_random.detach())), False)
        d2_real = lsgan_loss(d.D2(self._data(a_rand, b_rand)), True)
        total = (d1_fake + d1_real) * float(self.lambda_GAN > 0) + (d2_fake + d2_real) * float(self.lambda_GAN2 > 0)
        return LossResult(total, _terms(D=d1_fake + d1_real, D2=d2_fake + d2_real))


class DSCGANObjective:
    """DSCGAN: conditional LSGAN + L1 on the first sample + the diversity-sensitive term.

    With the same label input and independent codes z1, z2: img_diff = mean |G(x, z1) - sg(G(x, z2))|
    per sample, z_diff = mean |z1 - z2| per sample, L_NE = -mean(img_diff / (z_diff + eps)); the
    generator minimises L_GAN + lambda_ne L_NE + lambda_L1 L1. D's loss is half its real + fake terms.
    """

    optimizer = OptimizerSettings()

    def __init__(self, discriminator: nn.Module, lambda_ne: float = 8.0, lambda_L1: float = 10.0, eps: float = 1e-5):
        self.discriminator = discriminator
        self.lambda_ne, self.lambda_L1, self.eps = lambda_ne, lambda_L1, eps

    def _judge(self, image: torch.Tensor, semantics: torch.Tensor) -> list[list[torch.Tensor]]:
        return self.discriminator(torch.cat([image, semantics], 1))

    def diversity_term(self, fake1: torch.Tensor, fake2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        """L_NE = -mean_batch(mean|fake1 - sg(fake2)| / (mean|z1 - z2| + eps))."""
        img_diff = (fake1 - fake2.detach()).abs().flatten(1).mean(1)
        z_diff = (z1 - z2).abs().flatten(1).mean(1)
        return -(img_diff / (z_diff + self.eps)).mean()

    def generator_loss(self, batch: Mapping, model: SMISModel, generator: torch.Generator | None = None) -> LossResult:
        semantics, real = batch_inputs(model, batch)
        z1 = model.sample_z(real.shape[0], generator, real.device)
        z2 = model.sample_z(real.shape[0], generator, real.device)
        fake1 = model.generate(semantics, z1)
        with torch.no_grad():
            fake2 = model.generate(semantics, z2)
        with frozen(self.discriminator):
            gan = lsgan_loss(self._judge(fake1, semantics), True)
        ne = self.diversity_term(fake1, fake2, z1, z2)
        l1 = F.l1_loss(fake1, real)
        total = gan + self.lambda_ne * ne + self.lambda_L1 * l1
        return LossResult(total, _terms(G_GAN=gan, NE=ne, G_L1=l1), {"fake": fake1.detach()})

    def discriminator_loss(self, batch: Mapping, model: SMISModel, fakes: Mapping[str, torch.Tensor] | None = None,
                           generator: torch.Generator | None = None) -> LossResult:
        semantics, real = batch_inputs(model, batch)
        fake = fake_for_discriminator(
            fakes, lambda: model.generate(semantics, model.sample_z(real.shape[0], generator, real.device))
        )
        d_real = lsgan_loss(self._judge(real, semantics), True)
        d_fake = lsgan_loss(self._judge(fake, semantics), False)
        return LossResult((d_real + d_fake) * 0.5, _terms(D_real=d_real, D_fake=d_fake))


def objective_for(model: SMISModel, discriminator: nn.Module, **options) -> object:
    """The model's own objective (``model.training_objective``); ``options`` override its config's weights."""
    make = getattr(model, "training_objective", None)
    if make is None:
        raise SmisbenchError(f"{model.model_name or type(model).__name__} has no model-specific objective",
                             "train it with the default GroupDNet objective")
    return make(discriminator, **options)
