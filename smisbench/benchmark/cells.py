"""A spec expanded into cells (model x dataset x metric set), each with a content key for resuming.

A cell's key hashes everything that can change its numbers (model, config, checkpoint
content, training budget, dataset and split, metrics, protocol, seed, device, dtype) and
nothing that only changes how it is shown (labels, the data folder's location). A finished
cell with the same key is never recomputed.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from smisbench.benchmark.spec import BenchmarkSpec, CellSpec, DatasetSpec, ModelSpec


def canonical_json(value: Any) -> str:
    """Stable JSON (sorted keys, no spaces) so equal content always hashes equally."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def merge_protocol(*layers: dict[str, Any]) -> dict[str, Any]:
    """Later layers win; ``extra`` tables merge key by key."""
    out: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if key == "extra":
                extra.update(value)
            else:
                out[key] = value
    if extra:
        out["extra"] = extra
    return out


@dataclass(frozen=True)
class RunOptions:
    """Where things are on this machine; none of it is part of a cell's key."""

    data_root: Path = Path(".")
    checkpoint_root: Path = Path(".")
    device: str | None = None  # overrides the spec's device
    artifacts_dir: Path | None = None  # defaults to the store's artifact folder


@dataclass(frozen=True)
class Cell:
    index: int
    spec_name: str
    table: str
    model: ModelSpec
    dataset: DatasetSpec
    metrics: tuple[str, ...]
    protocol: dict[str, Any]
    seed: int
    device: str
    dtype: str
    checkpoint_path: Path | None
    checkpoint_sha256: str | None
    data_root: Path
    key: str = field(default="", compare=False)

    @property
    def title(self) -> str:
        return f"{self.model.label} @ {self.dataset.label}/{self.dataset.split}"

    @property
    def dataset_root(self) -> Path:
        root = Path(self.dataset.root)
        return root if root.is_absolute() else self.data_root / root

    def identity(self) -> dict[str, Any]:
        """The content the key hashes."""
        model = {
            "name": self.model.name,
            "config": self.model.config,
            "checkpoint_sha256": self.checkpoint_sha256,
            # a missing checkpoint is keyed by its path, so providing the file later reruns the cell
            "checkpoint": None if self.checkpoint_sha256 else self.model.checkpoint,
            "train": asdict(self.model.train) if self.model.train else None,
        }
        if self.model.factory:  # a user's model file: an edited file is a new cell
            from smisbench.models.plugins import factory_source_sha256

            model["factory_sha256"] = factory_source_sha256(self.model.factory)
        return {
            "model": model,
            "dataset": {"name": self.dataset.name, "split": self.dataset.split, "options": self.dataset.options},
            "metrics": sorted(self.metrics),
            "protocol": self.protocol,
            "seed": self.seed,
            "device": self.device,
            "dtype": self.dtype,
        }


_HASHES: dict[tuple[str, int, int], str] = {}


def checkpoint_sha256(path: Path) -> str | None:
    """sha256 of a checkpoint file (or of a folder's files in name order); None when absent.

    Cached per (path, size, mtime) so a dry run over many cells hashes each file once.
    """
    from smisbench.io import sha256_file

    if path.is_file():
        stat = path.stat()
        cache_key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        if cache_key not in _HASHES:
            _HASHES[cache_key] = sha256_file(path)
        return _HASHES[cache_key]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        if not files:
            return None
        digest = hashlib.sha256()
        for file in files:
            digest.update(os.fsencode(file.relative_to(path).as_posix()) + b"\0")
            digest.update(bytes.fromhex(checkpoint_sha256(file) or ""))
        return digest.hexdigest()
    return None


def _cell_specs(spec: BenchmarkSpec) -> list[CellSpec]:
    if spec.cells is not None:
        return list(spec.cells)
    return [CellSpec(model=m.id, dataset=d.id) for m in spec.models for d in spec.datasets]


def expand_cells(spec: BenchmarkSpec, options: RunOptions = RunOptions(),
                 hasher: Callable[[Path], str | None] = checkpoint_sha256) -> list[Cell]:
    """Every cell of the spec in run order, each with its key."""
    cells = []
    device = options.device or spec.device
    for index, cell_spec in enumerate(_cell_specs(spec)):
        model, dataset = spec.model(cell_spec.model), spec.dataset(cell_spec.dataset)
        ckpt_path = None
        if model.checkpoint:
            ckpt_path = Path(model.checkpoint)
            if not ckpt_path.is_absolute():
                ckpt_path = options.checkpoint_root / ckpt_path
        cell = Cell(
            index=index,
            spec_name=spec.name,
            table=spec.table,
            model=model,
            dataset=dataset,
            metrics=tuple(cell_spec.metrics or spec.metrics),
            protocol=merge_protocol(spec.protocol, dataset.protocol, model.protocol, cell_spec.protocol),
            seed=spec.seed,
            device=device,
            dtype=spec.dtype,
            checkpoint_path=ckpt_path,
            checkpoint_sha256=hasher(ckpt_path) if ckpt_path else None,
            data_root=options.data_root,
        )
        key = hashlib.sha256(canonical_json(cell.identity()).encode()).hexdigest()
        cells.append(replace(cell, key=key))
    return cells
