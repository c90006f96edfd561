"""Metrics by name: each is a small object fed from one shared pass over the dataset.

Another module adds a metric (a segmenter's mIoU, say) with ``register_metric(name, factory)``;
the factory gets the :class:`~smisbench.metrics.base.EvalContext` and returns a
:class:`~smisbench.metrics.base.Metric`. The registration is the one place a metric's name, the
value keys it stores (``produces``) and its description are written: specs, ``score``, resuming
and the reports read them from here (``smisbench.benchmark.catalog``), and ``metrics.toml`` only
says how each stored value is judged and shown. The modules holding built-in metrics are listed
in :data:`smisbench.registry.METRICS`, so this module imports none of them.
"""

from __future__ import annotations

from dataclasses import dataclass

from smisbench.metrics.base import EvalContext, Metric, MetricFactory
from smisbench.registry import METRICS

__all__ = ["EvalContext", "Metric", "MetricFactory", "MetricEntry", "register_metric", "metric_names",
           "get_metric", "metric_entry"]


@dataclass(frozen=True)
class MetricEntry:
    """A registered metric: its factory and what a spec listing it gets stored."""

    name: str
    factory: MetricFactory
    produces: tuple[str, ...]
    description: str


def _first_line(text: str | None) -> str:
    return " ".join((text or "").strip().split("\n\n")[0].split())


def register_metric(name: str, factory: MetricFactory, replace: bool = False, *,
                    produces: tuple[str, ...] | list[str] | None = None,
                    description: str | None = None) -> MetricFactory:
    """Add a metric factory under ``name`` (a taken name raises unless ``replace``).

    ``produces`` defaults to the factory's ``produces`` attribute, else ``(name,)`` (a metric that
    stores one value under its own name); ``description`` to its ``description`` attribute, else the
    first paragraph of its docstring.
    """
    keys = tuple(produces if produces is not None else getattr(factory, "produces", ()) or (name,))
    text = description if description is not None else (getattr(factory, "description", "")
                                                         or _first_line(getattr(factory, "__doc__", "")))
    METRICS.register(name, MetricEntry(name, factory, keys, text), replace)
    return factory


def metric_names() -> list[str]:
    return sorted(METRICS.names())


def metric_entry(name: str) -> MetricEntry:
    return METRICS.get(name)


def registered_entries() -> list[MetricEntry]:
    """Every registered metric in registration order (built-ins first)."""
    return [entry for _, entry in METRICS.items()]


def get_metric(name: str) -> MetricFactory:
    return metric_entry(name).factory
