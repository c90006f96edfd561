"""Any folder of images with label maps of the same basenames (the user's own data).

Layout (``<split>/`` is optional; ``image_dir=``/``label_dir=``/``instance_dir=`` override it)::

    root/[<split>/]images/*.{jpg,png}
    root/[<split>/]labels/*.png         (one class id per pixel, mode L or 16-bit)
    root/[<split>/]instances/*.png      (optional instance ids)

The label set comes from a known dataset configuration (``config="deepfashion"``: its
class count and size, so models for that dataset train on it) or from ``label_nc=``
with ``size=`` (a new configuration named "custom").
Preprocessing: ``preprocess="resize"`` (default) resizes to ``size``;
"resize_and_crop" resizes to ``load_size`` and crops ``size`` (random in training);
"none" keeps the files' size (all files must then share it to be batched).
"""

from __future__ import annotations

from pathlib import Path

from smisbench.data.base import PairedDataset, check_split
from smisbench.data.files import index_by_key, list_files, pair_files, refuse_empty, require_dir, stem_key
from smisbench.data.preprocess import Preprocess, size_pair
from smisbench.data.registry import register_reader
from smisbench.datasets_config import DatasetConfig, get_dataset_config
from smisbench.errors import SmisbenchError

LAYOUT_FIX = "put images in <root>/images and label maps in <root>/labels, or pass image_dir= and label_dir="


def _resolve(root: Path, split: str, given: str | None, default: str) -> Path:
    if given is not None:
        path = Path(given)
        return path if path.is_absolute() else root / path
    split_dir = root / split / default
    return split_dir if split_dir.is_dir() or (root / split).is_dir() else root / default


def build(
    root: str | Path,
    split: str = "train",
    config: str | None = None,
    label_nc: int | None = None,
    size: int | tuple[int, int] | None = None,
    image_dir: str | None = None,
    label_dir: str | None = None,
    instance_dir: str | None = None,
    preprocess: str = "resize",
    load_size: int | tuple[int, int] | None = None,
    flip: bool | None = None,
    augment_seed: int = 0,
) -> PairedDataset:
    """A reader for a user's folder pair; see the module docstring for the options."""
    check_split(split)
    root = Path(root)
    if (config is None) == (label_nc is None):
        raise SmisbenchError(
            "the custom dataset needs exactly one of config= (a known dataset's label set) or label_nc=",
            "pass config=deepfashion (or cityscapes, ade20k, synthetic), or label_nc=N with size=",
        )
    image_path = require_dir(_resolve(root, split, image_dir, "images"), "custom image", LAYOUT_FIX)
    label_path = require_dir(_resolve(root, split, label_dir, "labels"), "custom label", LAYOUT_FIX)
    instance_path = _resolve(root, split, instance_dir, "instances")
    if instance_dir is not None:
        require_dir(instance_path, "custom instance", LAYOUT_FIX)
    labels = index_by_key(list_files(label_path, (".png", ".bmp", ".tif", ".tiff")), stem_key, "label maps")
    images = index_by_key(list_files(image_path), stem_key, "images")
    extra = {}
    if instance_path.is_dir():
        extra["instance"] = (index_by_key(list_files(instance_path, (".png",)), stem_key, "instance maps"),
                             instance_path)
    pairs = pair_files(labels, images, label_path, image_path, extra)
    refuse_empty(pairs, f"{image_path} and {label_path}", LAYOUT_FIX)

    if config is not None:
        dataset_config = get_dataset_config(config)
        if size is None:
            size = dataset_config.size
    else:
        if size is None and preprocess != "none":
            raise SmisbenchError("the custom dataset with label_nc= needs size=", "pass size=256 or size=(H, W)")
        height, width = size_pair(size) if size is not None else (0, 0)
        dataset_config = DatasetConfig("custom", int(label_nc), height, width, use_instance=bool(extra))
    crop = size_pair(size) if size is not None else (0, 0)
    do_flip = (split == "train") if flip is None else flip
    if preprocess == "resize":
        steps = Preprocess("resize_and_crop", crop, crop, do_flip)
    elif preprocess == "resize_and_crop":
        steps = Preprocess("resize_and_crop", size_pair(load_size) if load_size is not None else crop, crop, do_flip)
    elif preprocess == "none":
        steps = Preprocess("none", crop, crop, do_flip)
    else:
        raise SmisbenchError(f"unknown custom preprocessing {preprocess!r}", "use resize, resize_and_crop or none")
    return PairedDataset(dataset_config, pairs, steps, split, root, augment_seed)


register_reader("custom", build, "any images/ + labels/ folder pair (options: config= or label_nc=, size=)")
