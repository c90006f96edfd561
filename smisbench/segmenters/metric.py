"""mIoU and pixel accuracy of generated images as evaluation metrics (``miou``, ``accuracy``).

Both names share one segmentation pass and one dataset-level confusion matrix per evaluation: the
segmenter runs on each generated image (saved-PNG precision: uint8), its prediction meets the
label map under the scoring protocol, and the matrix gives both numbers.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch

from smisbench.errors import SmisbenchError
from smisbench.imaging import to_uint8
from smisbench.metrics.base import EvalContext, Metric
from smisbench.metrics.registry import register_metric
from smisbench.paths import cache_root
from smisbench.segmenters.confusion import ConfusionMatrix
from smisbench.segmenters.label_conventions import get_label_convention
from smisbench.segmenters.protocol import default_protocol_for, get_protocol
from smisbench.segmenters.score_folder import score_pair

_KEY = "segmentation"


def segmenter_cache_dir(override: str | os.PathLike | None = None) -> Path:
    """Where suite-trained segmenters are kept: the machine's cache, shared by every store and evaluation.

    The file name carries what the training depends on (steps, seed, size), so one file serves them all.
    """
    return Path(override).expanduser() if override else cache_root() / "segmenters"


def _segmenter(ctx: EvalContext):
    """Load (or, for the synthetic stand-in, train once) the protocol's segmenter."""
    from smisbench.segmenters.registry import get_spec, load_segmenter

    p = ctx.protocol
    if not p.segmenter:
        raise SmisbenchError("mIoU/accuracy need a segmenter, and protocol.segmenter is empty",
                             "set protocol segmenter (see `smisbench segmenters`) and its checkpoint files")
    checkpoints = list(p.segmenter_checkpoints or ())
    pins: dict[str, str] = {}
    if not checkpoints and p.segmenter == "synthetic-fcn":
        from smisbench.segmenters.synthetic_fcn import trained_checkpoint

        info = trained_checkpoint(segmenter_cache_dir(ctx.segmenter_cache_dir), p.segmenter_train_steps, seed=p.seed, size=ctx.dataset_config.height,
                                  progress=False)
        checkpoints, pins = [info["file"]], {"model": info["sha256"]}
        ctx.note(f"synthetic-fcn segmenter trained by the suite ({p.segmenter_train_steps} steps, seed {p.seed})")
    if not checkpoints:
        raise SmisbenchError(f"segmenter {p.segmenter!r} needs its checkpoint file(s)",
                             "set protocol segmenter_checkpoints (files are verified by sha256)")
    spec = get_spec(p.segmenter)
    scoring = get_protocol(p.scoring_protocol) if p.scoring_protocol else default_protocol_for(p.segmenter)
    scoring = scoring.with_overrides(dont_care=p.dont_care)  # None: the scoring protocol's own
    segmenter = load_segmenter(p.segmenter, checkpoints, device=str(ctx.device), expected_sha256=pins,
                               multi_scale=scoring.multi_scale, **dict(scoring.segmenter_options))
    convention = get_label_convention(spec.label_convention)
    return {
        "segmenter": segmenter, "protocol": scoring, "convention": convention, "seen": set(),
        "confusion": ConfusionMatrix(len(spec.classes), scoring.ignore_index),
    }


class SegmentationMetric(Metric):
    uses_generated = True
    redraws_classes = False  # the shared pass's one code per label map
    sharded = True  # one confusion matrix summed over the ranks

    def __init__(self, ctx: EvalContext):
        from smisbench.metrics.sharding import main_first

        if _KEY not in ctx.shared:  # rank 0 first: it trains (and caches) the synthetic segmenter once
            ctx.shared[_KEY] = main_first(lambda: _segmenter(ctx))

    def items_needed(self, ctx: EvalContext) -> int | None:
        return ctx.protocol.segmentation_samples

    def on_batch(self, ctx: EvalContext, batch: dict[str, Any], start: int, generated: torch.Tensor | None) -> None:
        state = ctx.shared[_KEY]
        if generated is None or start in state["seen"]:  # the other name already scored this batch
            return
        state["seen"].add(start)
        limit = ctx.protocol.segmentation_samples
        images = to_uint8(generated).cpu()
        names = batch.get("name")  # a collated list; absent for datasets without file names
        if isinstance(names, str):
            names = [names]
        for i in range(images.shape[0]):
            if limit is not None and start + i >= limit:
                break
            source = str(names[i]) if names is not None and i < len(names) else f"item {start + i}"
            label = state["convention"].convert(batch["label"][i], source=source)
            score_pair(state["segmenter"], images[i], label, state["protocol"], state["confusion"])

    def finish(self, ctx: EvalContext) -> dict[str, float]:
        state = ctx.shared[_KEY]
        if not state.get("reduced"):  # once for both names (miou, accuracy)
            state["confusion"].all_reduce()
            state["reduced"] = True
        summary = state["confusion"].summary(state["protocol"].absent_class_rule, state["protocol"].dont_care)
        ctx.provenance["segmenter"] = state["segmenter"].describe()
        ctx.provenance["scoring_protocol"] = state["protocol"].to_dict()
        classes = list(state["segmenter"].classes)
        ctx.details["segmentation_per_class"] = state["confusion"].per_class_table(classes).to_dict("records")
        # the one matrix itself, so reports print per-class IoU from it (smisbench.reports.tables.per_class_iou_markdown)
        ctx.details["segmentation_confusion"] = {**state["confusion"].to_dict(), "classes": classes,
                                                 "absent_class_rule": state["protocol"].absent_class_rule,
                                                 "dont_care": state["protocol"].dont_care}
        miou, accuracy = summary["mIoU"], summary["pixel_accuracy"]
        return {"miou": float("nan") if miou is None else float(miou),
                "accuracy": float("nan") if accuracy is None or (isinstance(accuracy, float) and math.isnan(accuracy)) else float(accuracy)}


register_metric("miou", SegmentationMetric, produces=("miou",),
                description="mean IoU of a segmenter run on the generated images (one confusion matrix per dataset)")
register_metric("accuracy", SegmentationMetric, produces=("accuracy",),
                description="pixel accuracy of a segmenter run on the generated images")
