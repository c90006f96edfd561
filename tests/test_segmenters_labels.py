"""Label conventions on real samples: Cityscapes 35 -> 19 train ids, ADE20K 0 -> ignored, CIHP 20 -> 8."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from smisbench.errors import LabelMapError
from smisbench.segmenters.graphonomy import flip_channel_order
from smisbench.segmenters.label_conventions import CIHP_TO_DEEPFASHION8, get_label_convention


def test_cityscapes_table_is_cityscapesscripts():
    from cityscapesscripts.helpers.labels import id2label

    convention = get_label_convention("cityscapes_labelids")
    assert convention.num_classes == 19
    for label_id in range(34):
        train = id2label[label_id].trainId
        expected = train if 0 <= train < 255 else 255
        assert convention.convert(torch.tensor([label_id])).item() == expected
    assert convention.convert(torch.tensor([34])).item() == 255  # licence plate (-1 in the table)


def test_cityscapes_samples_ignore_about_eleven_percent(samples):
    convention = get_label_convention("cityscapes_labelids")
    files = sorted((samples / "pix2pixHD_cityscapes" / "datasets" / "cityscapes").glob("*_label/*_labelIds.png"))
    assert len(files) == 23
    ignored = total = 0
    for path in files:
        train = convention.convert(np.asarray(Image.open(path)), source=str(path))
        counts = torch.bincount(train.flatten(), minlength=256)
        assert int(counts[19:255].sum()) == 0
        ignored += int(counts[255])
        total += train.numel()
    assert abs(ignored / total - 0.109) < 0.002


def test_ade20k_shift_and_ignore(samples):
    convention = get_label_convention("ade20k_sceneparsing")
    raw = np.asarray(Image.open(samples / "ade20k_sceneparsing/sampleData/annotations/ADE_val_00000001.png"))
    converted = convention.convert(raw)
    assert torch.equal(converted[torch.from_numpy(raw == 0)], torch.full((int((raw == 0).sum()),), 255))
    valid = torch.from_numpy(raw > 0)
    assert torch.equal(converted[valid], torch.from_numpy(raw.astype(np.int64))[valid] - 1)
    with pytest.raises(LabelMapError, match="not ade20k_sceneparsing labels"):
        convention.convert(torch.tensor([151]))


def test_cihp_left_right_swap_matches_the_flipped_sample_labels(samples):
    """CIHP_PGN ships each label map's mirror image; mirroring must swap exactly our left/right pairs."""
    order = np.asarray(flip_channel_order(20))
    folder = samples / "cihp_pgn" / "datasets" / "CIHP"
    for path in sorted((folder / "labels").glob("*.png")):
        label = np.asarray(Image.open(path))
        mirrored = np.asarray(Image.open(folder / "labels_rev" / path.name))
        assert np.array_equal(order[label[:, ::-1]], mirrored), path.name


def test_cihp_to_deepfashion8_mapping(samples):
    convention = get_label_convention("cihp20_to_deepfashion8")
    label = np.asarray(Image.open(samples / "graphonomy/data/datasets/CIHP_4w/Category_ids/0000002.png"))
    mapped = convention.convert(label)
    lut = np.asarray(CIHP_TO_DEEPFASHION8)
    assert np.array_equal(mapped.numpy(), lut[label])
    # background stays background, left and right parts map together
    assert CIHP_TO_DEEPFASHION8[0] == 7
    for a, b in ((14, 15), (16, 17), (18, 19)):
        assert CIHP_TO_DEEPFASHION8[a] == CIHP_TO_DEEPFASHION8[b]
