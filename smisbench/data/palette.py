"""Colours for label maps, so sample grids show label, real and generated images side by side."""

from __future__ import annotations

import numpy as np
import torch

from smisbench.datasets_config import DatasetConfig
from smisbench.imaging import from_uint8, voc_palette


def palette_for(config: DatasetConfig) -> np.ndarray:
    """(label_nc, 3) uint8 colours: the dataset's own palette where it has one."""
    if config.name == "synthetic":
        from smisbench.data.synthetic import PALETTE

        return PALETTE
    if config.name == "cityscapes":
        from smisbench.data.cityscapes import label_colors

        return label_colors()
    return voc_palette(config.label_nc)


def colorize(label: torch.Tensor, config: DatasetConfig) -> torch.Tensor:
    """(B, H, W) or (H, W) ids -> (B, 3, H, W) or (3, H, W) float in [-1, 1] (for image grids)."""
    colors = torch.from_numpy(palette_for(config)).to(label.device)
    rgb = from_uint8(colors[label.long().clamp(0, len(colors) - 1)])
    return rgb.movedim(-1, -3)
