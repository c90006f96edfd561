"""Models registered by name; each is built from a typed config dataclass chosen per dataset.

A model family's module registers a :class:`~smisbench.models.base.ModelEntry` with
:func:`register`; the built-in modules are listed in :data:`smisbench.registry.MODELS`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from torch import nn

from smisbench.datasets_config import dataset_config_names
from smisbench.errors import SmisbenchError
from smisbench.models.base import ModelEntry, SMISModel
from smisbench.registry import MODELS

__all__ = ["ModelEntry", "register", "synthetic_available", "model_names", "get_entry", "model_config",
           "build_model", "build_discriminator"]


def synthetic_available() -> bool:
    """Whether the synthetic dataset config exists (a declared built-in, so always); families add tiny configs for it."""
    return "synthetic" in dataset_config_names()


def register(entry: ModelEntry, replace: bool = False) -> ModelEntry:
    """Add a model family under ``entry.name`` (a taken name raises unless ``replace``)."""
    return MODELS.register(entry.name, entry, replace)


def model_names() -> list[str]:
    return MODELS.names()


def get_entry(name: str) -> ModelEntry:
    return MODELS.get(name)


def model_config(name: str, dataset: str, **overrides: Any) -> Any:
    """The typed config of ``name`` for ``dataset`` with field overrides applied (unknown fields refused)."""
    entry = get_entry(name)
    configs = entry.configs()
    if dataset not in configs:
        raise SmisbenchError(
            f"model {name!r} has no configuration for dataset {dataset!r}",
            f"choose one of: {', '.join(configs)}",
        )
    config = configs[dataset]
    if overrides:
        known = {f.name for f in dataclasses.fields(config)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise SmisbenchError(
                f"unknown config fields for {name}: {unknown}", f"known fields: {', '.join(sorted(known))}"
            )
        config = dataclasses.replace(config, **overrides)
    return config


def build_model(name: str, dataset: str, **overrides: Any) -> SMISModel:
    """Build generator (+ encoder) of a registered model for a dataset configuration."""
    entry = get_entry(name)
    model = entry.build(model_config(name, dataset, **overrides))
    model.model_name = name
    return model


def build_discriminator(name: str, dataset: str, **overrides: Any) -> nn.Module:
    entry = get_entry(name)
    if entry.build_discriminator is None:
        raise SmisbenchError(f"model {name!r} has no discriminator", "train it with its own code or load a checkpoint")
    return entry.build_discriminator(model_config(name, dataset, **overrides))
