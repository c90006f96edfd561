"""ADE20K scene parsing (ADEChallengeData2016).

Layout::

    root/ADEChallengeData2016/images/{training,validation}/*.jpg
    root/ADEChallengeData2016/annotations/{training,validation}/*.png   (0 = other, 1-150)

``root`` may also be the ``ADEChallengeData2016`` folder itself. Labels are kept as stored,
0..150 with 0 = "other" getting its own one-hot channel: this is what GroupDNet's release
trains on (its post-processing that would shift them never writes back; see groupdnet.md).
Official preprocessing: training resizes to 286x286 and takes a random 256x256 crop and a
random horizontal flip; validation/test resizes to 256x256. "test" reads the validation
split (the challenge's test labels are not public).
"""

from __future__ import annotations

from pathlib import Path

from smisbench.data.base import PairedDataset, check_split
from smisbench.data.files import index_by_key, list_files, pair_files, refuse_empty, require_dir, stem_key
from smisbench.data.preprocess import Preprocess, size_pair
from smisbench.data.registry import register_reader
from smisbench.datasets_config import get_dataset_config

LAYOUT_FIX = "point --root at ADEChallengeData2016/ (or its parent), which holds images/ and annotations/"


def find_challenge_root(root: Path) -> Path:
    """``root`` itself or its ``ADEChallengeData2016`` child, whichever holds images/ and annotations/."""
    for candidate in (root, root / "ADEChallengeData2016"):
        if (candidate / "images").is_dir() and (candidate / "annotations").is_dir():
            return candidate
    return root / "ADEChallengeData2016"


def build(root: str | Path, split: str = "train", size: int | tuple[int, int] | None = None,
          load_size: int | tuple[int, int] | None = None, flip: bool | None = None,
          augment_seed: int = 0) -> PairedDataset:
    """The ADE20K reader; ``size``/``load_size`` override the official 256 crop and 286 training resize."""
    check_split(split)
    config = get_dataset_config("ade20k")
    base = find_challenge_root(Path(root))
    phase = "training" if split == "train" else "validation"
    image_dir = require_dir(base / "images" / phase, "ADE20K image", LAYOUT_FIX)
    label_dir = require_dir(base / "annotations" / phase, "ADE20K annotation", LAYOUT_FIX)
    labels = index_by_key(list_files(label_dir, (".png",)), stem_key, "annotations")
    images = index_by_key(list_files(image_dir), stem_key, "images")
    pairs = pair_files(labels, images, label_dir, image_dir)
    refuse_empty(pairs, f"{image_dir} and {label_dir}", LAYOUT_FIX)
    crop = size_pair(size) if size is not None else config.size
    if load_size is not None:
        load = size_pair(load_size)
    elif split == "train":
        load = (round(crop[0] * config.load_size / config.height), round(crop[1] * config.load_size / config.width))
    else:
        load = crop
    preprocess = Preprocess("resize_and_crop", load, crop, flip=(split == "train") if flip is None else flip)
    return PairedDataset(config, pairs, preprocess, split, Path(root), augment_seed)


register_reader("ade20k", build, "ADE20K: ADEChallengeData2016/{images,annotations}/{training,validation}")
