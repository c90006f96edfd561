"""The built-in metrics of the registry (FID, mCSD/mOCD, LPIPS diversity, parameters, FPS).

Their names and the value keys each stores are those of ``benchmark/metrics.toml``, the one list
of metric names (a test keeps the two in step).
"""

from __future__ import annotations

from typing import Any

import torch

from smisbench.metrics import sharding
from smisbench.metrics.base import EvalContext, Metric
from smisbench.metrics.registry import register_metric


def _limit(wanted: int | None, total: int) -> int:
    return total if wanted is None else min(int(wanted), total)


class FIDMetric(Metric):
    """FID between the first ``fid_samples`` real images and the images generated for their label maps."""

    name = "fid"
    uses_generated = True
    sharded = True  # features gathered in item order, FID computed on rank 0

    def __init__(self, ctx: EvalContext):
        from smisbench.metrics.fid import FeatureBank, load_inception

        p = ctx.protocol
        total = len(ctx.dataset)
        self.count = _limit(p.fid_samples, total)
        if p.fid_samples is not None and p.fid_samples > total:
            ctx.note(f"fid: {p.fid_samples} samples asked, the dataset has {total}; FID uses {total}")
        if "inception" not in ctx.shared:
            ctx.shared["inception"] = load_inception(ctx.weights_dir, ctx.device, p.fid_dtype)
        self.extractor = ctx.shared["inception"]
        self.weights_sha256 = getattr(self.extractor, "weights_sha256", "unknown")
        ctx.provenance.setdefault("weights", {})["fid-inception"] = self.weights_sha256
        self.real, self.fake = FeatureBank(self.count), FeatureBank(self.count)
        self.key = None
        self.cached = None
        self.seen = False  # this rank's first batch (batch 0 in one process) keys the real statistics

    def items_needed(self, ctx: EvalContext) -> int | None:
        return self.count

    def _make_key(self, ctx: EvalContext, real_size: tuple[int, int]):
        from smisbench.metrics.fid import real_stats_key

        key = real_stats_key(ctx.dataset, ctx.dataset_config.name, ctx.protocol, real_size, self.weights_sha256,
                             self.count)
        if key is None:
            ctx.note("fid: real statistics not cached (the dataset names no root/split; set protocol.dataset_root "
                     "and protocol.split to cache them)")
        elif not key.reader:
            ctx.note("fid: the dataset does not describe its preprocessing (no image_identity()); the real "
                     "statistics are cached under its root and split only")
        return key

    def on_batch(self, ctx: EvalContext, batch: dict[str, Any], start: int, generated: torch.Tensor | None) -> None:
        from smisbench.metrics.fid import extract_features, load_cached_stats, resize_images, to_uint8

        take = min(len(batch["label"]), self.count - start)
        if take <= 0 or generated is None:
            return
        p = ctx.protocol
        real, fake = batch["image"][:take].float(), generated[:take].float()
        size = tuple(p.image_size) if p.image_size else tuple(real.shape[-2:])
        if not self.seen:
            self.seen = True
            self.key = self._make_key(ctx, tuple(real.shape[-2:]))
            if self.key is not None and p.stats_cache:
                self.cached = load_cached_stats(self.key, ctx.stats_cache_dir)
        if self.cached is None:
            real_u8 = to_uint8(resize_images(real, size, p.resize_filter))
            self.real.add(extract_features(self.extractor, real_u8, p.batch_size), start)
        fake_u8 = to_uint8(resize_images(fake, size, p.resize_filter))
        self.fake.add(extract_features(self.extractor, fake_u8, p.batch_size), start)

    def finish(self, ctx: EvalContext) -> dict[str, float]:
        self.real.gather()
        self.fake.gather()
        values, details = sharding.on_main(lambda: self._finish(ctx))  # rank 0 holds batch 0, so the cache key
        ctx.details["fid"] = details
        return values

    def _finish(self, ctx: EvalContext) -> tuple[dict[str, float], dict[str, Any]]:
        from smisbench.errors import SmisbenchError
        from smisbench.imaging import UINT8_RULE
        from smisbench.metrics.fid import frechet_distance, save_cached_stats, statistics

        real = self.cached
        if real is None and self.real.count != self.fake.count:  # another rank found the cache rank 0 missed
            raise SmisbenchError("the FID statistics of the real images were cached by another process during "
                                 "this evaluation", "run the same command again (it uses the cached statistics)")
        if real is None:
            real = statistics(self.real.tensor())
            if self.key is not None and ctx.protocol.stats_cache:
                save_cached_stats(self.key, real, ctx.stats_cache_dir)
        value = frechet_distance(real, statistics(self.fake.tensor()))
        details = {
            "samples": self.fake.count, "real_stats_cached": self.cached is not None,
            "stats_key": None if self.key is None else self.key.to_dict(),
            "inception_resize": "torch-fidelity TF1-compatible bilinear to 299x299",
            "format": f"uint8 in memory ({UINT8_RULE}), as a PNG would store it",
        }
        return {"fid": value}, details


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
    scorer_class = "SMISDiversity"

    def finish(self, ctx: EvalContext) -> dict[str, float]:
        self.scorer.gather()
        result = self.scorer.result()
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
    scorer_class = "LPIPSDiversity"

    def finish(self, ctx: EvalContext) -> dict[str, float]:
        self.scorer.gather()
        for note in self.scorer.notes:
            ctx.note(f"lpips_diversity: {note}")
        return {"lpips": self.scorer.result()}


class ParamsMetric(Metric):
    name = "params"
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
    sharded = True

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


for _cls in (FIDMetric, MCSDMetric, LPIPSDiversityMetric, ParamsMetric, FPSMetric):
    register_metric(_cls.name, _cls)
