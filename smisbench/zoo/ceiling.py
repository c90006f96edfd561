"""The real-data rows: the synthetic set's own images scored by the same metric code as the models.

* mIoU / accuracy: the segmenter on the real test images (the ceiling a generator can reach): the
  ``miou`` metric's own pass, fed the real images where it is usually fed generated ones;
* FID: the first ``fid_samples`` real test images against the next ``fid_samples`` (two disjoint
  halves of the same count; the floor): the ``fid`` metric's pass, fed the second half as "generated";
* mCSD, mOCD, LPIPS diversity, redraw locality: the metrics run on :class:`SyntheticTruth`, the data's
  generative process as a model, so each class redraw is the real image re-rendered with that class's
  style redrawn (exactly as the dataset draws styles).

FPS and parameters have no meaning for data and are not reported.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Subset

from smisbench.errors import SmisbenchError
from smisbench.io import atomic_write_text

ROW_LABEL = "real images"
TRUTH_METRICS = ("mcsd_mocd", "lpips_diversity", "locality")


@dataclass
class RealRows:
    """Values (stored units, keys as metrics.toml) of the real-data row, with how each was measured."""

    values: dict[str, float]
    provenance: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"values": self.values, "provenance": self.provenance, "notes": self.notes}


def _context(dataset: Any, protocol: Any, device: str, stats_dir: str | Path | None) -> Any:
    from smisbench.metrics.base import EvalContext

    return EvalContext(None, dataset, dataset.config, protocol, torch.device(device), stats_cache_dir=stats_dir)


def _batches(dataset: Any, start: int, count: int, batch_size: int):
    return DataLoader(Subset(dataset, range(start, start + count)), batch_size=batch_size, shuffle=False)


def real_segmentation(dataset: Any, protocol: Any, device: str = "cpu",
                      stats_dir: str | Path | None = None) -> tuple[dict[str, float], dict[str, Any]]:
    """mIoU and accuracy of the protocol's segmenter on the real images (the ``miou`` metric's own code)."""
    from smisbench.segmenters.metric import SegmentationMetric

    ctx = _context(dataset, protocol, device, stats_dir)
    metric = SegmentationMetric(ctx)
    count = len(dataset) if protocol.segmentation_samples is None else min(protocol.segmentation_samples, len(dataset))
    start = 0
    with torch.inference_mode():
        for batch in _batches(dataset, 0, count, protocol.batch_size):
            metric.on_batch(ctx, batch, start, batch["image"])
            start += len(batch["label"])
    values = metric.finish(ctx)
    return values, {"segmenter": ctx.provenance.get("segmenter"), "images": count, "notes": list(ctx.notes)}


def real_fid(dataset: Any, protocol: Any, device: str = "cpu", stats_dir: str | Path | None = None,
             networks: dict[str, Any] | None = None) -> tuple[float, dict[str, Any]]:
    """FID between real images [0, N) and [N, 2N), N = ``fid_samples`` (the ``fid`` metric's own code)."""
    from smisbench.metrics.builtin import FIDMetric

    count = protocol.fid_samples or len(dataset) // 2
    if 2 * count > len(dataset):
        raise SmisbenchError(f"the real FID floor needs 2 x {count} images, the split has {len(dataset)}",
                             f"use fid_samples <= {len(dataset) // 2}")
    ctx = _context(dataset, protocol, device, stats_dir)
    ctx.shared.update(networks or {})
    metric = FIDMetric(ctx)
    second = _batches(dataset, count, count, protocol.batch_size)
    start = 0
    for batch, other in zip(_batches(dataset, 0, count, protocol.batch_size), second):
        metric.on_batch(ctx, batch, start, other["image"])
        start += len(batch["label"])
    value = metric.finish(ctx)["fid"]
    return value, {"first_half": [0, count], "second_half": [count, 2 * count], "details": ctx.details.get("fid")}


def truth_diversity(dataset: Any, protocol: Any, device: str = "cpu",
                    networks: dict[str, Any] | None = None) -> tuple[dict[str, float], dict[str, Any]]:
    """mCSD, mOCD, LPIPS diversity and locality of the data itself (:class:`SyntheticTruth`)."""
    from smisbench.metrics.evaluate import evaluate
    from smisbench.zoo.truth import SyntheticTruth

    result = evaluate(SyntheticTruth(dataset.config), dataset, dataset.config, list(TRUTH_METRICS), protocol, device,
                      networks=networks, progress=False)
    return dict(result.values), {"model": "synthetic-truth (the dataset's renderer, codes = styles)",
                                 "details": result.details, "notes": result.notes}


def real_rows(dataset: Any, protocol: Any, device: str = "cpu", stats_dir: str | Path | None = None,
              with_segmentation: bool = True) -> RealRows:
    """The whole real-data row for a synthetic dataset split."""
    rows = RealRows({})
    if with_segmentation and protocol.segmenter:
        seg, rows.provenance["segmentation"] = real_segmentation(dataset, protocol, device, stats_dir)
        rows.values.update(seg)
    rows.values["fid"], rows.provenance["fid"] = real_fid(dataset, protocol, device, stats_dir)
    truth, rows.provenance["diversity"] = truth_diversity(dataset, protocol, device)
    rows.values.update(truth)
    rows.notes.append("real images: mIoU/accuracy of the segmenter on the real test images; FID between two "
                      "disjoint halves of the real test images of fid_samples each; mCSD/mOCD/LPIPS/locality of "
                      "the data re-rendered with one class's style redrawn (the dataset's own renderer)")
    return rows


def cached_real_rows(path: str | Path, key_data: dict[str, Any], compute) -> RealRows:
    """``compute()`` once per ``key_data`` (protocol, data, segmenter file): reused from ``path`` otherwise."""
    path = Path(path)
    key = hashlib.sha256(json.dumps(key_data, sort_keys=True, default=str).encode()).hexdigest()
    if path.is_file():
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            saved = {}
        if saved.get("key") == key:
            return RealRows(saved["values"], saved.get("provenance", {}), saved.get("notes", []))
    rows = compute()
    atomic_write_text(path, json.dumps({"key": key, "key_data": key_data, **rows.to_dict()}, indent=1,
                                       default=str) + "\n")
    return rows
