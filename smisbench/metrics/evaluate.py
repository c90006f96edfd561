"""One entry point: a chosen set of metrics for a model and a dataset, in one pass over the dataset."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from smisbench.datasets_config import DatasetConfig
from smisbench.errors import SmisbenchError
from smisbench.metrics import fast_path, sharding
from smisbench.metrics.base import EvalContext, Metric
from smisbench.metrics.diversity_draws import derive_seed
from smisbench.metrics.protocol import EvalProtocol
from smisbench.metrics.registry import get_metric
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


def _network_input(model, batch: dict[str, Any], start: int, seed: int, device: torch.device):
    """(semantics, codes) of a batch whose first item is dataset item ``start``."""
    semantics = model.semantics(batch["label"], batch.get("instance"))
    return semantics, _codes(model, range(start, start + len(batch["label"])), seed, device)


def _most(wanted: list[int | None], total: int) -> int:
    if any(w is None for w in wanted):
        return total
    return min(total, max(wanted, default=0))


def _items_to_visit(ctx: EvalContext, metrics: list[Metric]) -> tuple[int, int]:
    """(items for all metrics, items that need generated images)."""
    total = len(ctx.dataset)
    return (_most([m.items_needed(ctx) for m in metrics], total),
            _most([m.items_needed(ctx) for m in metrics if m.uses_generated], total))


def _plan(ctx: EvalContext, metrics: list[Metric], visit: int) -> list[tuple[int, int, bool]]:
    """(start, size, owned) of each batch this rank reads: batches cut as one process cuts them; the
    rank's own (``k % N``) and those holding items of its per-item metrics (``shards_items``)."""
    world = sharding.world()
    per_item = _most([m.items_needed(ctx) for m in metrics if m.shards_items], len(ctx.dataset))
    step = ctx.protocol.batch_size
    plan = []
    for k, start in enumerate(range(0, visit, step)):
        size = min(step, visit - start)
        owned = world.owns(k)
        if owned or any(world.owns(i) for i in range(start, min(start + size, per_item))):
            plan.append((start, size, owned))
    return plan


def _shared_pass(ctx: EvalContext, metrics: list[Metric], progress: bool,
                 first: torch.Tensor | None = None) -> None:
    """One pass over the dataset feeding every metric; ``first``: the generated images of batch 0, if made already."""
    visit, generate_upto = _items_to_visit(ctx, metrics)
    plan = _plan(ctx, metrics, visit)
    if not plan:
        return
    model, p = ctx.model, ctx.protocol
    loader = DataLoader(ctx.dataset, batch_sampler=[list(range(start, start + size)) for start, size, _ in plan],
                        num_workers=0)
    show = progress and sharding.is_main()
    with progress_bar(total=sum(size for _, size, _ in plan), desc="evaluate", unit="map", enabled=show) as bar:
        for (start, size, owned), batch in zip(plan, loader):
            generated = None
            if owned and start < generate_upto:
                if start == 0 and first is not None and first.shape[0] == size:
                    generated = first
                else:
                    with torch.inference_mode():
                        generated = model.generate(*_network_input(model, batch, start, p.seed, ctx.device)).float()
            for metric in metrics:
                if owned or metric.shards_items:
                    metric.on_batch(ctx, batch, start, generated if metric.uses_generated else None)
            bar.update(size)


def _choose_generator(ctx: EvalContext, factories: list) -> fast_path.GeneratorChoice:
    """The inference copy or the model as defined (``fast_path``), checked on the dataset's first batch."""
    p = ctx.protocol
    count = min(p.batch_size, len(ctx.dataset))
    inputs = None
    generating = [f for f in factories if getattr(f, "uses_generator", True)]
    if generating and count:
        def inputs(net):  # read only when there is a copy to check
            first = next(iter(DataLoader(Subset(ctx.dataset, range(count)), batch_size=count, num_workers=0)))
            return _network_input(net, first, 0, p.seed, ctx.device)
    redraws = any(getattr(f, "redraws_classes", True) for f in generating)
    return fast_path.choose(ctx.model, p.fast_path, float(p.fast_path_tolerance), inputs, count, redraws)


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
    world = sharding.world()
    unsharded = [n for n, f in zip(names, factories) if world.distributed and not getattr(f, "sharded", False)]
    if unsharded:
        raise SmisbenchError(f"metric {unsharded[0]!r} cannot be split over processes (it does not join the ranks' "
                             f"shares), and this evaluation runs on {world.size} ranks",
                             "run it in one process (without torchrun), or give the metric `sharded = True` "
                             "once its finish() gathers every rank's share (smisbench.metrics.sharding)")
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
        "sharding": world.describe(),
    })
    choice = _choose_generator(ctx, factories)
    ctx.provenance.update(choice.provenance())
    if choice.model is not model:
        ctx.model, ctx.defined = choice.model, model
    elif choice.max_abs_diff is not None or choice.reason.startswith("the inference copy could not"):
        ctx.note(f"fast path not used: {choice.reason}")
    instances = [factory(ctx) for factory in factories]
    _shared_pass(ctx, instances, progress, choice.first_output)
    choice.first_output = None
    values: dict[str, float] = {}
    for metric in instances:
        values.update(metric.finish(ctx))
    return EvaluationResult(values, protocol.to_dict(), ctx.provenance, ctx.notes, ctx.details)
