"""One entry point: a chosen set of metrics for a model and a dataset, in one pass over the dataset."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from smisbench.datasets_config import DatasetConfig
from smisbench.metrics.base import EvalContext, Metric
from smisbench.metrics.protocol import EvalProtocol
from smisbench.metrics.registry import get_metric
from smisbench.metrics.smis_diversity import derive_seed
from smisbench.progress import progress_bar


@dataclass
class EvaluationResult:
    """Metric values (keys as in the benchmark's metrics.toml), the protocol they were measured under,
    where they came from (versions, device, weights sha256), notes, and per-metric details."""

    values: dict[str, float]
    protocol: dict[str, Any]
    provenance: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _codes(model, indices: Iterable[int], seed: int, device: torch.device) -> torch.Tensor | None:
    """One code per dataset item from its own seed, so results do not depend on the batch size."""
    codes = [model.sample_z(1, torch.Generator().manual_seed(derive_seed(seed, "sample", i)), device) for i in indices]
    return None if codes[0] is None else torch.cat(codes)


def _items_to_visit(ctx: EvalContext, metrics: list[Metric]) -> tuple[int, int]:
    """(items for all metrics, items that need generated images)."""
    total = len(ctx.dataset)

    def most(wanted: list[int | None]) -> int:
        if any(w is None for w in wanted):
            return total
        return min(total, max(wanted, default=0))

    return most([m.items_needed(ctx) for m in metrics]), most([m.items_needed(ctx) for m in metrics if m.uses_generated])


def _shared_pass(ctx: EvalContext, metrics: list[Metric], progress: bool) -> None:
    visit, generate_upto = _items_to_visit(ctx, metrics)
    if visit == 0:
        return
    model, p = ctx.model, ctx.protocol
    loader = DataLoader(Subset(ctx.dataset, range(visit)), batch_size=p.batch_size, shuffle=False, num_workers=0)
    start = 0
    with progress_bar(total=visit, desc="evaluate", unit="map", enabled=progress) as bar:
        for batch in loader:
            size = len(batch["label"])
            generated = None
            if start < generate_upto:
                with torch.inference_mode():
                    instance = batch.get("instance")
                    semantics = model.semantics(batch["label"], instance)
                    z = _codes(model, range(start, start + size), p.seed, ctx.device)
                    generated = model.generate(semantics, z).float()
            for metric in metrics:
                metric.on_batch(ctx, batch, start, generated if metric.uses_generated else None)
            start += size
            bar.update(size)


def evaluate(
    model,
    dataset: Dataset,
    dataset_config: DatasetConfig,
    metrics: list[str],
    protocol: EvalProtocol | None = None,
    device: torch.device | str | None = None,
    *,
    discriminator: torch.nn.Module | None = None,
    weights_dir: str | os.PathLike | None = None,
    stats_cache_dir: str | os.PathLike | None = None,
    segmenter_cache_dir: str | os.PathLike | None = None,
    networks: dict[str, Any] | None = None,
    progress: bool = True,
) -> EvaluationResult:
    """Compute ``metrics`` (names from the metric registry) for ``model`` on ``dataset``.

    ``model`` is an :class:`SMISModel` or a plain ``nn.Module`` keeping the model contract
    (``smisbench.models.contract``: ``codes``, ``code_shape``, ``forward(onehot, codes)``), which
    is wrapped for ``dataset_config`` here.

    The dataset yields {"label": LongTensor(H, W), "image": FloatTensor(3, H, W) in [-1, 1],
    optional "instance", "name"}. Each label map is visited once; FID uses one generated image
    per map (codes seeded per item), mCSD/mOCD and LPIPS diversity generate their own sets for
    the first ``protocol.diversity_maps`` maps. ``networks`` passes already loaded metric networks
    ({"lpips": LPIPSMetric, "inception": extractor}) so a harness scoring many models loads them once.
    Real-image FID statistics and suite-trained segmenters are cached once per machine (under
    ``smisbench.paths.cache_root()``, keyed by content), shared by every call and every store;
    ``stats_cache_dir`` / ``segmenter_cache_dir`` move them elsewhere.
    """
    from smisbench.provenance import environment

    protocol = protocol or EvalProtocol()
    device = torch.device(device if device is not None else protocol.device)
    protocol = protocol.replace(device=str(device))
    names = list(dict.fromkeys(metrics))
    factories = [get_metric(name) for name in names]  # unknown names fail before any work
    from smisbench.models.contract import as_model

    model = as_model(model, dataset_config).to(device).eval()
    if discriminator is not None:
        discriminator = discriminator.to(device).eval()
    ctx = EvalContext(model, dataset, dataset_config, protocol, device, discriminator, weights_dir, stats_cache_dir,
                      segmenter_cache_dir)
    ctx.shared.update(networks or {})
    ctx.provenance.update(environment(device))
    ctx.provenance.update({
        "model": getattr(model, "model_name", "") or type(model).__name__,
        "codes_kind": getattr(getattr(model, "codes_kind", None), "value", None),
        "dataset": dataset_config.name, "dataset_items": len(dataset), "metrics": names,
    })
    instances = [factory(ctx) for factory in factories]
    _shared_pass(ctx, instances, progress)
    values: dict[str, float] = {}
    for metric in instances:
        values.update(metric.finish(ctx))
    return EvaluationResult(values, protocol.to_dict(), ctx.provenance, ctx.notes, ctx.details)
