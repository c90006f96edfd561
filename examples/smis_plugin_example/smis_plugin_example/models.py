"""Two toy SMIS models keeping smisbench's model contract; neither imports smisbench.

The contract: ``codes`` and ``code_shape`` say how codes are drawn, ``forward(onehot, codes)``
maps the one-hot label map (B x C x H x W, plus an instance-edge channel on Cityscapes) and the
codes to images in [-1, 1]. A factory receives the dataset's configuration (``label_nc``,
``height``, ``width``, ...) and returns the module.

* :class:`ClassPainter` paints class c's region with one colour computed from class c's code
  alone, ``tanh(W_c z_c + b_c)``: redrawing z_c changes class c's pixels and nothing else, so
  its mOCD is exactly 0 and its mCSD is positive.
* :class:`GlobalPainter` colours every region from one image code, ``tanh(W_c z + b_c)``:
  every redraw changes every region, so its mOCD exceeds its mCSD.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class ClassPainter(nn.Module):
    """Per-class codes: class c's colour is tanh(W_c z_c + b_c)."""

    codes = "per_class"

    def __init__(self, classes: int, dim: int = 8, seed: int = 0):
        super().__init__()
        self.classes = classes
        self.code_shape = (dim,)  # one class's code
        generator = torch.Generator().manual_seed(seed)
        self.weight = nn.Parameter(torch.randn(classes, dim, 3, generator=generator) / math.sqrt(dim))
        self.bias = nn.Parameter(torch.randn(classes, 3, generator=generator) * 0.3)

    def forward(self, onehot: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        colour = torch.tanh(torch.einsum("bcd,cdk->bck", codes, self.weight) + self.bias)  # B x C x 3
        return torch.einsum("bchw,bck->bkhw", onehot[:, : self.classes], colour)  # edge channel unused


class GlobalPainter(nn.Module):
    """One global code: class c's colour is tanh(W_c z + b_c), so every region moves with z."""

    codes = "global"

    def __init__(self, classes: int, dim: int = 8, seed: int = 0):
        super().__init__()
        self.classes = classes
        self.code_shape = (dim,)  # the image's code
        generator = torch.Generator().manual_seed(seed)
        self.weight = nn.Parameter(torch.randn(classes, dim, 3, generator=generator) / math.sqrt(dim))
        self.bias = nn.Parameter(torch.randn(classes, 3, generator=generator) * 0.3)

    def forward(self, onehot: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        colour = torch.tanh(torch.einsum("bd,cdk->bck", codes, self.weight) + self.bias)  # B x C x 3
        return torch.einsum("bchw,bck->bkhw", onehot[:, : self.classes], colour)


def build_per_class(config) -> ClassPainter:
    """Factory: the dataset's configuration in, the module out."""
    return ClassPainter(config.label_nc)


def build_global(config) -> GlobalPainter:
    return GlobalPainter(config.label_nc)
