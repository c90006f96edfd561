"""Tensor <-> image conversions, label colouring and a plain PIL grid for SMIS samples.

The one conversion between the generators' float images in [-1, 1] and stored uint8 pixels lives
here (``to_uint8`` / ``from_uint8``); everything that writes, segments or feeds an image to FID calls it.

Rounding rule: ``u = floor(127.5 * clamp(x, -1, 1) + 128)``, i.e. round half up of ``(x + 1) * 127.5``.
Why this one: it is what ``torchvision.utils.save_image`` does (``mul(255).add_(0.5)`` and a
truncating cast), the writer behind the PNGs that torch-fidelity and clean-fid then read back as
uint8, so an image scored in memory has the same bytes as the same image saved and scored from a
folder. It is computed exactly, for every float dtype: ``255 * x`` is taken as a float64 value
plus its rounding error, so the floor never lands on the wrong side of a pixel boundary. (For a
binary float ``x``, ``(x + 1) * 127.5`` is a half-integer only at ``x = 0``, where half up and
half to even both give 128; the copies this replaced disagreed with each other, and with the
exact value, next to every ``k + 0.5`` only because they evaluated ``(x + 1) * 127.5`` in float32.)
The inverse ``from_uint8`` is ``u / 127.5 - 1`` in float32; ``to_uint8(from_uint8(u)) == u``.
"""

from __future__ import annotations

import os
from typing import Mapping

import numpy as np
import torch
from PIL import Image

from smisbench.errors import SmisbenchError
from smisbench.io import atomic_open

UINT8_HALF_RANGE = 127.5  # [0, 255] <-> [-1, 1]: x = u / UINT8_HALF_RANGE - 1 (the one place this number is written)
UINT8_RULE = "floor(127.5 * clamp(x, -1, 1) + 128): round half up of (x + 1) * 127.5, as torchvision's save_image"


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Float images in [-1, 1] (any layout) -> uint8 of the same shape and device, by ``UINT8_RULE``.

    Values outside [-1, 1] are clamped (a generator's tanh may overshoot by rounding); NaN is
    refused, since it has no pixel value and would otherwise turn silently into black.
    """
    if not torch.is_tensor(images) or not images.is_floating_point():
        kind = images.dtype if torch.is_tensor(images) else type(images).__name__
        raise SmisbenchError(f"to_uint8 needs a float tensor in [-1, 1], got {kind}",
                             "pass the generator's float output; uint8 images are already pixels")
    if bool(torch.isnan(images).any()):
        raise SmisbenchError("images contain NaN values, which have no pixel value",
                             "check the model's output (a diverged or wrongly loaded generator gives NaN)")
    device = images.device
    x = images.detach()
    if device.type == "mps":  # no float64 there
        x = x.cpu()
    x = x.double().clamp(-1.0, 1.0)
    # u = floor(127.5 x + 128) = floor((floor(255 x) + 256) / 2); floor(255 x) is taken exactly from
    # 255 x = 256 x - x as a float64 sum s plus its rounding error e (Fast2Sum, |256 x| >= |x|).
    a = x * 256.0
    s = a - x
    e = (x.neg() - (s - a)).lt(0)
    whole = torch.floor(s)
    whole -= (s == whole).logical_and_(e).to(whole.dtype)
    pixels = torch.floor((whole + 256.0) * 0.5).to(torch.uint8)
    return pixels.to(device)


def to_uint8_array(images: torch.Tensor) -> np.ndarray:
    """(..., 3, H, W) float in [-1, 1] -> (..., H, W, 3) uint8 numpy array (what PIL writes)."""
    return to_uint8(images).movedim(-3, -1).cpu().numpy()


def from_uint8(pixels: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Pixel values 0..255 (uint8, or a float holding them) -> float32 in [-1, 1], same layout."""
    tensor = torch.from_numpy(np.asarray(pixels)) if isinstance(pixels, np.ndarray) else pixels
    return tensor.float().div(UINT8_HALF_RANGE).sub(1.0)


def voc_palette(count: int) -> np.ndarray:
    """The PASCAL VOC bit-interleaving palette: distinct, deterministic colours for any class count."""
    colors = np.zeros((max(count, 1), 3), dtype=np.uint8)
    for index in range(count):
        value, r, g, b = index, 0, 0, 0
        for bit in range(8):
            r |= ((value >> 0) & 1) << (7 - bit)
            g |= ((value >> 1) & 1) << (7 - bit)
            b |= ((value >> 2) & 1) << (7 - bit)
            value >>= 3
        colors[index] = (r, g, b)
    return colors


def colorize(label: torch.Tensor, num_classes: int) -> np.ndarray:
    return voc_palette(num_classes)[label.cpu().numpy().clip(0, num_classes - 1)]


def save_png(path: str | os.PathLike, array: np.ndarray) -> None:
    with atomic_open(path, "wb") as handle:
        Image.fromarray(array).save(handle, format="PNG")


def smis_grid(label: torch.Tensor, columns: Mapping[int, torch.Tensor], num_classes: int, pad: int = 2) -> np.ndarray:
    """Grid as in the paper's Figure 1: top row the label map, then one column per redrawn class, rows = samples."""
    tiles = {c: list(to_uint8_array(images)) for c, images in columns.items()}
    rows = max(len(t) for t in tiles.values())
    h, w = label.shape[-2:]
    grid = np.full(((rows + 1) * (h + pad), len(tiles) * (w + pad), 3), 255, dtype=np.uint8)
    colours = voc_palette(num_classes)
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
