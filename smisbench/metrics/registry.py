"""Metrics by name: each is a small object fed from one shared pass over the dataset.

Another module adds a metric (a segmenter's mIoU, say) with ``register_metric(name, factory)``;
the factory gets the :class:`~smisbench.metrics.base.EvalContext` and returns a
:class:`~smisbench.metrics.base.Metric`. The modules holding built-in metrics are listed in
:data:`smisbench.registry.METRICS`, so this module imports none of them.
"""

from __future__ import annotations

from smisbench.metrics.base import EvalContext, Metric, MetricFactory
from smisbench.registry import METRICS

__all__ = ["EvalContext", "Metric", "MetricFactory", "register_metric", "metric_names", "get_metric"]


def register_metric(name: str, factory: MetricFactory, replace: bool = False) -> MetricFactory:
    """Add a metric factory under ``name`` (a taken name raises unless ``replace``)."""
    return METRICS.register(name, factory, replace)


def metric_names() -> list[str]:
    return sorted(METRICS.names())


def get_metric(name: str) -> MetricFactory:
    return METRICS.get(name)
