"""Redraw locality: how much of a class redraw's pixel change falls inside the redrawn class (no LPIPS).

For each of the first ``diversity_maps`` label maps and each class c in it, the images of
mCSD/mOCD's protocol are generated (one base code, n codes with only class c redrawn, m pairs,
all from the same seeds as :mod:`smisbench.metrics.smis_diversity`). For a pair (a, b) the
pixel change is ``d = sum over channels |a - b|`` and the pair's locality is
``sum(d inside c) / sum(d)``; pairs that do not change at all are not counted. Per class the
pairs are averaged, over maps the classes, and the value is the mean over classes (as mCSD).

Why it is a known-truth check: on the synthetic set a redraw of one class's style changes that
class's pixels only, so the data itself scores exactly 1 (``smisbench.zoo.truth``), a model with
real per-class control approaches 1, and a model whose "redraw" changes the whole image scores
about the area of the class (``area`` in the details: the mean of c's area fraction over the
same sets). It uses pixels, not a learned network, so it can confirm or contradict mCSD/mOCD.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from smisbench.metrics.base import EvalContext, Metric
from smisbench.metrics.diversity_draws import DiversitySettings, local_pairs
from smisbench.metrics.diversity_scoring import region_mask
from smisbench.metrics.diversity_sets import SetGenerator
from smisbench.metrics.registry import register_metric

NOTE_STATIC = "locality: no pair changed any pixel (deterministic model or dead codes): not defined"


class RedrawLocality(SetGenerator):
    """Accumulates per-class pixel locality over label maps; :meth:`result` gives the mean over classes."""

    def __init__(self, model: Any, settings: DiversitySettings | None = None):
        super().__init__(model, None, settings or DiversitySettings())
        self._local: dict[int, list[float]] = {}
        self._area: dict[int, list[float]] = {}
        self.label_maps = 0

    def add_label_map(self, label: torch.Tensor, instance: torch.Tensor | None = None,
                      map_index: int | None = None) -> dict[int, float]:
        """Score one (H, W) label map; returns {class: locality} for the classes whose pairs changed."""
        index = self.label_maps if map_index is None else map_index
        self.label_maps += 1
        label = label.reshape(label.shape[-2:]).cpu()
        if self.sampling == "none":
            return {}
        present = torch.unique(label).tolist()
        if self.sampling == "per_class":
            present = [c for c in present if c < self.model.num_code_classes]
        semantics = self.semantics(label, instance)
        base = self.base(index)  # the same base code and sets as mCSD/mOCD
        jobs = [self._job(base, c, index) for c in present]
        scores: dict[int, float] = {}
        for group in self._groups(jobs):
            for job, images in zip(group, self._images_per_job(semantics, group)):
                mask = region_mask(label, job.key, tuple(images.shape[-2:])).to(images.device)[0, 0]
                if float(mask.sum()) == 0:
                    continue
                pairs = local_pairs(job.needed, job.pairs)
                change = (images[pairs[:, 0]] - images[pairs[:, 1]]).abs().sum(1)  # (m, H, W)
                total = change.sum((1, 2))
                moved = total > 0
                if not bool(moved.any()):
                    continue
                inside = (change * mask).sum((1, 2))
                scores[job.key] = float((inside[moved] / total[moved]).mean())
                self._area.setdefault(job.key, []).append(float(mask.mean()))
        for c, value in scores.items():
            self._local.setdefault(c, []).append(value)
        return scores

    def result(self) -> tuple[float, dict[int, float], float]:
        """(locality, per-class locality, area baseline): the baseline is what a whole-image change scores."""
        per_class = {c: sum(v) / len(v) for c, v in sorted(self._local.items())}
        areas = {c: sum(v) / len(v) for c, v in sorted(self._area.items())}
        value = sum(per_class.values()) / len(per_class) if per_class else math.nan
        area = sum(areas.values()) / len(areas) if areas else math.nan
        return value, per_class, area


class LocalityMetric(Metric):
    name = "locality"
    produces = ("locality",)
    description = "redraw locality: share of a class redraw's pixel change (L1) inside the redrawn class (no LPIPS)"

    def __init__(self, ctx: EvalContext):
        p = ctx.protocol
        settings = DiversitySettings(n=p.n, m=p.m, mask_mode=p.mask_mode, seed=p.seed, batch_size=p.batch_size)
        self.limit = len(ctx.dataset) if p.diversity_maps is None else min(p.diversity_maps, len(ctx.dataset))
        self.scorer = RedrawLocality(ctx.model, settings)

    def items_needed(self, ctx: EvalContext) -> int | None:
        return self.limit

    def on_batch(self, ctx: EvalContext, batch: dict[str, Any], start: int, generated: torch.Tensor | None) -> None:
        instance = batch.get("instance")
        for i in range(len(batch["label"])):
            if start + i < self.limit:
                self.scorer.add_label_map(batch["label"][i], None if instance is None else instance[i], start + i)

    def finish(self, ctx: EvalContext) -> dict[str, float]:
        value, per_class, area = self.scorer.result()
        if self.scorer.sampling == "global":
            ctx.note("locality: global resampling (no per-class codes): every redraw changes the whole code")
        if math.isnan(value):
            ctx.note(NOTE_STATIC)
        ctx.details["locality"] = {"per_class": per_class, "area_baseline": area, "sampling": self.scorer.sampling,
                                   "label_maps": self.scorer.label_maps}
        return {"locality": value}


register_metric(LocalityMetric.name, LocalityMetric)
