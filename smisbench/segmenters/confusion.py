"""One dataset-level confusion matrix, the only sound basis for mIoU and pixel accuracy.

Averaging per-image IoUs gives a different (and size-biased) number; every score here
comes from a single ``(C, C)`` int64 matrix summed over the whole dataset. Rows are
ground-truth classes, columns predicted classes. Matrices from several processes or
shards add up exactly (``merge`` / ``+`` / ``all_reduce``).

Don't-care pixels (ground truth = ``ignore_index``) are not in the matrix, but their count is
kept (``ignored``), so pixel accuracy can be given both ways (``dont_care``): ``"ignored"``
(correct / scored pixels: GroupDNet, the datasets' own evaluation) or ``"counted"`` (correct /
all pixels, a don't-care pixel never being right: SPADE's 2019 numbers, CC-FPSE issue #4).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, Sequence

import numpy as np
import torch

from smisbench.errors import SmisbenchError
from smisbench.metrics.protocol import DONT_CARE_RULES

AbsentClassRule = Literal["nanmean", "sceneparsing"]
ABSENT_CLASS_RULES: tuple[str, ...] = ("nanmean", "sceneparsing")
DontCare = Literal["ignored", "counted"]


@dataclass
class ConfusionMatrix:
    """Counts of (ground truth, prediction) pairs; pixels whose ground truth is ``ignore_index`` are skipped
    (and counted in ``ignored``)."""

    num_classes: int
    ignore_index: int | None = 255
    matrix: torch.Tensor = field(default=None)  # type: ignore[assignment]
    ignored: int = 0

    def __post_init__(self) -> None:
        if self.matrix is None:
            self.matrix = torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64)
        elif tuple(self.matrix.shape) != (self.num_classes, self.num_classes):
            raise SmisbenchError(
                f"confusion matrix of shape {tuple(self.matrix.shape)} does not fit {self.num_classes} classes",
                "create it with the segmenter's class count",
            )
        self.matrix = self.matrix.to(torch.int64).cpu()

    # ------------------------------------------------------------------ accumulate
    def update(self, prediction: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray) -> None:
        """Add one batch of predicted and ground-truth class maps of the same shape."""
        pred = torch.as_tensor(prediction).reshape(-1).to(torch.int64).cpu()
        gt = torch.as_tensor(target).reshape(-1).to(torch.int64).cpu()
        if pred.shape != gt.shape:
            raise SmisbenchError(
                f"prediction has {pred.numel()} pixels but the label map has {gt.numel()}",
                "resize predictions or labels to a common size first (the scoring protocol says which)",
            )
        keep = gt != self.ignore_index if self.ignore_index is not None else torch.ones_like(gt, dtype=torch.bool)
        self.ignored += int(keep.numel() - keep.sum())
        pred, gt = pred[keep], gt[keep]
        n = self.num_classes
        _check_ids(gt, n, "label map",
                   "convert labels with the protocol's label convention (e.g. Cityscapes label ids -> train ids)",
                   note=f" (ignore index {self.ignore_index})")
        _check_ids(pred, n, "prediction", "map the segmenter's output to the dataset's classes before scoring")
        self.matrix += torch.bincount(gt * n + pred, minlength=n * n).reshape(n, n)

    def merge(self, other: "ConfusionMatrix") -> "ConfusionMatrix":
        """Add another matrix (another shard or process) into this one and return self."""
        if other.num_classes != self.num_classes or other.ignore_index != self.ignore_index:
            raise SmisbenchError(
                f"cannot merge a {other.num_classes}-class matrix (ignore {other.ignore_index}) into a "
                f"{self.num_classes}-class one (ignore {self.ignore_index})",
                "merge only matrices computed with the same scoring protocol",
            )
        self.matrix += other.matrix
        self.ignored += other.ignored
        return self

    def __add__(self, other: "ConfusionMatrix") -> "ConfusionMatrix":
        return ConfusionMatrix(self.num_classes, self.ignore_index, self.matrix.clone(), self.ignored).merge(other)

    def all_reduce(self) -> "ConfusionMatrix":
        """Sum the matrix over all processes of an initialised ``torch.distributed`` group (no-op otherwise)."""
        from smisbench.metrics.sharding import all_reduce_sum_

        # the don't-care count travels as one more entry of the same tensor: one reduction
        both = torch.cat([self.matrix.reshape(-1), torch.tensor([self.ignored], dtype=self.matrix.dtype)])
        both = all_reduce_sum_(both)
        self.matrix = both[:-1].reshape(self.num_classes, self.num_classes).clone()
        self.ignored = int(both[-1])
        return self

    # ------------------------------------------------------------------ scores
    @property
    def total(self) -> int:
        return int(self.matrix.sum())

    def per_class_iou(self) -> np.ndarray:
        """IoU of every class; NaN where the class is in neither prediction nor ground truth."""
        m = self.matrix.double()
        tp = torch.diagonal(m)
        union = m.sum(0) + m.sum(1) - tp
        iou = torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, math.nan))
        return iou.numpy()

    def per_class_accuracy(self) -> np.ndarray:
        """Recall per class (correct / ground-truth pixels); NaN where the class never occurs in ground truth."""
        m = self.matrix.double()
        gt = m.sum(1)
        acc = torch.where(gt > 0, torch.diagonal(m) / gt.clamp(min=1), torch.full_like(gt, math.nan))
        return acc.numpy()

    def mean_iou(self, rule: AbsentClassRule = "nanmean") -> float:
        """mIoU. ``nanmean``: mean over classes present in prediction or ground truth.
        ``sceneparsing``: mean over all classes, an absent class counting 0 (the ADE20K challenge's rule)."""
        iou = self.per_class_iou()
        if rule == "nanmean":
            present = ~np.isnan(iou)
            return float(iou[present].mean()) if present.any() else math.nan
        if rule == "sceneparsing":
            return float(np.nan_to_num(iou, nan=0.0).mean())
        raise SmisbenchError(f"unknown absent-class rule {rule!r}", f"use one of: {', '.join(ABSENT_CLASS_RULES)}")

    def pixel_accuracy(self, dont_care: DontCare = "ignored") -> float:
        """Correct pixels over the scored pixels (``ignored``) or over all pixels, don't-care ones included
        and never right (``counted``)."""
        if dont_care not in DONT_CARE_RULES:
            raise SmisbenchError(f"unknown don't-care rule {dont_care!r}", f"use one of: {', '.join(DONT_CARE_RULES)}")
        total = self.total + (self.ignored if dont_care == "counted" else 0)
        return float(torch.diagonal(self.matrix).sum()) / total if total else math.nan

    def mean_class_accuracy(self) -> float:
        acc = self.per_class_accuracy()
        present = ~np.isnan(acc)
        return float(acc[present].mean()) if present.any() else math.nan

    def per_class_table(self, class_names: Sequence[str] | None = None):
        """A pandas DataFrame: class id, name, IoU, accuracy, ground-truth and predicted pixel counts."""
        import pandas as pd

        names = list(class_names) if class_names else [str(i) for i in range(self.num_classes)]
        if len(names) != self.num_classes:
            raise SmisbenchError(
                f"{len(names)} class names for a {self.num_classes}-class matrix",
                "pass the segmenter's class list",
            )
        m = self.matrix
        return pd.DataFrame(
            {
                "class_id": np.arange(self.num_classes),
                "name": names,
                "iou": self.per_class_iou(),
                "accuracy": self.per_class_accuracy(),
                "gt_pixels": m.sum(1).numpy(),
                "pred_pixels": m.sum(0).numpy(),
            }
        )

    def summary(self, rule: AbsentClassRule = "nanmean", dont_care: DontCare = "ignored") -> dict[str, float | int | str]:
        return {
            "mIoU": self.mean_iou(rule),
            "pixel_accuracy": self.pixel_accuracy(dont_care),
            "mean_class_accuracy": self.mean_class_accuracy(),
            "absent_class_rule": rule,
            "dont_care": dont_care,
            "scored_pixels": self.total,
            "dont_care_pixels": self.ignored,
            "num_classes": self.num_classes,
        }

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict:
        return {"num_classes": self.num_classes, "ignore_index": self.ignore_index, "matrix": self.matrix.tolist(),
                "ignored_pixels": self.ignored}

    @classmethod
    def from_dict(cls, data: dict) -> "ConfusionMatrix":
        """A stored matrix (one written before the don't-care count was kept reads as 0 of them)."""
        return cls(int(data["num_classes"]), data["ignore_index"], torch.tensor(data["matrix"], dtype=torch.int64),
                   int(data.get("ignored_pixels", 0)))


def _check_ids(ids: torch.Tensor, n: int, what: str, fix: str, note: str = "") -> None:
    """Refuse class ids outside 0..n-1, naming up to ten of them."""
    bad = (ids < 0) | (ids >= n)
    if bool(bad.any()):
        values = torch.unique(ids[bad])[:10].tolist()
        raise SmisbenchError(f"{what} holds class ids {values} outside 0..{n - 1}{note}", fix)
