"""The interface every metric offers to the evaluation pass, and the context the metrics of one evaluation share.

A metric is a small object fed from one shared pass over the dataset; the factory registered
under its name (``smisbench.metrics.registry.register_metric``) gets the :class:`EvalContext`
and returns a :class:`Metric`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch.utils.data import Dataset

from smisbench.datasets_config import DatasetConfig
from smisbench.metrics.protocol import EvalProtocol


@dataclass
class EvalContext:
    """What every metric of one evaluation shares: inputs, settings, lazily loaded networks, notes."""

    model: Any
    dataset: Dataset
    dataset_config: DatasetConfig
    protocol: EvalProtocol
    device: torch.device
    discriminator: torch.nn.Module | None = None
    weights_dir: str | os.PathLike | None = None
    stats_cache_dir: str | os.PathLike | None = None  # None: the machine's cache (smisbench.metrics.fid)
    segmenter_cache_dir: str | os.PathLike | None = None  # None: the machine's cache (smisbench.segmenters.metric)
    notes: list[str] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    shared: dict[str, Any] = field(default_factory=dict)
    defined: Any = None  # the model as defined when ``model`` is its inference copy (``fast_path``)

    @property
    def as_defined(self) -> Any:
        """The model as built or loaded (parameter counts, FPS "as defined"); ``model`` is what generates."""
        return self.model if self.defined is None else self.defined

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def lpips(self):
        """The LPIPS network of the protocol, loaded from the store once per evaluation (or passed in)."""
        if "lpips" not in self.shared:
            from smisbench.metrics.lpips_metric import LPIPSMetric

            self.shared["lpips"] = LPIPSMetric.load(self.protocol.lpips_net, self.weights_dir, self.device)
        metric = self.shared["lpips"]
        if metric.net != self.protocol.lpips_net:
            from smisbench.errors import SmisbenchError

            raise SmisbenchError(f"the LPIPS network passed in is {metric.net!r}, the protocol asks for "
                                 f"{self.protocol.lpips_net!r}", "pass the matching network or change protocol.lpips_net")
        self.provenance.setdefault("weights", {}).update(
            {k: v for k, v in metric.provenance.items() if k.startswith("lpips-")})
        return metric


class Metric:
    """One metric's share of an evaluation. Override what it needs.

    ``uses_generated``: it needs the images generated in the shared pass (one random code per
    label map); ``items_needed``: how many dataset items it wants (None = all, 0 = none);
    ``uses_generator``: it runs the generator at all (False: nothing to check a fast path on);
    ``redraws_classes``: it may generate redraws of one class's code on a label map (mCSD/mOCD, locality;
    a metric that does not say is assumed to), so the fast-path check also compares the inference copy on
    such a pair; the metrics that draw only whole codes set it False and skip that cost.

    Sharded evaluation (``smisbench.metrics.sharding``): ``sharded`` says the metric joins its
    ranks' shares in :meth:`finish` (a metric without it is refused under torchrun rather than
    give one rank's share as the whole); it sees the batches its rank owns, or with
    ``shards_items`` every batch holding an item of its first ``items_needed``, to score the items
    ``sharding.owns(index)`` gives it.

    ``produces``: the value keys :meth:`finish` stores and ``description`` one line for listings;
    :func:`~smisbench.metrics.registry.register_metric` reads both (they can also be passed there).
    """

    name = ""
    produces: tuple[str, ...] = ()
    description = ""
    uses_generated = False
    uses_generator = True
    redraws_classes = True
    sharded = False
    shards_items = False

    def items_needed(self, ctx: EvalContext) -> int | None:
        return 0

    def on_batch(self, ctx: EvalContext, batch: dict[str, Any], start: int, generated: torch.Tensor | None) -> None:
        """Called for each batch of dataset items; ``start`` is the dataset index of its first item."""

    def finish(self, ctx: EvalContext) -> dict[str, float]:
        return {}


MetricFactory = Callable[[EvalContext], Metric]
