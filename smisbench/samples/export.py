"""``smisbench export-samples``: a model's samples written in the sample-folder layout.

The codes are drawn by :class:`smisbench.metrics.diversity_sets.SetGenerator`, the generator of the
in-memory mCSD/mOCD and LPIPS diversity, with the same seeds, so the folder holds the images the
in-memory route scores (up to PNG rounding). Every set holds all n (or k) samples, so another
scorer may draw other pairs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset
from smisbench.progress import progress_bar

from smisbench.datasets_config import DatasetConfig
from smisbench.errors import SmisbenchError
from smisbench.io import atomic_write_text
from smisbench.metrics.diversity_draws import GLOBAL_SET, DiversitySettings
from smisbench.metrics.diversity_sets import SetGenerator
from smisbench.metrics.lpips_metric import check_image_range
from smisbench.samples import layout
from smisbench.samples.folder import Manifest


def code_classes(generator: SetGenerator, config: DatasetConfig) -> tuple[int, ...]:
    """Classes that get a set where present: those with their own code (per-class), every class (global)."""
    if generator.sampling == "none":
        return ()
    if generator.sampling == "per_class":
        return tuple(range(generator.model.num_code_classes))
    return tuple(range(config.label_nc))


def _refuse_used(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SmisbenchError(f"--out {out} already exists and is not an empty folder",
                             "choose a new folder (an export never mixes its files with other files)")


def _write_set(folder: Path, images: torch.Tensor, source: str) -> None:
    check_image_range(images, f"the images {source} generated")
    for i in range(images.shape[0]):
        layout.write_rgb(folder / layout.sample_name(i, images.shape[0]), images[i])


@torch.inference_mode()
def _export_map(generator: SetGenerator, item: dict, index: int, classes: tuple[int, ...], k: int,
                out: Path) -> None:
    label = item["label"].reshape(item["label"].shape[-2:]).cpu()
    folder = out / layout.map_folder(index)
    layout.write_label(folder / layout.LABEL, label)
    semantics = generator.semantics(label, item.get("instance"))
    name = generator.model.model_name or type(generator.model).__name__
    if generator.sampling == "none":
        image = generator.model.generate(semantics, None).float()
        _write_set(folder / layout.GLOBAL, image.expand(k, *image.shape[1:]), name)
        return
    base = generator.base(index)
    present = set(torch.unique(label).tolist())
    for c in (c for c in classes if c in present):
        codes = generator.codes(base, c, index)
        _write_set(folder / layout.class_folder(c), generator.generate(semantics, codes), name)
    _write_set(folder / layout.GLOBAL, generator.generate(semantics, generator.codes(base, GLOBAL_SET, index, k)), name)


def export_samples(model: Any, dataset: Dataset, config: DatasetConfig, out: str | Path, *, maps: int, n: int,
                   k: int | None = None, seed: int = 0, batch_size: int = 16, split: str = "test",
                   dataset_options: dict[str, Any] | None = None, model_info: dict[str, Any] | None = None,
                   progress: bool = True) -> Manifest:
    """Write the first ``maps`` label maps of ``dataset`` with n samples per class set and k global samples.

    ``k`` defaults to n (1 for a model without codes); the manifest is written last, so a folder
    without one is an interrupted export.
    """
    out = Path(out)
    _refuse_used(out)
    if maps < 1:
        raise SmisbenchError(f"--maps {maps}: nothing to export", "export at least one label map")
    if maps > len(dataset):
        raise SmisbenchError(f"--maps {maps} is more than the {len(dataset)} label maps of the split",
                             f"use --maps {len(dataset)} or less")
    generator = SetGenerator(model.eval(), None, DiversitySettings(n=max(n, 2), m=1, seed=seed, batch_size=batch_size))
    if generator.sampling != "none" and n < 2:
        raise SmisbenchError(f"--n {n}: a class set needs at least 2 samples to draw pairs from",
                             "use --n 2 or more (the paper: 100)")
    k = (1 if generator.sampling == "none" else n) if k is None else k
    if k < 1:
        raise SmisbenchError(f"--k {k}: every map needs at least one global sample", "use --k 1 or more")
    classes = code_classes(generator, config)
    for index in progress_bar(range(maps), desc="export samples", unit="map", enabled=progress):
        _export_map(generator, dataset[index], index, classes, k, out)
    first = out / layout.map_folder(0) / layout.GLOBAL / layout.sample_name(0, k)
    manifest = Manifest(
        dataset=config.name, split=split, codes=generator.sampling, classes=classes, n=n, k=k, seed=seed,
        maps=tuple(range(maps)), model=dict(model_info or {"name": model.model_name or type(model).__name__}),
        image_size=layout.image_size(first), dataset_options=dict(dataset_options or {}),
    )
    atomic_write_text(out / layout.MANIFEST, json.dumps(manifest.to_dict(), indent=1, sort_keys=True) + "\n")
    return manifest
