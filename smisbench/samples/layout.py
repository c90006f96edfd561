"""The sample-folder layout: generated images as PNG files that ``smisbench score-samples`` scores.

A model in any framework (JAX, TensorFlow, a diffusion pipeline) is scored from files alone: it
writes this layout, and every metric (mCSD, mOCD, LPIPS diversity, FID, mIoU, accuracy) is
computed from it exactly as the in-memory route computes it from a torch model.
``smisbench export-samples`` writes it for any model the suite can load. docs/sample_folders.md
says the same for users.

::

    DIR/
      manifest.json            what the folder holds (below); written last
      0000/                    one folder per label map: its index in the split, 4 digits (or more)
        label.png              the label map the model was given: the dataset's label ids, one per
                               pixel, 8-bit grey (16-bit when ids exceed 255), at the dataset's size
        global/000.png ...     k samples, each from its own whole code (global resampling)
        class_003/000.png ...  n samples of class 3: one base code per label map, only class 3's
                               code redrawn for each (models without per-class codes: n samples
                               from whole codes); one class_CCC folder (3 digits) for each class
                               in label.png that is listed in the manifest's "classes"
      0001/ ...

Samples are RGB PNGs (8 bits per channel), all of one size, named ``000.png`` .. with three digits
(more when a set holds over 1000). Pixels map to the generators' [-1, 1] range by
``smisbench.imaging.from_uint8`` (u / 127.5 - 1); writing ``round((x + 1) * 127.5)`` is
``smisbench.imaging.to_uint8``'s rule.

manifest.json::

    {"format": "smisbench-samples", "version": 1,
     "dataset": "deepfashion", "split": "test", "dataset_options": {},
     "codes": "per_class",          # "per_class", "global" or "none" (a deterministic model)
     "classes": [0, 1, 2, 3, 4, 5, 6, 7],   # classes that get a class_CCC set where present
     "n": 100, "k": 100, "seed": 0,         # per-class set size, global set size, protocol seed
     "image_size": [256, 256],              # [height, width] of every sample (optional)
     "maps": [0, 1, 2, ...],                # the first K label maps of the split, in order
     "model": {"name": "my-model", "provenance": {...}}}   # free-form: weights, code version ...

What each metric reads. mCSD/mOCD: for map i and class c, the m pairs the protocol draws from
(seed, i, c) among the n samples of class_CCC (``smisbench.metrics.smis_diversity.set_pairs``;
only the samples in a pair are read). LPIPS diversity: m pairs among the k global samples.
FID, mIoU and accuracy: ``global/000.png`` of every map (one image per label map, as the in-memory
route generates one), FID against the dataset's real images of the same maps. "codes": "none"
needs no class folders and one global sample: every diversity is 0 by construction, as in memory.

The file route equals the in-memory route up to PNG rounding (each pixel moves by at most 1/255)
for mCSD, mOCD and LPIPS diversity: ``export-samples`` draws the codes with the same functions and
seeds, and ``k = n`` by default so the global set is the one LPIPS diversity draws in memory. FID,
mIoU and accuracy use a different code per map than the in-memory route (which draws one code per
item from its own stream), so they agree in distribution, not to the digit.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from smisbench import imaging
from smisbench.errors import SmisbenchError

FORMAT = "smisbench-samples"
VERSION = 1
MANIFEST = "manifest.json"
LABEL = "label.png"
GLOBAL = "global"
CODES = ("per_class", "global", "none")


def map_folder(index: int) -> str:
    return f"{index:04d}"


def class_folder(c: int) -> str:
    return f"class_{c:03d}"


def sample_name(i: int, count: int) -> str:
    """``000.png`` .. with three digits, more when the set holds over 1000 samples."""
    return f"{i:0{max(3, len(str(count - 1)))}d}.png"


# ----------------------------------------------------------------------------- the one place PNGs are read and written
def read_rgb(path: Path) -> torch.Tensor:
    """(3, H, W) uint8 pixels of a sample (``smisbench.image_io``: every mode converted or refused)."""
    from smisbench.image_io import read_rgb as read_photo

    return torch.from_numpy(read_photo(path, "sample")).permute(2, 0, 1)


def read_label(path: Path) -> torch.Tensor:
    """(H, W) int64 label ids (``smisbench.image_io.read_ids``: never colour-converted)."""
    from smisbench.image_io import read_ids

    return torch.from_numpy(read_ids(path, "label map").astype(np.int64))


def image_size(path: Path) -> tuple[int, int]:
    """(H, W) of an image from its header, without decoding it."""
    from smisbench.image_io import image_size as header_size

    return header_size(path, "sample")


def write_rgb(path: str | os.PathLike, image: torch.Tensor) -> None:
    """One (3, H, W) float image in [-1, 1] as an RGB PNG (``smisbench.imaging.to_uint8``'s rounding)."""
    imaging.save_png(path, imaging.to_uint8_array(image))


def write_label(path: str | os.PathLike, label: torch.Tensor) -> None:
    """An (H, W) label map as an 8-bit grey PNG, 16-bit when its ids exceed 255."""
    array = label.cpu().numpy()
    imaging.save_png(path, array.astype(np.uint8 if int(array.max(initial=0)) < 256 else np.uint16))
