"""Tensor <-> image conversions, label colouring and a plain PIL grid for SMIS samples."""

from __future__ import annotations

import os
from typing import Mapping

import numpy as np
import torch
from PIL import Image

from smisbench.io import atomic_open


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(3,H,W) in [-1, 1] -> (H,W,3) uint8."""
    array = ((image.detach().float().clamp(-1, 1) + 1) * 127.5).round().byte()
    return array.permute(1, 2, 0).cpu().numpy()


def palette(num_classes: int) -> np.ndarray:
    """A fixed, well-spread colour per class (the PASCAL bit-interleaving scheme)."""
    colours = np.zeros((max(num_classes, 1), 3), dtype=np.uint8)
    for index in range(num_classes):
        value, r, g, b = index, 0, 0, 0
        for shift in range(8):
            r |= ((value >> 0) & 1) << (7 - shift)
            g |= ((value >> 1) & 1) << (7 - shift)
            b |= ((value >> 2) & 1) << (7 - shift)
            value >>= 3
        colours[index] = (r, g, b)
    return colours


def colorize(label: torch.Tensor, num_classes: int) -> np.ndarray:
    return palette(num_classes)[label.cpu().numpy().clip(0, num_classes - 1)]


def save_png(path: str | os.PathLike, array: np.ndarray) -> None:
    with atomic_open(path, "wb") as handle:
        Image.fromarray(array).save(handle, format="PNG")


def smis_grid(label: torch.Tensor, columns: Mapping[int, torch.Tensor], num_classes: int, pad: int = 2) -> np.ndarray:
    """Grid as in the paper's Figure 1: top row the label map, then one column per redrawn class, rows = samples."""
    tiles = {c: [to_uint8(img) for img in images] for c, images in columns.items()}
    rows = max(len(t) for t in tiles.values())
    h, w = label.shape[-2:]
    grid = np.full(((rows + 1) * (h + pad), len(tiles) * (w + pad), 3), 255, dtype=np.uint8)
    colours = palette(num_classes)
    for j, (c, images) in enumerate(tiles.items()):
        x = j * (w + pad)
        shown = colorize(label, num_classes)
        mask = (label.cpu().numpy() == c)
        shown = np.where(mask[..., None], shown, (shown * 0.3).astype(np.uint8))
        shown[:4, :] = colours[c]
        grid[0:h, x : x + w] = shown
        for i, tile in enumerate(images):
            y = (i + 1) * (h + pad)
            grid[y : y + h, x : x + w] = tile
    return grid


def save_smis_grid(path: str | os.PathLike, label: torch.Tensor, columns: Mapping[int, torch.Tensor], dataset) -> None:
    save_png(path, smis_grid(label, columns, dataset.label_nc))
