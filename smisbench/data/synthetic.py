"""An embedded SMIS dataset whose semantic multi-modality is known exactly (no download).

Each item is a label map of simple shapes on a background and an image in which every
class is painted with its own *style*, drawn independently per image and per class from
the distributions below. A pixel's colour depends only on its class's style, so a class's
appearance can be changed alone (the property SMIS models are meant to learn), and metrics
can be checked against the true per-class distributions.

Classes (``CLASS_NAMES``; label ids 0..5, ``label_nc = 6``):

====  ==========  ==========================================================
id    name        shape (sizes relative to the shorter image side)
====  ==========  ==========================================================
0     background  everything not covered by a shape
1     disc        filled circle, radius r
2     square      rotated square, half side 0.8 r
3     triangle    rotated equilateral triangle, circumradius r
4     bar         rotated rectangle, half length 1.5 r, half width 0.28 r
5     ring        annulus, radii 0.55 r .. r
====  ==========  ==========================================================

Layout of one image: 2..5 shapes (uniform count), each of a uniform class 1..5, centre
uniform in [0.12, 0.88] of each side, r ~ U(0.10, 0.26), angle ~ U(0, 2 pi); later shapes
cover earlier ones.

Style of class c in one image (``STYLE_FIELDS``), all uniform and independent:

* colour: ``hue`` ~ U(0, 1) for every class, ``saturation`` and ``value`` in the ranges below;
* texture: a sinusoidal grating ``amplitude * sin(2 pi frequency (u cos o + v sin o) + phase)``
  with ``orientation`` o ~ U(0, pi), ``phase`` ~ U(0, 2 pi), ``frequency`` in cycles per
  shorter side;
* shading: a linear ramp ``1 + shade_strength * ((u - u0) cos a + (v - v0) sin a)`` through
  the image centre (u0, v0), ``shade_angle`` a ~ U(0, 2 pi).

``(u, v)`` are pixel centres divided by the shorter side. The pixel colour is
``clip(hsv_to_rgb(hue, saturation, value) * shading + texture, 0, 1)``, stored as 8-bit.

==========  ==========  ===========  ==========  ===========  ==============
class       saturation  value        frequency   amplitude    shade_strength
==========  ==========  ===========  ==========  ===========  ==============
background  0.05-0.30   0.25-0.55    1-3         0.00-0.06    0.0-0.6
disc        0.55-1.00   0.65-1.00    2-4         0.04-0.15    0.2-0.8
square      0.55-1.00   0.55-0.95    5-8         0.08-0.20    0.0-0.4
triangle    0.55-1.00   0.60-1.00    0.5-1.5     0.00-0.10    0.3-0.9
bar         0.40-0.90   0.50-0.90    9-13        0.10-0.25    0.0-0.3
ring        0.60-1.00   0.70-1.00    3-6         0.05-0.18    0.0-0.5
==========  ==========  ===========  ==========  ===========  ==============

Everything is a pure function of (seed, split, index): layout and style come from two
independent streams of ``numpy.random.SeedSequence([seed, split_id, index])``, so items are
the same on every machine, in every worker and in any order. Splits: train (2048 items by
default), val and test (256 each), with disjoint streams. Any size works (default 64x64;
shapes scale with the image). ``cache=True`` keeps rendered items in memory;
:meth:`SyntheticSMIS.export` writes PNG files readable by the ``custom`` reader.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from smisbench.data.preprocess import size_pair
from smisbench.data.registry import register_reader
from smisbench.datasets_config import DatasetConfig, get_dataset_config
from smisbench.errors import SmisbenchError
from smisbench.imaging import from_uint8
from smisbench.io import atomic_open
from smisbench.progress import progress_bar

CONFIG = get_dataset_config("synthetic")  # declared with the other built-in dataset configurations
CLASS_NAMES = CONFIG.class_names
NUM_CLASSES = CONFIG.label_nc
STYLE_FIELDS = (
    "hue", "saturation", "value", "frequency", "orientation", "phase", "amplitude", "shade_angle", "shade_strength",
)
FIELD = {name: i for i, name in enumerate(STYLE_FIELDS)}

_SHARED_RANGES = {"hue": (0.0, 1.0), "orientation": (0.0, math.pi), "phase": (0.0, 2 * math.pi),
                  "shade_angle": (0.0, 2 * math.pi)}
_CLASS_RANGES = {
    #             saturation    value         frequency    amplitude     shade_strength
    "background": ((0.05, 0.30), (0.25, 0.55), (1.0, 3.0), (0.00, 0.06), (0.0, 0.6)),
    "disc": ((0.55, 1.00), (0.65, 1.00), (2.0, 4.0), (0.04, 0.15), (0.2, 0.8)),
    "square": ((0.55, 1.00), (0.55, 0.95), (5.0, 8.0), (0.08, 0.20), (0.0, 0.4)),
    "triangle": ((0.55, 1.00), (0.60, 1.00), (0.5, 1.5), (0.00, 0.10), (0.3, 0.9)),
    "bar": ((0.40, 0.90), (0.50, 0.90), (9.0, 13.0), (0.10, 0.25), (0.0, 0.3)),
    "ring": ((0.60, 1.00), (0.70, 1.00), (3.0, 6.0), (0.05, 0.18), (0.0, 0.5)),
}


def style_ranges() -> np.ndarray:
    """(classes, fields, 2) low/high of each uniform style distribution (the ground truth)."""
    out = np.zeros((NUM_CLASSES, len(STYLE_FIELDS), 2))
    for c, name in enumerate(CLASS_NAMES):
        per_class = dict(zip(("saturation", "value", "frequency", "amplitude", "shade_strength"), _CLASS_RANGES[name]))
        for f, field in enumerate(STYLE_FIELDS):
            out[c, f] = _SHARED_RANGES.get(field) or per_class[field]
    return out


STYLE_RANGES = style_ranges()
DEFAULT_SIZE = CONFIG.size
DEFAULT_LENGTHS = {"train": 2048, "val": 256, "test": 256}
SPLIT_IDS = {"train": 0, "val": 1, "test": 2}
PALETTE = np.array([(40, 40, 40), (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48)],
                   dtype=np.uint8)


def sample_style(rng: np.random.Generator) -> np.ndarray:
    """One image's styles: (classes, fields), every entry an independent uniform draw."""
    low, high = STYLE_RANGES[..., 0], STYLE_RANGES[..., 1]
    return low + (high - low) * rng.random(low.shape)


def redraw_class_style(style: np.ndarray, c: int, rng: np.random.Generator) -> np.ndarray:
    """A copy of ``style`` (classes, fields) with class ``c``'s row drawn afresh from its distributions."""
    if not 0 <= int(c) < NUM_CLASSES:
        raise SmisbenchError(f"class {c} is not a synthetic class", f"use a class id in 0..{NUM_CLASSES - 1}")
    low, high = STYLE_RANGES[int(c), :, 0], STYLE_RANGES[int(c), :, 1]
    out = np.array(style, dtype=np.float64, copy=True)
    out[int(c)] = low + (high - low) * rng.random(low.shape)
    return out


def sample_layout(rng: np.random.Generator) -> np.ndarray:
    """Shapes as rows (class, centre x, centre y, radius, angle) in units of the shorter side, before aspect."""
    count = int(rng.integers(2, 6))
    shapes = np.zeros((count, 5))
    shapes[:, 0] = rng.integers(1, NUM_CLASSES, size=count)
    shapes[:, 1:3] = rng.uniform(0.12, 0.88, size=(count, 2))
    shapes[:, 3] = rng.uniform(0.10, 0.26, size=count)
    shapes[:, 4] = rng.uniform(0.0, 2 * math.pi, size=count)
    return shapes


def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray, float]:
    side = float(min(height, width))
    v, u = np.meshgrid((np.arange(height) + 0.5) / side, (np.arange(width) + 0.5) / side, indexing="ij")
    return u, v, side


def render_label(shapes: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H, W) uint8 class ids for a layout (painter's order)."""
    u, v, side = _grid(height, width)
    label = np.zeros((height, width), dtype=np.uint8)
    for cls, cx, cy, r, angle in shapes:
        dx, dy = u - cx * width / side, v - cy * height / side
        lx = dx * math.cos(angle) + dy * math.sin(angle)
        ly = -dx * math.sin(angle) + dy * math.cos(angle)
        name = CLASS_NAMES[int(cls)]
        if name == "disc":
            inside = dx**2 + dy**2 < r**2
        elif name == "square":
            inside = (np.abs(lx) < 0.8 * r) & (np.abs(ly) < 0.8 * r)
        elif name == "triangle":
            inside = np.ones_like(lx, dtype=bool)
            for normal in (math.pi / 2 + math.pi, math.pi / 6, 5 * math.pi / 6):
                inside &= lx * math.cos(normal) + ly * math.sin(normal) < r / 2
        elif name == "bar":
            inside = (np.abs(lx) < 1.5 * r) & (np.abs(ly) < 0.28 * r)
        else:  # ring
            d2 = dx**2 + dy**2
            inside = (d2 < r**2) & (d2 > (0.55 * r) ** 2)
        label[inside] = int(cls)
    return label


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV -> RGB for (K,) arrays, giving (K, 3)."""
    k = (np.array([5.0, 3.0, 1.0])[None, :] + h[:, None] * 6.0) % 6.0
    return v[:, None] - v[:, None] * s[:, None] * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


def render_class(style: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H, W, 3) float colours of one class painted over the whole image with ``style`` (fields,)."""
    u, v, _ = _grid(height, width)
    s = style
    base = _hsv_to_rgb(s[None, FIELD["hue"]], s[None, FIELD["saturation"]], s[None, FIELD["value"]])[0]
    o, a = s[FIELD["orientation"]], s[FIELD["shade_angle"]]
    grating = s[FIELD["amplitude"]] * np.sin(2 * math.pi * s[FIELD["frequency"]] * (u * math.cos(o) + v * math.sin(o))
                                             + s[FIELD["phase"]])
    cu, cv = u.max() / 2 + u.min() / 2, v.max() / 2 + v.min() / 2
    shading = 1.0 + s[FIELD["shade_strength"]] * ((u - cu) * math.cos(a) + (v - cv) * math.sin(a))
    return np.clip(base[None, None, :] * shading[..., None] + grating[..., None], 0.0, 1.0)


def render_image(label: np.ndarray, style: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 image: each pixel painted with its class's style only."""
    height, width = label.shape
    image = np.zeros((height, width, 3), dtype=np.float64)
    for c in np.unique(label):
        mask = label == c
        image[mask] = render_class(style[int(c)], height, width)[mask]
    return np.rint(image * 255.0).astype(np.uint8)


def colorize(label: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 visualisation of a synthetic label map."""
    return PALETTE[label]


class SyntheticSMIS(Dataset):
    """The synthetic SMIS dataset; items are ``{"label", "image", "name", "style"}``.

    ``style`` is the (classes, fields) ground-truth style tensor of the item (see
    ``STYLE_FIELDS``); :meth:`render` re-renders a label map with any style, so a test can
    change one class's style and see only that class's pixels change.
    """

    def __init__(self, split: str = "train", length: int | None = None, size: int | tuple[int, int] = DEFAULT_SIZE,
                 seed: int = 0, cache: bool = False):
        if split not in SPLIT_IDS:
            raise SmisbenchError(f"unknown split {split!r}", f"use one of: {', '.join(SPLIT_IDS)}")
        self.split = split
        self.length = DEFAULT_LENGTHS[split] if length is None else int(length)
        if self.length <= 0:
            raise SmisbenchError(f"the synthetic dataset needs a positive length, got {self.length}",
                                 "pass length=N with N >= 1")
        self.height, self.width = size_pair(size)
        if min(self.height, self.width) < 8:
            raise SmisbenchError(f"synthetic images of {self.height}x{self.width} are too small to hold shapes",
                                 "use a size of at least 8 pixels")
        self.seed = int(seed)
        self.cache = cache
        self._cached: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.config = CONFIG if (self.height, self.width) == DEFAULT_SIZE else DatasetConfig(
            "synthetic", NUM_CLASSES, self.height, self.width, class_names=CLASS_NAMES)
        self.root = None

    def __len__(self) -> int:
        return self.length

    def image_identity(self, count: int) -> dict[str, object]:
        """What decides the images (FID's real-statistics key): seed and size; length and caching change none."""
        return {"generator": "synthetic", "seed": self.seed, "size": [self.height, self.width]}

    def set_epoch(self, epoch: int) -> None:
        """Items do not depend on the epoch (no augmentation); kept for the trainer's interface."""

    def _streams(self, index: int) -> tuple[np.random.Generator, np.random.Generator]:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} synthetic items")
        layout, style = np.random.SeedSequence([self.seed, SPLIT_IDS[self.split], index]).spawn(2)
        return np.random.default_rng(layout), np.random.default_rng(style)

    def layout(self, index: int) -> np.ndarray:
        return sample_layout(self._streams(index)[0])

    def style(self, index: int) -> np.ndarray:
        """(classes, fields) float64 styles of item ``index`` (drawn for every class, present or not)."""
        return sample_style(self._streams(index)[1])

    def label(self, index: int) -> np.ndarray:
        return render_label(self.layout(index), self.height, self.width)

    def render(self, label: np.ndarray, style: np.ndarray) -> np.ndarray:
        return render_image(label, style)

    def arrays(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(label uint8 (H, W), image uint8 (H, W, 3)) of one item."""
        if index in self._cached:
            return self._cached[index]
        layout_rng, style_rng = self._streams(index)
        label = render_label(sample_layout(layout_rng), self.height, self.width)
        image = render_image(label, sample_style(style_rng))
        if self.cache:
            self._cached[index] = (label, image)
        return label, image

    def restyled(self, index: int, c: int, rng: np.random.Generator) -> np.ndarray:
        """Item ``index``'s image re-rendered with class ``c``'s style redrawn (every other class as it was).

        Only class ``c``'s pixels can change: the exact "redraw one class" a SMIS model should learn.
        """
        return render_image(self.label(index), redraw_class_style(self.style(index), c, rng))

    def name(self, index: int) -> str:
        return f"synthetic_{self.split}_{index:06d}"

    def __getitem__(self, index: int) -> dict:
        label, image = self.arrays(index)
        return {
            "label": torch.from_numpy(label.astype(np.int64)),
            "image": from_uint8(torch.from_numpy(image).permute(2, 0, 1)),
            "name": self.name(index),
            "style": torch.from_numpy(self.style(index)).float(),
        }

    def export(self, folder: str | Path, progress: bool = True) -> Path:
        """Write items as ``folder/images/*.png`` and ``folder/labels/*.png`` (the custom reader's layout)."""
        from PIL import Image

        folder = Path(folder)
        for index in progress_bar(range(len(self)), desc=f"writing synthetic/{self.split}", enabled=progress):
            label, image = self.arrays(index)
            for sub, array in (("labels", label), ("images", image)):
                with atomic_open(folder / sub / f"{self.name(index)}.png") as handle:
                    Image.fromarray(array).save(handle, format="PNG")
        return folder


def build(root: str | Path | None = None, split: str = "train", length: int | None = None,
          size: int | tuple[int, int] = DEFAULT_SIZE, seed: int = 0, cache: bool = False) -> SyntheticSMIS:
    """Registry entry: ``root`` is ignored (nothing is read from disk)."""
    return SyntheticSMIS(split, length, size, seed, cache)


register_reader("synthetic", build, "embedded synthetic SMIS shapes with known per-class styles (no files)",
                needs_root=False)
