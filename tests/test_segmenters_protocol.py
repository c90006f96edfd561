"""The scoring protocol's size and resize fields, run through score_folders with a palette segmenter.

The palette segmenter classifies each pixel by its nearest palette colour: exact on images painted
from label maps, so every mismatch comes from the protocol's resizing alone.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from smisbench.errors import SmisbenchError
from smisbench.segmenters.base import Segmenter, as_pil_rgb, pil_to_float
from smisbench.segmenters.protocol import ScoringProtocol, get_protocol
from smisbench.segmenters.base import SegmenterSpec
from smisbench.segmenters.score_folder import pair_files, score_folders

PALETTE = torch.tensor([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [0, 255, 255],
                        [255, 0, 255], [255, 255, 255]], dtype=torch.float32)


class PaletteSegmenter(Segmenter):
    def scores(self, image, out_size=None):
        x = pil_to_float(as_pil_rgb(image))
        distance = ((x[None] - PALETTE[:, :, None, None]) ** 2).sum(1)
        scores = -distance[None]
        if out_size is not None and tuple(out_size) != tuple(scores.shape[2:]):
            scores = F.interpolate(scores, out_size, mode="bilinear", align_corners=False)
        return scores[0]


SPEC = SegmenterSpec("palette8", "deepfashion", tuple(f"c{i}" for i in range(8)), "deepfashion8", {}, (),
                     build=lambda: torch.nn.Identity(), load=lambda *a, **k: None)


def _write_pairs(folder, count=2, generated=64, label_scale=2):
    images, labels = folder / "images", folder / "labels"
    images.mkdir()
    labels.mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        blocks = rng.integers(0, 8, (8, 8))
        label = np.kron(blocks, np.ones((generated // 8, generated // 8), dtype=np.int64))
        Image.fromarray(PALETTE[label].numpy().astype(np.uint8)).save(images / f"img{i}_synthesized_image.png")
        big = np.kron(label, np.ones((label_scale, label_scale), dtype=np.int64)).astype(np.uint8)
        Image.fromarray(big, "L").save(labels / f"img{i}.png")
    return images, labels


@pytest.fixture
def segmenter():
    return PaletteSegmenter(SPEC, torch.nn.Identity(), "cpu", multi_scale=False)


@pytest.mark.parametrize("common_size,resize,pixels", [
    ("label", "labels", 2 * 128 * 128),
    ("generated", "labels", 2 * 64 * 64),
    ((96, 96), "labels", 2 * 96 * 96),
])
def test_common_size_decides_where_prediction_and_label_meet(tmp_path, segmenter, common_size, resize, pixels):
    images, labels = _write_pairs(tmp_path)
    protocol = ScoringProtocol("t", "palette8", "deepfashion8", common_size=common_size, resize=resize)
    result = score_folders(images, labels, segmenter, protocol, progress=False)
    assert result.images == 2 and result.confusion.total == pixels
    assert result.summary["pixel_accuracy"] == 1.0  # block edges fall on pixel boundaries at these sizes


def test_logit_resizing_and_a_smaller_segmenter_input_cost_accuracy_only_at_edges(tmp_path, segmenter):
    images, labels = _write_pairs(tmp_path)
    protocol = ScoringProtocol("t", "palette8", "deepfashion8", segmenter_input=(20, 20), common_size="label",
                               resize="logits")
    result = score_folders(images, labels, segmenter, protocol, progress=False)
    accuracy = result.summary["pixel_accuracy"]
    assert result.confusion.total == 2 * 128 * 128
    assert 0.5 < accuracy < 1.0


def test_protocol_fields_are_validated_and_recorded():
    with pytest.raises(SmisbenchError, match="absent-class rule"):
        ScoringProtocol("x", "s", "deepfashion8", absent_class_rule="mean")
    with pytest.raises(SmisbenchError, match="common_size"):
        ScoringProtocol("x", "s", "deepfashion8", common_size="image")
    base = get_protocol("cityscapes-drn105")
    changed = base.with_overrides(common_size=(1024, 2048), absent_class_rule=None)
    assert changed.common_size == (1024, 2048) and changed.absent_class_rule == base.absent_class_rule
    assert changed.to_dict()["common_size"] == [1024, 2048]


def test_pairing_strips_dataset_suffixes_and_reports_extra_labels(tmp_path):
    images, labels = _write_pairs(tmp_path, count=2)
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(labels / "unused_gtFine_labelIds.png")
    pairs, extra = pair_files(images, labels)
    assert [(a.name, b.name) for a, b in pairs] == [("img0_synthesized_image.png", "img0.png"),
                                                   ("img1_synthesized_image.png", "img1.png")]
    assert extra == ["unused"]
