"""Benchmark inputs: real label maps from ../shared when present (their boundaries set the sparse CG-Norm cost),
otherwise procedural blobs; each benchmark records which one it used."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

SAMPLES = Path(os.environ.get("SMISBENCH_SHARED", Path(__file__).resolve().parents[2] / "shared")) / "data" / "samples"
CIHP_TO_DEEPFASHION = [7, 0, 0, 3, 1, 3, 3, 3, 5, 4, 2, 3, 4, 1, 2, 2, 2, 2, 6, 6]  # protocol.md table

_REAL = {
    "deepfashion": SAMPLES / "cihp_pgn/datasets/CIHP/labels/0005008.png",
    "cityscapes": SAMPLES / "pix2pixHD_cityscapes/datasets/cityscapes/test_label/frankfurt_000000_000576_gtFine_labelIds.png",
    "ade20k": SAMPLES / "ade20k_sceneparsing/sampleData/annotations/ADE_val_00000001.png",
    "synthetic": None,
}


def bench_label(dataset: str, size: tuple[int, int], classes: int) -> tuple[torch.Tensor, str]:
    """(1, H, W) label ids at the model's size, and a note naming its source."""
    path = _REAL.get(dataset)
    if path is not None and path.exists():
        array = np.array(Image.open(path), dtype=np.int64)
        if dataset == "deepfashion":
            array = np.array(CIHP_TO_DEEPFASHION)[array]
        label = torch.from_numpy(array)[None, None].float()
        label = F.interpolate(label, size=size, mode="nearest")[0].long().clamp_(0, classes - 1)
        return label, f"real label map {path.name}"
    h, w = size
    label = torch.full((1, h, w), classes - 1, dtype=torch.long)
    for k in range(min(classes - 1, 6)):
        label[:, (k * h) // 8 : ((k + 3) * h) // 8, (k * w) // 9 : ((k + 4) * w) // 9] = k
    return label, "procedural blob label map"
