"""Datasets by name: ``build_dataset("cityscapes", root, "train")`` for every reader alike.

Each reader module registers itself with :func:`register_reader`; the built-in modules are
listed in :data:`smisbench.registry.DATASETS`.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Callable

from torch.utils.data import Dataset

from smisbench.data.base import DatasetReader
from smisbench.errors import SmisbenchError
from smisbench.registry import DATASETS


def register_reader(name: str, build: Callable[..., Dataset], description: str, needs_root: bool = True,
                    replace: bool = False) -> DatasetReader:
    """Add a reader; ``build(root, split, **options)`` gets the dataset folder, the split and its options."""
    return DATASETS.register(name, DatasetReader(name, build, description, needs_root), replace)


def get_reader(name: str) -> DatasetReader:
    return DATASETS.get(name)


def dataset_names() -> list[str]:
    return DATASETS.names()


def reader_options(name: str) -> list[str]:
    """The keyword options a reader accepts besides root and split."""
    return [p for p in inspect.signature(get_reader(name).build).parameters if p not in ("root", "split")]


def build_dataset(name: str, root: str | Path | None = None, split: str = "train", **options: Any) -> Dataset:
    """A dataset of ``{"label", "image"[, "instance"], "name"}`` items, preprocessed the official way."""
    reader = get_reader(name)
    known = reader_options(name)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise SmisbenchError(f"dataset {name!r} has no option(s) {unknown}",
                             f"its options are: {', '.join(known) or 'none'}")
    if root is None and reader.needs_root:
        raise SmisbenchError(f"dataset {name!r} needs the folder it is stored in",
                             f"pass --root /path/to/{name} (see `smisbench datasets` for the expected layout)")
    return reader.build(root, split, **options)
