"""Datasets by name: ``build_dataset("cityscapes", root, "train")`` for every reader alike."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from smisbench.errors import SmisbenchError, UnknownNameError

# name -> (module with a ``build(root, split, **options)`` function, one-line description)
READERS: dict[str, tuple[str, str]] = {
    "synthetic": ("smisbench.data.synthetic", "embedded synthetic SMIS shapes with known per-class styles (no files)"),
    "deepfashion": ("smisbench.data.deepfashion", "DeepFashion, SMIS layout: {train,test}/ + cihp_{train,test}_mask/"),
    "cityscapes": ("smisbench.data.cityscapes", "Cityscapes: leftImg8bit/ + gtFine/ (labelIds, instanceIds)"),
    "ade20k": ("smisbench.data.ade20k", "ADE20K: ADEChallengeData2016/{images,annotations}/{training,validation}"),
    "custom": ("smisbench.data.custom", "any images/ + labels/ folder pair (options: config= or label_nc=, size=)"),
}


def dataset_names() -> list[str]:
    return list(READERS)


def reader_options(name: str) -> list[str]:
    """The keyword options a reader accepts besides root and split."""
    build = _builder(name)
    return [p for p in inspect.signature(build).parameters if p not in ("root", "split")]


def _builder(name: str):
    if name not in READERS:
        raise UnknownNameError("dataset", name, dataset_names())
    return importlib.import_module(READERS[name][0]).build


def build_dataset(name: str, root: str | Path | None = None, split: str = "train", **options: Any) -> Dataset:
    """A dataset of ``{"label", "image"[, "instance"], "name"}`` items, preprocessed the official way."""
    build = _builder(name)
    known = reader_options(name)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise SmisbenchError(f"dataset {name!r} has no option(s) {unknown}",
                             f"its options are: {', '.join(known) or 'none'}")
    if root is None and name != "synthetic":
        raise SmisbenchError(f"dataset {name!r} needs the folder it is stored in",
                             f"pass --root /path/to/{name} (see `smisbench datasets` for the expected layout)")
    return build(root, split, **options)
