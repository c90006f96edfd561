"""The official SPADE/SMIS preprocessing (files are read by :mod:`smisbench.image_io`).

The official loaders resize images bicubically and label/instance maps with nearest
neighbour, then crop and (in training) flip all of them with the same random draw.
Here that draw comes from a generator seeded by (seed, epoch, index), so an item is the
same whichever worker loads it and whenever training resumes: a resumed run sees the
same pixels as an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from smisbench.errors import SmisbenchError
from smisbench.imaging import from_uint8

MODES = ("resize_and_crop", "fixed", "none")


@dataclass(frozen=True)
class Preprocess:
    """Resize/crop/flip settings of one dataset split.

    ``mode``: "resize_and_crop" resizes to ``load_size`` then crops ``crop_size`` (random in
    training, the same corner otherwise as the official code; load == crop makes it a pure
    resize); "fixed" resizes to exactly ``crop_size`` (Cityscapes); "none" keeps the file's size.
    Sizes are (height, width).
    """

    mode: str
    load_size: tuple[int, int]
    crop_size: tuple[int, int]
    flip: bool = False

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise SmisbenchError(f"unknown preprocessing mode {self.mode!r}", f"use one of: {', '.join(MODES)}")
        if self.mode == "resize_and_crop" and (
            self.crop_size[0] > self.load_size[0] or self.crop_size[1] > self.load_size[1]
        ):
            raise SmisbenchError(
                f"crop size {self.crop_size} is larger than load size {self.load_size}",
                "choose a load size at least as large as the crop size",
            )

    @property
    def random(self) -> bool:
        """Whether :meth:`draw` depends on its generator (a random crop position or a flip)."""
        return self.flip or (self.mode == "resize_and_crop" and self.load_size != self.crop_size)

    def identity(self) -> dict[str, Any]:
        """The settings that change an image: sizes only where they resize or crop, and the flip."""
        out: dict[str, Any] = {"mode": self.mode, "flip": self.flip}
        if self.mode == "resize_and_crop":
            out.update(load_size=list(self.load_size), crop_size=list(self.crop_size))
        elif self.mode == "fixed":
            out["size"] = list(self.crop_size)
        return out

    def draw(self, rng: np.random.Generator) -> tuple[int, int, bool]:
        """Crop corner (top, left) and flip for one item, in the official order (x, y, flip)."""
        if self.mode == "resize_and_crop":
            left = int(rng.integers(0, self.load_size[1] - self.crop_size[1] + 1))
            top = int(rng.integers(0, self.load_size[0] - self.crop_size[0] + 1))
        else:
            left = top = 0
        flip = bool(rng.random() > 0.5) if self.flip else False
        return top, left, flip

    def _geometry(self, image: Image.Image, resample: int, top: int, left: int, flip: bool) -> Image.Image:
        if self.mode == "resize_and_crop":
            image = image.resize((self.load_size[1], self.load_size[0]), resample)
            image = image.crop((left, top, left + self.crop_size[1], top + self.crop_size[0]))
        elif self.mode == "fixed":
            image = image.resize((self.crop_size[1], self.crop_size[0]), resample)
        if flip:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return image

    def image(self, image: Image.Image, top: int, left: int, flip: bool) -> torch.Tensor:
        """RGB -> (3, H, W) float in [-1, 1] (bicubic resize, as ``transforms.Resize`` on PIL)."""
        image = self._geometry(image, Image.Resampling.BICUBIC, top, left, flip)
        array = torch.from_numpy(np.array(image, dtype=np.uint8, copy=True)).permute(2, 0, 1)
        return from_uint8(array)

    def ids(self, ids: Image.Image, top: int, left: int, flip: bool) -> torch.Tensor:
        """Label or instance ids -> (H, W) int64 (nearest resize: ids are never blended)."""
        ids = self._geometry(ids, Image.Resampling.NEAREST, top, left, flip)
        return torch.from_numpy(np.array(ids).astype(np.int64))


def size_pair(size: int | tuple[int, int]) -> tuple[int, int]:
    """An int or (height, width) as (height, width)."""
    return (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))


def item_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The augmentation generator of one item in one epoch (independent of worker and order)."""
    return np.random.default_rng([seed, epoch, index])
