"""DeepFashion in the SMIS layout (the GroupDNet release's data).

Layout::

    root/train/*.jpg            root/cihp_train_mask/*.png   (labels 0-7, same basename)
    root/test/*.jpg             root/cihp_test_mask/*.png

Classes (``DEEPFASHION_CLASSES``): hair, face, skin, top, bottom, socks, shoes, background.
Official preprocessing: resize to 256x256 (bicubic image, nearest labels), crop 256 (a
no-op), random horizontal flip in training only. "val" reads the test split, as the
official code has no validation split.
"""

from __future__ import annotations

from pathlib import Path

from smisbench.data.base import PairedDataset, check_split
from smisbench.data.files import index_by_key, list_files, pair_files, refuse_empty, require_dir, stem_key
from smisbench.data.preprocess import Preprocess, size_pair
from smisbench.data.registry import register_reader
from smisbench.datasets_config import get_dataset_config

LAYOUT_FIX = "point --root at the folder holding train/, test/, cihp_train_mask/ and cihp_test_mask/"


def build(root: str | Path, split: str = "train", size: int | tuple[int, int] | None = None,
          flip: bool | None = None, augment_seed: int = 0) -> PairedDataset:
    """The DeepFashion reader; ``size`` (default 256) and ``flip`` (default: training only) override the official values."""
    check_split(split)
    config = get_dataset_config("deepfashion")
    root = Path(root)
    phase = "train" if split == "train" else "test"
    image_dir = require_dir(root / phase, "DeepFashion image", LAYOUT_FIX)
    label_dir = require_dir(root / f"cihp_{phase}_mask", "DeepFashion label", LAYOUT_FIX)
    labels = index_by_key(list_files(label_dir, (".png",)), stem_key, "label maps")
    images = index_by_key(list_files(image_dir), stem_key, "images")
    pairs = pair_files(labels, images, label_dir, image_dir)
    refuse_empty(pairs, f"{image_dir} and {label_dir}", LAYOUT_FIX)
    crop = size_pair(size) if size is not None else config.size
    preprocess = Preprocess("resize_and_crop", crop, crop, flip=(split == "train") if flip is None else flip)
    return PairedDataset(config, pairs, preprocess, split, root, augment_seed)


register_reader("deepfashion", build, "DeepFashion, SMIS layout: {train,test}/ + cihp_{train,test}_mask/")
