"""The built-in metrics of the registry (mCSD/mOCD, LPIPS diversity, parameters, FPS, and the metrics on
network features of :mod:`smisbench.metrics.feature_metrics`: FID, fid_clean, KID, precision/recall,
density/coverage, FD-DINOv2, FD-CLIP).

Their names and the value keys each stores are those of ``benchmark/metrics.toml``, the one list
of metric names (a test keeps the two in step).
"""

from __future__ import annotations

from typing import Any

import torch

from smisbench.metrics import sharding
from smisbench.metrics.base import EvalContext, Metric
from smisbench.metrics.feature_metrics import FEATURE_METRICS, FIDMetric
from smisbench.metrics.registry import register_metric

__all__ = ["FIDMetric", "MCSDMetric", "LPIPSDiversityMetric", "ParamsMetric", "FPSMetric"]


def _limit(wanted: int | None, total: int) -> int:
    return total if wanted is None else min(int(wanted), total)


class _DiversityMetric(Metric):
    """Scores the first ``diversity_maps`` label maps with its own generated sets (``scorer_class``)."""

    scorer_class = ""  # a class of smisbench.metrics.smis_diversity
    sharded = True  # per-map terms gathered and replayed in map order (the scorer's gather())
    shards_items = True  # label map i is scored by rank i % N

    def __init__(self, ctx: EvalContext):
        from smisbench.metrics import smis_diversity

        p = ctx.protocol
        settings = smis_diversity.DiversitySettings(n=p.n, m=p.m, mask_mode=p.mask_mode, seed=p.seed,
                                                    batch_size=p.batch_size)
        self.limit = _limit(p.diversity_maps, len(ctx.dataset))
        self.scorer = getattr(smis_diversity, self.scorer_class)(ctx.model, ctx.lpips(), settings)

    def items_needed(self, ctx: EvalContext) -> int | None:
        return self.limit

    def on_batch(self, ctx: EvalContext, batch: dict[str, Any], start: int, generated: torch.Tensor | None) -> None:
        instance = batch.get("instance")
        for i in range(len(batch["label"])):
            if start + i < self.limit and sharding.owns(start + i):
                self.scorer.add_label_map(batch["label"][i], None if instance is None else instance[i], start + i)


class MCSDMetric(_DiversityMetric):
    name = "mcsd_mocd"
    produces = ("mcsd", "mocd")
    description = "mean class-specific / other-class diversity (LPIPS inside / outside the redrawn class)"
    scorer_class = "SMISDiversity"

    def finish(self, ctx: EvalContext) -> dict[str, float]:
        self.scorer.gather()
        return smis_values(ctx, self.scorer.result())


def smis_values(ctx: EvalContext, result: Any) -> dict[str, float]:
    """The stored mCSD/mOCD values of a result, its notes and details put into ``ctx`` (both routes)."""
    for note in result.notes:
        ctx.note(f"mcsd_mocd: {note}")
    ctx.details["mcsd_mocd"] = {
        "per_class_csd": result.per_class_csd, "per_class_ocd": result.per_class_ocd,
        "label_maps": result.label_maps, "sampling": result.sampling, "mask_mode": result.mask_mode,
        "images_generated": result.images_generated, "generator_calls": result.generator_calls,
    }
    return {"mcsd": result.mcsd, "mocd": result.mocd}


class LPIPSDiversityMetric(_DiversityMetric):
    name = "lpips_diversity"
    produces = ("lpips",)
    description = "LPIPS between pairs of globally resampled outputs for the same label map"
    scorer_class = "LPIPSDiversity"
    redraws_classes = False  # whole codes only

    def finish(self, ctx: EvalContext) -> dict[str, float]:
        self.scorer.gather()
        for note in self.scorer.notes:
            ctx.note(f"lpips_diversity: {note}")
        return {"lpips": self.scorer.result()}


class ParamsMetric(Metric):
    name = "params"
    produces = ("params",)
    description = "parameters of generator + encoder (the paper's convention)"
    uses_generator = False
    sharded = True  # the same count on every rank

    def __init__(self, ctx: EvalContext):
        pass

    def finish(self, ctx: EvalContext) -> dict[str, float]:
        from smisbench.metrics.params import parameter_report

        report = parameter_report(ctx.as_defined, ctx.discriminator)
        ctx.details["params"] = report.to_dict()
        return {"params": float(report.generator)}


class FPSMetric(Metric):
    """``fps``: the model as defined (the paper's FPS); ``fps_fast``: the generator the evaluation ran, its
    inference copy where one was used (else the same measurement). Timed on rank 0 alone when sharded."""

    name = "fps"
    produces = ("fps", "fps_fast")
    description = ("generated images per second (fixed batch and size, median over repeats): the model as "
                   "defined, and the generator the evaluation ran (its inference copy where it has one)")
    sharded = True
    redraws_classes = False  # times whole random codes

    def __init__(self, ctx: EvalContext):
        pass

    def finish(self, ctx: EvalContext) -> dict[str, float]:
        values, details = sharding.on_main(lambda: self._measure(ctx))
        ctx.details["fps"] = details
        return values

    def _measure(self, ctx: EvalContext) -> tuple[dict[str, float], dict[str, Any]]:
        from smisbench.metrics.fps import measure_fps

        p = ctx.protocol
        label = ctx.dataset[0]["label"]

        def measure(model):
            return measure_fps(model, label, p.fps_batch_size, p.fps_warmup, p.fps_repeats, p.dtype, ctx.device,
                               p.seed)

        defined = measure(ctx.as_defined)
        fast = defined if ctx.model is ctx.as_defined else measure(ctx.model)
        path = ctx.provenance.get("generator_path", "as-defined")
        details = {**defined.to_dict(), "as_defined": defined.to_dict(), "fast": fast.to_dict(), "fast_path": path,
                   "ranks": sharding.world().size}
        return {"fps": defined.fps, "fps_fast": fast.fps}, details


for _cls in (*FEATURE_METRICS, MCSDMetric, LPIPSDiversityMetric, ParamsMetric, FPSMetric):
    register_metric(_cls.name, _cls)
