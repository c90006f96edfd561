"""Score a folder of generated images against a folder of label maps (``smisbench segment``).

Works on files alone, so any SMIS method's outputs can be scored without our models. Images and
label maps are paired by file stem, after removing common dataset suffixes (``_leftImg8bit``,
``_gtFine_labelIds``, ...). An image without a label map is an error, never silently skipped.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
from PIL import Image

from smisbench.errors import LabelMapError, SmisbenchError
from smisbench.image_io import IMAGE_SUFFIXES, read_ids, read_rgb
from smisbench.io import atomic_write_text
from smisbench.labels import resize_ids
from smisbench.segmenters.confusion import ConfusionMatrix
from smisbench.segmenters.label_conventions import LabelConvention, get_label_convention
from smisbench.segmenters.protocol import ScoringProtocol

IMAGE_EXTENSIONS = IMAGE_SUFFIXES
STEM_SUFFIXES = (
    "_leftImg8bit", "_gtFine_labelIds", "_gtFine_trainIds", "_gtFine_color", "_labelIds", "_trainIds",
    "_synthesized_image", "_label", "_image", "_pred", "_gt",
)


def pair_key(path: Path) -> str:
    stem = path.stem
    for suffix in STEM_SUFFIXES:
        if stem.endswith(suffix) and len(stem) > len(suffix):
            return stem[: -len(suffix)]
    return stem


def _index(folder: Path, what: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise SmisbenchError(f"{what} folder {folder} does not exist", f"pass the folder holding the {what}")
    index: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in IMAGE_EXTENSIONS or not path.is_file():
            continue
        key = pair_key(path)
        if key in index:
            raise SmisbenchError(
                f"{what} {index[key].name} and {path.name} in {folder} pair with the same name {key!r}",
                "keep one file per image in the folder",
            )
        index[key] = path
    if not index:
        raise SmisbenchError(f"no {what} ({', '.join(IMAGE_EXTENSIONS)}) in {folder}",
                             f"pass the folder holding the {what}")
    return index


def pair_files(images_dir: str | Path, labels_dir: str | Path) -> tuple[list[tuple[Path, Path]], list[str]]:
    """``[(image, label), ...]`` sorted by name, and the names of label maps that have no image."""
    images = _index(Path(images_dir), "generated images")
    labels = _index(Path(labels_dir), "label maps")
    unmatched = sorted(set(images) - set(labels))
    if unmatched:
        raise SmisbenchError(
            f"{len(unmatched)} of {len(images)} images have no label map in {labels_dir} "
            f"(e.g. {', '.join(images[k].name for k in unmatched[:3])})",
            "name each label map like its image (dataset suffixes such as _gtFine_labelIds are ignored)",
        )
    extra = sorted(set(labels) - set(images))
    return [(images[k], labels[k]) for k in sorted(images)], extra


def read_image(path: Path) -> torch.Tensor:
    """(3, H, W) uint8 RGB, by the shared reader."""
    return torch.from_numpy(read_rgb(path, "generated image")).permute(2, 0, 1)


def read_label(path: Path, what: str = "label map") -> np.ndarray:
    """(H, W) int64 ids, by the shared reader (refuses colour, JPEG, truncated and non-image files)."""
    return read_ids(path, what).astype(np.int64)


@dataclass
class SegmentationScore:
    """One dataset-level result: the confusion matrix and everything needed to reproduce it."""

    confusion: ConfusionMatrix
    classes: tuple[str, ...]
    protocol: dict[str, Any]
    images: int
    segmenter: dict[str, Any] = field(default_factory=dict)
    extra_labels: int = 0
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def summary(self) -> dict[str, Any]:
        return self.confusion.summary(self.protocol["absent_class_rule"], self.protocol.get("dont_care", "ignored"))

    def per_class_table(self):
        return self.confusion.per_class_table(self.classes)

    def to_dict(self) -> dict[str, Any]:
        summary = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in self.summary.items()}
        return {"summary": summary, "images": self.images, "extra_labels_without_image": self.extra_labels,
                "protocol": self.protocol, "segmenter": self.segmenter, "provenance": self.provenance}

    def write(self, out_dir: str | Path) -> list[Path]:
        """scores.json, per_class.csv and confusion.json under ``out_dir`` (each written atomically)."""
        out = Path(out_dir)
        paths = [out / "scores.json", out / "per_class.csv", out / "confusion.json"]
        atomic_write_text(paths[0], json.dumps(self.to_dict(), indent=2, default=str) + "\n")
        atomic_write_text(paths[1], self.per_class_table().to_csv(index=False))
        atomic_write_text(paths[2], json.dumps(self.confusion.to_dict()) + "\n")
        return paths


def _progress(items: list, enabled: bool, desc: str) -> Iterable:
    if not enabled:
        return items
    from smisbench.progress import progress_bar

    return progress_bar(items, desc=desc, unit="img")


def score_pair(segmenter: Any, image: torch.Tensor, label: torch.Tensor, protocol: ScoringProtocol,
               confusion: ConfusionMatrix) -> None:
    """Segment one generated image and add it to ``confusion``; ``label`` holds evaluation ids."""
    generated = (int(image.shape[1]), int(image.shape[2]))
    seg_size = protocol.segmenter_size(generated)
    pil = Image.fromarray(image.permute(1, 2, 0).numpy(), "RGB")
    if seg_size != generated:
        pil = pil.resize((seg_size[1], seg_size[0]), Image.BICUBIC)
    target = protocol.target_size(generated, (int(label.shape[0]), int(label.shape[1])))
    if protocol.resize == "logits":
        prediction = segmenter.predict(pil, out_size=target)
    else:
        prediction = resize_ids(segmenter.predict(pil), target)
    confusion.update(prediction, resize_ids(label, target))


def score_folders(images_dir: str | Path, labels_dir: str | Path, segmenter: Any, protocol: ScoringProtocol,
                  progress: bool = True, limit: int | None = None) -> SegmentationScore:
    """Segment every generated image and score it against its label map under ``protocol``."""
    from smisbench.provenance import environment

    convention = get_label_convention(protocol.label_convention)
    _check_classes(convention, segmenter.num_classes, protocol)
    if convention.ignore_index != protocol.ignore_index:
        raise SmisbenchError(
            f"protocol {protocol.name} ignores id {protocol.ignore_index} but label convention {convention.name} "
            f"marks don't-care pixels {convention.ignore_index}",
            "use the convention's ignore id in the protocol",
        )
    pairs, extra = pair_files(images_dir, labels_dir)
    if extra:
        warnings.warn(f"{len(extra)} label maps in {labels_dir} have no generated image and are not scored",
                      stacklevel=2)
    pairs = pairs[:limit] if limit else pairs
    confusion = ConfusionMatrix(segmenter.num_classes, protocol.ignore_index)
    for image_path, label_path in _progress(pairs, progress, f"segment ({segmenter.spec.name})"):
        label = convention.convert(read_label(label_path), source=str(label_path))
        score_pair(segmenter, read_image(image_path), label, protocol, confusion)
    return SegmentationScore(confusion, segmenter.classes, protocol.to_dict(), len(pairs), segmenter.describe(),
                             len(extra), environment(segmenter.device))


def score_prediction_folders(predictions_dir: str | Path, labels_dir: str | Path, label_convention: str,
                             absent_class_rule: str = "nanmean", classes: tuple[str, ...] | None = None,
                             progress: bool = True, dont_care: str = "ignored") -> SegmentationScore:
    """Score label maps that are already predictions (stored in the same convention as the ground truth)."""
    convention = get_label_convention(label_convention)
    pairs, extra = pair_files(predictions_dir, labels_dir)
    confusion = ConfusionMatrix(convention.num_classes, convention.ignore_index)
    for pred_path, label_path in _progress(pairs, progress, "score predictions"):
        gt = convention.convert(read_label(label_path), source=str(label_path))
        pred = convention.convert(read_label(pred_path, "predicted label map"), source=str(pred_path))
        if pred.shape != gt.shape:
            raise LabelMapError(
                f"predicted label map {pred_path} is {pred.shape[1]}x{pred.shape[0]} but its ground truth "
                f"{label_path} is {gt.shape[1]}x{gt.shape[0]} (width x height)",
                "predict at the ground truth's size (or score the generated images, whose protocol resizes them)",
            )
        unscored = (pred == convention.ignore_index) & (gt != convention.ignore_index)
        if bool(unscored.any()):
            raise LabelMapError(
                f"{pred_path}: {int(unscored.sum())} pixels predict the ignored value where the ground truth "
                "has a class",
                "every scored pixel of a prediction must hold a class",
            )
        confusion.update(pred, gt)
    protocol = {"name": "precomputed-predictions", "label_convention": label_convention,
                "absent_class_rule": absent_class_rule, "dont_care": dont_care, "common_size": "label",
                "resize": "labels"}
    names = classes or tuple(str(i) for i in range(convention.num_classes))
    return SegmentationScore(confusion, names, protocol, len(pairs), {"segmenter": None}, len(extra))


def _check_classes(convention: LabelConvention, num_classes: int, protocol: ScoringProtocol) -> None:
    if convention.num_classes != num_classes:
        raise SmisbenchError(
            f"protocol {protocol.name}: label convention {convention.name} has {convention.num_classes} classes "
            f"but segmenter {protocol.segmenter} predicts {num_classes}",
            "pair a segmenter with the label convention of its dataset",
        )
