"""Metrics on network features: FID (both Inception resizes), KID, precision/recall, density/coverage, FD-DINOv2, FD-CLIP.

Each reads its feature space from the evaluation's one :class:`~smisbench.metrics.feature_pass.FeaturePass`,
so asking for several of them extracts each space's features once. KID, precision/recall and
density/coverage use the Inception pool features FID uses (``protocol.fid_resize``), not
torch-fidelity's own default for precision/recall (VGG16 fc2 features in torch-fidelity 0.4.0,
which would add a second network and make the numbers incomparable with FID's feature space).
"""

from __future__ import annotations

from typing import Any

import torch

from smisbench.metrics import sharding
from smisbench.metrics.base import EvalContext, Metric
from smisbench.metrics.feature_pass import Space, feature_pass


class _FeatureMetric(Metric):
    """A metric fed from the shared feature pass; subclasses name the space and give their values from the
    gathered features in ``compute(ctx)`` (run on rank 0 under torchrun)."""

    uses_generated = True
    redraws_classes = False  # the shared pass's one code per label map
    needs_real_features = False
    sharded = True  # features gathered in item order, the metric computed on rank 0 (finish)

    def __init__(self, ctx: EvalContext):
        self.features = feature_pass(ctx)
        self.space: Space = self.features.want(ctx, self.space_name(ctx), self.needs_real_features)

    def space_name(self, ctx: EvalContext) -> str:
        return f"inception/{ctx.protocol.fid_resize}"

    def items_needed(self, ctx: EvalContext) -> int | None:
        return self.features.count

    def on_batch(self, ctx: EvalContext, batch: dict[str, Any], start: int, generated: torch.Tensor | None) -> None:
        self.features.feed(ctx, batch, start, generated)

    def finish(self, ctx: EvalContext) -> dict[str, float]:
        """Gather every rank's features, compute on rank 0 (:meth:`compute`, which also writes a cache
        file), and give its values, details and notes to every rank (all of it in one process)."""
        self.features.gather()

        def on_rank0() -> tuple[dict[str, float], dict[str, Any], list[str]]:
            before_details, before_notes = dict(ctx.details), len(ctx.notes)
            values = self.compute(ctx)
            details = {k: v for k, v in ctx.details.items() if k not in before_details or before_details[k] is not v}
            return values, details, ctx.notes[before_notes:]

        values, details, notes = sharding.on_main(on_rank0)
        ctx.details.update(details)
        for note in notes:
            ctx.note(note)
        return values

    def feature_sets(self, ctx: EvalContext) -> tuple[torch.Tensor, torch.Tensor]:
        """(generated, real) features of this metric's space."""
        return self.features.fake_features(self.space), self.features.real_features(ctx, self.space)


class FIDMetric(_FeatureMetric):
    """FID between the first ``fid_samples`` real images and the images generated for their label maps."""

    name = "fid"
    produces = ("fid",)
    description = ("Frechet Inception distance, pool3 features of the TF Inception-v3 graph (resize: protocol "
                   "fid_resize)")
    value_key = "fid"

    def compute(self, ctx: EvalContext) -> dict[str, float]:
        from smisbench.metrics.fid import frechet_distance

        value = frechet_distance(self.features.real_stats(ctx, self.space), self.features.fake_stats(self.space))
        ctx.details[self.value_key] = self.features.details(self.space)
        return {self.value_key: value}


class FIDCleanMetric(FIDMetric):
    """FID with clean-fid's resize whatever ``fid_resize`` says, so a report can show both beside each other."""

    name = "fid_clean"
    produces = ("fid_clean",)
    description = "FID with clean-fid's resize (PIL bicubic to 299 on float values), beside the legacy `fid`"
    value_key = "fid_clean"

    def space_name(self, ctx: EvalContext) -> str:
        return "inception/clean"

    def compute(self, ctx: EvalContext) -> dict[str, float]:
        if ctx.protocol.fid_resize == "clean":
            ctx.note("fid_clean: protocol fid_resize is `clean` already, so fid (if asked) is the same number")
        return super().compute(ctx)


class KIDMetric(_FeatureMetric):
    """KID (torch-fidelity) and its standard deviation over subsets."""

    name = "kid"
    produces = ("kid", "kid_std")
    description = ("kernel Inception distance (torch-fidelity) on FID's features, and its standard deviation "
                   "over subsets")
    needs_real_features = True

    def compute(self, ctx: EvalContext) -> dict[str, float]:
        from smisbench.metrics.feature_distances import kid

        p = ctx.protocol
        out = kid(*self.feature_sets(ctx), p.kid_subsets, p.kid_subset_size, p.kid_seed)
        if out["subset_size"] < p.kid_subset_size:
            ctx.note(f"kid: subsets of {out['subset_size']} images (kid_subset_size {p.kid_subset_size} is more "
                     "than the images there are)")
        ctx.details["kid"] = {**self.features.details(self.space), "subsets": p.kid_subsets,
                              "subset_size": out["subset_size"], "seed": p.kid_seed,
                              "kernel": "polynomial, degree 3, gamma 1/d, coef0 1 (torch-fidelity)"}
        return {"kid": out["kid"], "kid_std": out["kid_std"]}


class PrecisionRecallMetric(_FeatureMetric):
    """Improved precision and recall (torch-fidelity) on the Inception features FID uses."""

    name = "precision_recall"
    produces = ("precision", "recall")
    description = "improved precision and recall (torch-fidelity, k-NN radii) on FID's Inception features"
    needs_real_features = True

    def compute(self, ctx: EvalContext) -> dict[str, float]:
        from smisbench.metrics.feature_distances import precision_recall

        k = ctx.protocol.prc_neighborhood
        out = precision_recall(*self.feature_sets(ctx), k)
        ctx.details["precision_recall"] = {**self.features.details(self.space), "neighborhood": k,
                                           "implementation": "torch_fidelity.metric_prc (radius test <=)"}
        return out


class DensityCoverageMetric(_FeatureMetric):
    """Density and coverage (the ``prdc`` package) on the Inception features FID uses."""

    name = "density_coverage"
    produces = ("density", "coverage")
    description = "density and coverage (the prdc package, k-NN radii) on FID's Inception features"
    needs_real_features = True

    def compute(self, ctx: EvalContext) -> dict[str, float]:
        from smisbench.metrics.feature_distances import density_coverage

        k = ctx.protocol.nearest_k
        out = density_coverage(*self.feature_sets(ctx), k)
        ctx.details["density_coverage"] = {**self.features.details(self.space), "nearest_k": k,
                                           "implementation": "prdc.compute_prdc"}
        return out


class FDDinoV2Metric(FIDMetric):
    """Frechet distance on DINOv2 ViT-L/14 class-token features (official file by path, pinned)."""

    name = "fd_dinov2"
    produces = ("fd_dinov2",)
    description = "Frechet distance on DINOv2 ViT-L/14 class-token features (official file by path, sha256-pinned)"
    value_key = "fd_dinov2"

    def space_name(self, ctx: EvalContext) -> str:
        return "dinov2"


class FDClipMetric(FIDMetric):
    """Frechet distance on CLIP ViT-B/32 image embeddings (official file by path, pinned)."""

    name = "fd_clip"
    produces = ("fd_clip",)
    description = "Frechet distance on CLIP ViT-B/32 image embeddings (official file by path, sha256-pinned)"
    value_key = "fd_clip"

    def space_name(self, ctx: EvalContext) -> str:
        return "clip"


FEATURE_METRICS = (FIDMetric, FIDCleanMetric, KIDMetric, PrecisionRecallMetric, DensityCoverageMetric,
                   FDDinoV2Metric, FDClipMetric)
