"""SPADE's multi-scale patch discriminator, shared by GroupDNet, SPADE/VSPADE and their variants.

Initialised as the official code initialises G, E and D alike (``init_weights``: xavier normal, gain
0.02, zero biases), through the same :func:`smisbench.models.layers.xavier_init` as our G and E;
PyTorch's default init would give weights about 35x larger.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from smisbench.models.layers import norm_conv, xavier_init


class NLayerDiscriminator(nn.Module):
    """PatchGAN with kernel 4; returns every layer's output so the generator can use feature matching."""

    def __init__(self, input_nc: int, ndf: int = 64, n_layers: int = 4, spectral: bool = True):
        super().__init__()
        padding = 2  # ceil((4 - 1) / 2), as the official code
        self.model0 = nn.Sequential(nn.Conv2d(input_nc, ndf, 4, stride=2, padding=padding), nn.LeakyReLU(0.2))
        width = ndf
        for n in range(1, n_layers):
            previous, width = width, min(width * 2, 512)
            stride = 1 if n == n_layers - 1 else 2
            conv = nn.Conv2d(previous, width, 4, stride=stride, padding=padding)
            setattr(self, f"model{n}", nn.Sequential(norm_conv(conv, spectral), nn.LeakyReLU(0.2)))
        setattr(self, f"model{n_layers}", nn.Sequential(nn.Conv2d(width, 1, 4, stride=1, padding=padding)))
        self.n_layers = n_layers

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for n in range(self.n_layers + 1):
            x = getattr(self, f"model{n}")(x)
            features.append(x)
        return features


class MultiscaleDiscriminator(nn.Module):
    """``num_D`` patch discriminators, each on a 3x3/stride-2 average-pooled copy of the previous scale's input.

    Output: one list of features per scale; the last entry of each list is the real/fake prediction.
    """

    def __init__(self, input_nc: int, ndf: int = 64, n_layers: int = 4, num_D: int = 2, spectral: bool = True):
        super().__init__()
        self.num_D = num_D
        for i in range(num_D):
            self.add_module(f"discriminator_{i}", NLayerDiscriminator(input_nc, ndf, n_layers, spectral))
        xavier_init(self)

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        outputs = []
        for i in range(self.num_D):
            outputs.append(getattr(self, f"discriminator_{i}")(x))
            x = F.avg_pool2d(x, kernel_size=3, stride=2, padding=1, count_include_pad=False)
        return outputs


def discriminator_for(input_nc: int, ndf: int = 64, n_layers: int = 4, num_D: int = 2, spectral: bool = True) -> MultiscaleDiscriminator:
    """D for a generator whose semantic input has ``input_nc`` channels (the image's 3 are added here)."""
    return MultiscaleDiscriminator(input_nc + 3, ndf, n_layers, num_D, spectral)
