"""Cityscapes with fine annotations, in the official layout (or pix2pixHD's flat copy).

Official layout::

    root/leftImg8bit/{train,val}/<city>/<frame>_leftImg8bit.png
    root/gtFine/{train,val}/<city>/<frame>_gtFine_labelIds.png
    root/gtFine/{train,val}/<city>/<frame>_gtFine_instanceIds.png

pix2pixHD's layout (``root/{train,test}_{img,label,inst}/``) is read too. Labels are the
35 label ids (cityscapesscripts' table, 0..33 stored; id 34 stands for the license plate
that the table lists as -1). Instance ids (16-bit, ``id // 1000`` = label id for "thing"
classes) are returned as ``instance``; the models turn them into the instance-edge
channel. Official preprocessing: resize to 512x256 (bicubic image, nearest labels and
instances), random horizontal flip in training only. "test" reads the validation split, as
the official code does (test labels are not public).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from smisbench.data.base import PairedDataset, check_split
from smisbench.data.files import index_by_key, list_files, pair_files, refuse_empty, require_dir
from smisbench.data.preprocess import Preprocess, size_pair
from smisbench.data.registry import register_reader
from smisbench.datasets_config import get_dataset_config
from smisbench.errors import SmisbenchError

LAYOUT_FIX = "point --root at the Cityscapes folder holding leftImg8bit/ and gtFine/"
IMAGE_SUFFIX = "_leftImg8bit"
LABEL_SUFFIX = "_gtFine_labelIds"
INSTANCE_SUFFIX = "_gtFine_instanceIds"


def class_names() -> tuple[str, ...]:
    """Names of label ids 0..34 from cityscapesscripts (34: license plate, listed there as -1)."""
    from cityscapesscripts.helpers.labels import labels

    names = {label.id: label.name for label in labels}
    return tuple(names[i] if i in names else names[-1] for i in range(35))


def label_colors() -> np.ndarray:
    """(35, 3) uint8 colours of the label ids, cityscapesscripts' palette."""
    from cityscapesscripts.helpers.labels import labels

    colors = {label.id: label.color for label in labels}
    return np.array([colors[i] if i in colors else colors[-1] for i in range(35)], dtype=np.uint8)


def frame_key(suffix: str):
    """Pairing key: the frame id ``<city>_<seq>_<frame>`` left when the file's suffix is removed."""

    def key(path: Path) -> str:
        stem = path.name[: -len(path.suffix)]
        return stem[: -len(suffix)] if stem.endswith(suffix) else stem

    return key


def _folders(root: Path, split: str) -> tuple[list[Path], Path, Path, Path, bool]:
    """(folders, image dir, label dir, instance dir, recursive) for either layout."""
    official = split if split == "train" else "val"
    if (root / "leftImg8bit").is_dir() or (root / "gtFine").is_dir():
        image_dir = require_dir(root / "leftImg8bit" / official, "Cityscapes image", LAYOUT_FIX)
        label_dir = require_dir(root / "gtFine" / official, "Cityscapes label", LAYOUT_FIX)
        return [image_dir, label_dir], image_dir, label_dir, label_dir, True
    flat = "train" if split == "train" else "test"
    if (root / f"{flat}_label").is_dir():
        image_dir = require_dir(root / f"{flat}_img", "Cityscapes (pix2pixHD layout) image", LAYOUT_FIX)
        label_dir = root / f"{flat}_label"
        instance_dir = require_dir(root / f"{flat}_inst", "Cityscapes (pix2pixHD layout) instance", LAYOUT_FIX)
        return [image_dir, label_dir, instance_dir], image_dir, label_dir, instance_dir, False
    raise SmisbenchError(f"{root} holds neither leftImg8bit/ + gtFine/ nor pix2pixHD's {flat}_img/ + {flat}_label/",
                         LAYOUT_FIX)


def build(root: str | Path, split: str = "train", size: int | tuple[int, int] | None = None,
          flip: bool | None = None, augment_seed: int = 0) -> PairedDataset:
    """The Cityscapes reader; ``size`` (height, width; default 256x512) overrides the official size."""
    check_split(split)
    config = get_dataset_config("cityscapes")
    root = Path(root)
    _, image_dir, label_dir, instance_dir, recursive = _folders(root, split)
    images = index_by_key(list_files(image_dir, (".png",), recursive, IMAGE_SUFFIX), frame_key(IMAGE_SUFFIX), "images")
    labels = index_by_key(list_files(label_dir, (".png",), recursive, LABEL_SUFFIX), frame_key(LABEL_SUFFIX),
                          "label maps")
    instances = index_by_key(list_files(instance_dir, (".png",), recursive, INSTANCE_SUFFIX),
                             frame_key(INSTANCE_SUFFIX), "instance maps")
    pairs = pair_files(labels, images, label_dir, image_dir, {"instance": (instances, instance_dir)})
    refuse_empty(pairs, f"{image_dir} and {label_dir}", LAYOUT_FIX)
    crop = size_pair(size) if size is not None else config.size
    preprocess = Preprocess("fixed", crop, crop, flip=(split == "train") if flip is None else flip)
    return PairedDataset(config, pairs, preprocess, split, root, augment_seed)


register_reader("cityscapes", build, "Cityscapes: leftImg8bit/ + gtFine/ (labelIds, instanceIds)")
