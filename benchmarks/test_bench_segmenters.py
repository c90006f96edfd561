"""Segmenter throughput on CPU (images/s) at each dataset's resolution, single scale and the paper's protocol.

Random weights loaded through the real checkpoint path (the cost does not depend on the values).
Inputs are real sample photos resized to the generated-image size when ../shared is present,
else seeded noise; ``extra_info`` records images/s, threads, resolution, scales and the input.
"""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from benchmarks.inputs import SAMPLES
from smisbench.segmenters.testing import random_weight_segmenter

ADE_PHOTO = "ade20k_sceneparsing/sampleData/images/ADE_val_00000001.jpg"
# (segmenter, dataset, generated size (h, w), multi-scale, sample photo)
CASES = [
    ("csail_upernet101_ade20k", "ade20k", (256, 256), False, ADE_PHOTO),
    ("csail_upernet101_ade20k", "ade20k", (256, 256), True, ADE_PHOTO),
    ("drn_d_105_cityscapes", "cityscapes", (256, 512), False,
     "pix2pixHD_cityscapes/datasets/cityscapes/train_img/aachen_000000_000019_leftImg8bit.png"),
    ("drn_d_105_cityscapes", "cityscapes-full", (1024, 2048), False,
     "pix2pixHD_cityscapes/datasets/cityscapes/train_img/aachen_000000_000019_leftImg8bit.png"),
    ("graphonomy_cihp_deepfashion8", "deepfashion", (256, 256), False, "cihp_pgn/datasets/CIHP/images/0002190.jpg"),
    ("graphonomy_cihp_deepfashion8", "deepfashion", (256, 256), True, "cihp_pgn/datasets/CIHP/images/0002190.jpg"),
]
_SEGMENTERS: dict = {}


def _input(size: tuple[int, int], relative: str) -> tuple[Image.Image, str]:
    path = SAMPLES / relative
    if path.exists():
        return Image.open(path).convert("RGB").resize((size[1], size[0]), Image.BICUBIC), path.name
    noise = torch.randint(0, 256, (size[0], size[1], 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    return Image.fromarray(noise.numpy(), "RGB"), "seeded noise"


@pytest.mark.parametrize("name,dataset,size,multi_scale,photo", CASES,
                         ids=[f"{c[0]}-{c[2][0]}x{c[2][1]}-{'ms' if c[3] else 'ss'}" for c in CASES])
def test_segmenter_images_per_second(benchmark, tmp_path_factory, name, dataset, size, multi_scale, photo):
    key = (name, multi_scale)
    if key not in _SEGMENTERS:
        _SEGMENTERS[key] = random_weight_segmenter(name, tmp_path_factory.mktemp(name), multi_scale=multi_scale)
    segmenter = _SEGMENTERS[key]
    image, source = _input(size, photo)
    heavy = multi_scale or size[0] * size[1] > 512 * 512
    prediction = benchmark.pedantic(segmenter.predict, args=(image,), rounds=1 if heavy else 3,
                                    warmup_rounds=0 if heavy else 1, iterations=1)
    assert prediction.shape == size
    benchmark.extra_info.update(
        images_per_s=1.0 / benchmark.stats.stats.median, threads=torch.get_num_threads(), dataset=dataset,
        resolution=list(size), multi_scale=multi_scale, input=source, device="cpu", dtype="float32",
    )
