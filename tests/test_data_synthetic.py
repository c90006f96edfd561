"""The embedded synthetic SMIS dataset: determinism, class independence, known style distributions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from smisbench.data import synthetic
from smisbench.data.registry import build_dataset
from smisbench.data.synthetic import CLASS_NAMES, FIELD, STYLE_FIELDS, STYLE_RANGES, SyntheticSMIS
from smisbench.datasets_config import get_dataset_config
from smisbench.errors import SmisbenchError


def test_registered_config_and_item_format():
    config = get_dataset_config("synthetic")
    assert (config.label_nc, config.height, config.width) == (6, 64, 64)
    assert config.class_names == CLASS_NAMES == ("background", "disc", "square", "triangle", "bar", "ring")
    ds = build_dataset("synthetic")
    assert len(ds) == 2048 and len(build_dataset("synthetic", split="val")) == 256
    item = ds[0]
    assert item["label"].dtype == torch.int64 and item["label"].shape == (64, 64)
    assert item["image"].dtype == torch.float32 and item["image"].shape == (3, 64, 64)
    assert -1 <= float(item["image"].min()) and float(item["image"].max()) <= 1
    assert item["style"].shape == (6, len(STYLE_FIELDS))
    assert item["name"] == "synthetic_train_000000"
    assert 0 <= int(item["label"].min()) and int(item["label"].max()) < 6


def test_deterministic_from_seed_in_any_order():
    a = SyntheticSMIS("train", length=20, seed=3)
    b = SyntheticSMIS("train", length=20, seed=3)
    later_first = [b[i] for i in (7, 2, 19)]
    for i, item in zip((7, 2, 19), later_first):
        assert torch.equal(a[i]["image"], item["image"]) and torch.equal(a[i]["label"], item["label"])
    other_seed = SyntheticSMIS("train", length=20, seed=4)
    assert not torch.equal(a[0]["image"], other_seed[0]["image"])
    val = SyntheticSMIS("val", length=20, seed=3)
    assert not torch.equal(a[0]["label"], val[0]["label"])  # splits use disjoint streams


def test_cache_gives_identical_items():
    plain, cached = SyntheticSMIS("train", length=4), SyntheticSMIS("train", length=4, cache=True)
    for _ in range(2):
        assert torch.equal(plain[3]["image"], cached[3]["image"])
    assert 3 in cached._cached


@pytest.mark.parametrize("field", STYLE_FIELDS)
def test_changing_one_class_style_changes_only_that_class(field):
    ds = SyntheticSMIS("train", length=40)
    changed_any = False
    for index in range(40):
        label, image = ds.arrays(index)
        style = ds.style(index)
        present = [int(c) for c in np.unique(label)]
        c = present[index % len(present)]
        altered = style.copy()
        low, high = STYLE_RANGES[c, FIELD[field]]
        altered[c, FIELD[field]] = low + high - altered[c, FIELD[field]]  # another value from the same range
        new = ds.render(label, altered)
        diff = np.any(new != image, axis=2)
        assert not diff[label != c].any(), f"item {index}: pixels outside class {c} changed"
        changed_any |= bool(diff[label == c].any())
        assert np.array_equal(ds.render(label, style), image)  # re-rendering the true style is exact
    assert changed_any


def test_styles_follow_the_documented_distributions():
    ds = SyntheticSMIS("train", length=3000)
    styles = np.stack([ds.style(i) for i in range(3000)])  # (N, classes, fields)
    low, high = STYLE_RANGES[..., 0], STYLE_RANGES[..., 1]
    assert np.all(styles >= low) and np.all(styles <= high)
    mean = styles.mean(axis=0)
    assert np.allclose(mean, (low + high) / 2, atol=0.03 * (high - low).max() + 1e-9)
    hue = styles[:, :, FIELD["hue"]]
    correlation = np.corrcoef(hue.T)
    assert np.abs(correlation - np.eye(len(CLASS_NAMES))).max() < 0.08  # classes drawn independently


def test_every_class_appears_and_shapes_have_their_class_ids():
    ds = SyntheticSMIS("train", length=50)
    counts = np.zeros(len(CLASS_NAMES))
    for i in range(50):
        counts += np.bincount(ds.label(i).ravel(), minlength=len(CLASS_NAMES)) > 0
    assert np.all(counts > 0)
    assert counts[0] == 50  # the background is always visible


def test_any_size_and_same_scene_at_higher_resolution():
    small, large = SyntheticSMIS("train", length=2, size=32), SyntheticSMIS("train", length=2, size=128)
    assert small[0]["label"].shape == (32, 32) and large[0]["image"].shape == (3, 128, 128)
    down = large[0]["label"][2::4, 2::4]
    assert (down == small[0]["label"]).float().mean() > 0.9  # layout is resolution-independent
    wide = SyntheticSMIS("train", length=1, size=(48, 96))
    assert wide[0]["label"].shape == (48, 96) and wide.config.size == (48, 96)
    with pytest.raises(SmisbenchError):
        SyntheticSMIS("train", size=4)
    with pytest.raises(SmisbenchError):
        SyntheticSMIS("training")
    with pytest.raises(IndexError):
        SyntheticSMIS("train", length=3)[3]


def test_export_round_trips_through_the_custom_reader(tmp_path):
    ds = SyntheticSMIS("val", length=5)
    ds.export(tmp_path, progress=False)
    read = build_dataset("custom", tmp_path, "val", config="synthetic", flip=False)
    assert len(read) == 5
    for i in range(5):
        assert torch.equal(read[i]["label"], ds[i]["label"])
        assert torch.equal(read[i]["image"], ds[i]["image"])


def test_module_docstring_documents_every_class_and_field():
    doc = synthetic.__doc__
    assert all(name in doc for name in CLASS_NAMES)
    assert all(field in doc for field in STYLE_FIELDS)
