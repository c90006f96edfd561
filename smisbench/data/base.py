"""The paired-files dataset every folder reader builds on.

A reader's only job is to find and pair its files and pick the preprocessing; loading,
validation and the item format live here, so all datasets yield the same dicts:
``{"label": LongTensor(H, W), "image": FloatTensor(3, H, W) in [-1, 1],
"instance": LongTensor(H, W) (only where the dataset has instance maps), "name": str}``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from smisbench.data.files import first_few
from smisbench.data.preprocess import Preprocess, item_rng
from smisbench.datasets_config import DatasetConfig
from smisbench.errors import LabelMapError, SmisbenchError
from smisbench.image_io import load_rgb, read_ids
from smisbench.labels import validate_label_map
from smisbench.progress import progress_bar

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class DatasetReader:
    """A registered reader: ``build(root, split, **options)`` returns the dataset of items described above."""

    name: str
    build: Callable[..., Dataset]
    description: str
    needs_root: bool = True  # False for generated data (the synthetic set reads no files)


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise SmisbenchError(f"unknown split {split!r}", f"use one of: {', '.join(SPLITS)}")
    return split


@dataclass
class VerifyReport:
    """Result of reading every file of a dataset once."""

    checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class PairedDataset(Dataset):
    """Label maps paired with images (and instance maps), preprocessed the official way.

    ``pairs`` holds (name, {"label": path, "image": path[, "instance": path]}) in a fixed
    order. Random crops/flips are drawn from (``augment_seed``, epoch, index); the trainer
    calls :meth:`set_epoch` so each epoch draws new ones.
    """

    def __init__(
        self,
        config: DatasetConfig,
        pairs: list[tuple[str, dict[str, Path]]],
        preprocess: Preprocess,
        split: str,
        root: Path | None,
        augment_seed: int = 0,
    ):
        self.config = config
        self.pairs = pairs
        self.preprocess = preprocess
        self.split = split
        self.root = root
        self.augment_seed = int(augment_seed)
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.pairs)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def image_identity(self, count: int) -> dict[str, Any]:
        """Everything that decides the first ``count`` images as this reader yields them (FID's real-statistics key).

        The preprocessing that changes pixels, which files they are (paths under ``root``), and the
        augmentation seed and epoch only where a crop position or flip is drawn from them.
        """
        names = []
        for _, paths in self.pairs[:count]:
            path = paths["image"]
            names.append(path.relative_to(self.root).as_posix() if self.root and path.is_relative_to(self.root)
                         else str(path))
        out: dict[str, Any] = {"preprocess": self.preprocess.identity(),
                               "files_sha256": hashlib.sha256("\n".join(names).encode()).hexdigest()}
        if self.preprocess.random:
            out.update(augment_seed=self.augment_seed, epoch=self.epoch)
        return out

    @property
    def has_instance(self) -> bool:
        return bool(self.pairs) and "instance" in self.pairs[0][1]

    def convert_label(self, label: np.ndarray, path: Path) -> np.ndarray:
        """Dataset-specific mapping of the stored values to label ids (identity by default)."""
        return label

    def __getitem__(self, index: int) -> dict:
        name, paths = self.pairs[index]
        stored = read_ids(paths["label"], "label map")
        image = load_rgb(paths["image"])
        label_size = (stored.shape[1], stored.shape[0])
        _check_same_size("image", paths["image"], image.size, paths["label"], label_size,
                         "pair each image with the label map made for it, at the same size")
        top, left, flip = self.preprocess.draw(item_rng(self.augment_seed, self.epoch, index))
        converted = self.convert_label(stored, paths["label"])
        label = self.preprocess.ids(_as_image(converted), top, left, flip)
        label = validate_label_map(label, self.config, str(paths["label"]))[0]
        item = {"label": label, "image": self.preprocess.image(image, top, left, flip), "name": name}
        if "instance" in paths:
            instance = read_ids(paths["instance"], "instance map")
            _check_same_size("instance map", paths["instance"], (instance.shape[1], instance.shape[0]),
                             paths["label"], label_size, "pair each label map with the instance map of the same frame")
            item["instance"] = self.preprocess.ids(_as_image(instance), top, left, flip)
        return item

    def verify(self, limit: int | None = None, progress: bool = True) -> VerifyReport:
        """Read every item once and collect every problem (unreadable files, bad sizes, bad ids)."""
        report = VerifyReport()
        count = len(self) if limit is None else min(limit, len(self))
        for index in progress_bar(range(count), desc=f"checking {self.config.name}/{self.split}", enabled=progress,
                                  leave=False):
            try:
                self[index]
            except SmisbenchError as err:
                report.problems.append(err.problem)
            report.checked += 1
        return report

    def raise_if_invalid(self, limit: int | None = None, progress: bool = True) -> None:
        """Like :meth:`verify` but raise one error listing the first offending files."""
        report = self.verify(limit, progress)
        if not report.ok:
            raise SmisbenchError(
                f"{len(report.problems)} of {report.checked} items of {self.config.name}/{self.split} are unusable: "
                f"{first_few(report.problems, 3)}",
                "fix or remove the files named above",
            )


def _check_same_size(what: str, path: Path, size: tuple[int, int], label_path: Path, label_size: tuple[int, int],
                     fix: str) -> None:
    """An image or instance map must cover its label map pixel for pixel (sizes as width, height)."""
    if tuple(size) != tuple(label_size):
        raise LabelMapError(
            f"{what} {path} is {size[0]}x{size[1]} but its label map {label_path} is "
            f"{label_size[0]}x{label_size[1]} (width x height)",
            fix,
        )


def _as_image(array: np.ndarray) -> Image.Image:
    """Label ids back to an image for resizing: 8-bit stays mode L, anything wider becomes 32-bit."""
    if array.dtype == np.uint8:
        return Image.fromarray(array)
    return Image.fromarray(array.astype(np.int32))
