"""The GroupDNet/SPADE training losses: hinge GAN, discriminator feature matching, VGG perceptual, KL.

Discriminator outputs follow the multi-scale convention: a list (one entry per scale) of
lists of features whose last element is the real/fake prediction map. Every loss is
computed in float32, so mixed-precision training cannot overflow the KL sum or the means.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

Pyramid = Sequence[Sequence[torch.Tensor]]

# relu1_1 .. relu5_1 weights of the official VGG loss (SPADE/SMIS models/networks/loss.py)
VGG_LAYER_WEIGHTS = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)


def _predictions(outputs: Pyramid) -> list[torch.Tensor]:
    return [scale[-1].float() for scale in outputs]


def hinge_d_real(outputs: Pyramid) -> torch.Tensor:
    """Discriminator hinge loss on real inputs, mean(relu(1 - D(x))), averaged over scales."""
    preds = _predictions(outputs)
    return sum(F.relu(1.0 - p).mean() for p in preds) / len(preds)


def hinge_d_fake(outputs: Pyramid) -> torch.Tensor:
    """Discriminator hinge loss on generated inputs, mean(relu(1 + D(G(z)))), averaged over scales."""
    preds = _predictions(outputs)
    return sum(F.relu(1.0 + p).mean() for p in preds) / len(preds)


def hinge_g(outputs: Pyramid) -> torch.Tensor:
    """Generator hinge loss, -mean(D(G(z))), averaged over scales."""
    preds = _predictions(outputs)
    return sum(-p.mean() for p in preds) / len(preds)


def feature_matching(fake: Pyramid, real: Pyramid) -> torch.Tensor:
    """L1 between D's intermediate features of fake and real inputs (prediction maps excluded).

    Summed over layers and averaged over scales, as the official code (before lambda_feat);
    the real features are detached so only the generator learns from this term.
    """
    total = fake[0][0].new_zeros((), dtype=torch.float32)
    for fake_scale, real_scale in zip(fake, real):
        for f, r in zip(fake_scale[:-1], real_scale[:-1]):
            total = total + F.l1_loss(f.float(), r.detach().float())
    return total / len(fake)


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor, reference_batch: int | None = None) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) summed over every element (a sum, not a mean, as published).

    The official code sums over each GPU's batch, so the term's weight grows with the batch while the
    other losses are means. With ``reference_batch`` the sum is taken per image, averaged over the
    batch and multiplied by ``reference_batch``: the official value at that batch, at any batch size.
    Without it: the plain sum over the given batch.
    """
    mu, logvar = mu.float(), logvar.float()
    total = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    if reference_batch is None:
        return total
    return total * (reference_batch / mu.shape[0])


class PerceptualLoss(nn.Module):
    """Weighted L1 between VGG features of the generated and the real image.

    ``features`` maps an image batch to the list of tapped activations (relu1_1..relu5_1);
    the real image's features are computed without gradients. Inputs are fed as the official
    code does unless ``features`` normalises them itself (see :mod:`smisbench.training.vgg`).
    """

    def __init__(self, features: nn.Module, weights: Sequence[float] = VGG_LAYER_WEIGHTS):
        super().__init__()
        self.features = features
        self.weights = tuple(float(w) for w in weights)
        for p in self.features.parameters():
            p.requires_grad_(False)
        self.features.eval()

    def train(self, mode: bool = True) -> "PerceptualLoss":
        super().train(mode)
        self.features.eval()  # a fixed feature extractor: never switch it to training behaviour
        return self

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        fake_features = self.features(fake)
        with torch.no_grad():
            real_features = self.features(real)
        if len(fake_features) != len(self.weights):
            raise ValueError(f"{len(fake_features)} VGG taps but {len(self.weights)} layer weights")
        total = fake.new_zeros((), dtype=torch.float32)
        for w, f, r in zip(self.weights, fake_features, real_features):
            total = total + w * F.l1_loss(f.float(), r.float())
        return total
