"""Models registered by name; each is built from a typed config dataclass chosen per dataset."""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

from smisbench.errors import SmisbenchError, UnknownNameError
from smisbench.models.base import CodesKind, SMISModel


@dataclass(frozen=True)
class ModelEntry:
    """How to build one model family: ``configs`` maps a dataset name to its default config."""

    name: str
    description: str
    codes_kind: CodesKind
    configs: Callable[[], dict[str, Any]]
    build: Callable[[Any], SMISModel]
    build_discriminator: Callable[[Any], nn.Module] | None = None
    paper: str = ""  # where the model comes from (paper table, citation)
    # drops entries old releases carry that current modules lack (e.g. pix2pixHD's InstanceNorm stats)
    checkpoint_filter: Callable[[dict], tuple[dict, list[str]]] | None = None
    # config overrides read off a G state dict, for families whose releases differ in shape (pix2pixHD)
    config_from_checkpoint: Callable[[dict], dict] | None = None

    def datasets(self) -> list[str]:
        return list(self.configs())


_REGISTRY: dict[str, ModelEntry] = {}

# Modules that register models when imported; kept as data so new families are one line.
MODEL_MODULES = (
    "smisbench.models.groupdnet",
    "smisbench.models.spade",
    "smisbench.models.groupenc_groupdec",
    "smisbench.models.groupnet",
    "smisbench.models.mulnet",
    "smisbench.models.ablations",
    "smisbench.models.pix2pixhd",
    "smisbench.models.bicyclegan",
    "smisbench.models.dscgan",
)


def synthetic_available() -> bool:
    """Whether the embedded synthetic dataset config exists; model families add tiny configs for it then."""
    try:
        import smisbench.data.synthetic  # noqa: F401  (registers the "synthetic" dataset config)
    except ModuleNotFoundError as error:
        if error.name != "smisbench.data.synthetic":
            raise
    from smisbench.datasets_config import DATASETS

    return "synthetic" in DATASETS


def register(entry: ModelEntry) -> ModelEntry:
    if entry.name in _REGISTRY:
        raise ValueError(f"model {entry.name!r} registered twice")
    _REGISTRY[entry.name] = entry
    return entry


def _load_all() -> None:
    for module in MODEL_MODULES:
        importlib.import_module(module)
    from smisbench.models.plugins import register_entry_points

    register_entry_points(register, _REGISTRY)  # installed plugins (group smisbench.models), read once


def model_names() -> list[str]:
    _load_all()
    return list(_REGISTRY)


def get_entry(name: str) -> ModelEntry:
    _load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        from smisbench.models.plugins import missing_entry

        found = missing_entry(name)  # a factory reference (pkg.mod:build, file.py:build); a broken plugin raises
        if found is None:
            raise UnknownNameError("model", name, list(_REGISTRY)) from None
        return found


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
