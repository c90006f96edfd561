"""A spec expanded into cells (model x dataset x metric set), each with a content key for resuming.

A cell's key hashes everything that can change its numbers and nothing that only changes how
it is shown (labels, the data folder's location). Read off the spec alone it covers the model's
name, config, checkpoint file and training budget, the dataset and split, metrics, protocol,
seed (the evaluation seed; the model's seed only where it differs), device and dtype. Once the
model is materialised (built, loaded or trained) the key is *resolved*: the checkpoint file
gives way to what is actually evaluated, the digest of the model's state dict and the hash of
the source of the modules that define its classes (:func:`model_identity`). A finished cell
with the same resolved key is never recomputed; a model whose weights or code changed is.
A spec with ``seeds = K`` gives K cells per model and dataset that differ only in ``seed``
(the codes the metrics draw); the model is the same.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import sys
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
    model_identity: dict[str, str] | None = None  # weights_sha256, code_sha256 of the materialised model
    model_seed: int | None = None  # the seed the model is built or trained with; None: ``seed``
    replicates: int = 1  # how many seeds the spec evaluates this model and dataset with (not in the key)
    key: str = field(default="", compare=False)

    @property
    def weights_seed(self) -> int:
        """The seed of the model's initialisation and training: the spec's ``seed`` for every seed's cell, so
        the K cells of ``seeds = K`` score one and the same model (``seed`` only draws the metrics' codes)."""
        return self.seed if self.model_seed is None else self.model_seed

    @property
    def title(self) -> str:
        where = f"{self.model.label} @ {self.dataset.label}/{self.dataset.split}"
        return f"{where} seed {self.seed}" if self.replicates > 1 else where

    @property
    def dataset_root(self) -> Path:
        root = Path(self.dataset.root)
        return root if root.is_absolute() else self.data_root / root

    def model_inputs(self) -> dict[str, Any]:
        """What the spec says the model is made from (stable before and after resolving)."""
        return {
            "name": self.model.name,
            "config": self.model.config,
            "checkpoint_sha256": self.checkpoint_sha256,
            # a missing checkpoint is keyed by its path, so providing the file later reruns the cell
            "checkpoint": None if self.checkpoint_sha256 else self.model.checkpoint,
            "train": asdict(self.model.train) if self.model.train else None,
        }

    def identity(self) -> dict[str, Any]:
        """The content the key hashes."""
        model = self.model_inputs()
        if self.model_identity is not None:  # what is evaluated, not the file it came from
            model = {"name": model["name"], "config": model["config"], "train": model["train"], **self.model_identity}
        return {
            "model": model,
            "dataset": {"name": self.dataset.name, "split": self.dataset.split, "options": self.dataset.options},
            "metrics": sorted(self.metrics),
            # the preset's name is recorded with the cell, but its fields, not its name, make the key
            "protocol": {k: v for k, v in self.protocol.items() if k != "preset"},
            "seed": self.seed,
            "device": self.device,
            "dtype": self.dtype,
            # only when it differs, so the first of K seeds is keyed as the single-seed cell and reused
            **({"model_seed": self.weights_seed} if self.weights_seed != self.seed else {}),
        }

    def resolved(self, model_identity: dict[str, str]) -> "Cell":
        """This cell keyed by the weights and code of its materialised model."""
        cell = replace(self, model_identity=dict(model_identity))
        return replace(cell, key=cell_key(cell))


def cell_key(cell: Cell) -> str:
    return hashlib.sha256(canonical_json(cell.identity()).encode()).hexdigest()


# ----- what a materialised model is: its weights and the code that defines it -----

def weights_sha256(model: Any) -> str:
    """Digest of the state dict (names, dtypes, shapes, values): equal weights, equal digest, whatever the file."""
    from smisbench.weights import state_dict_digest

    return state_dict_digest(model.state_dict())


def _outside_project(module: str) -> bool:
    """torch and the standard library are identified by their versions (recorded with every run), not hashed."""
    top = module.split(".")[0]
    return top in ("torch", "builtins") or top in sys.stdlib_module_names


def _source_sha256(module_name: str, classes: list[type]) -> str:
    module = sys.modules.get(module_name)
    file = getattr(module, "__file__", None)
    if file and os.path.isfile(file):
        with open(file, "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()
    try:  # a module without a file (defined in a notebook): the classes' own source
        text = "".join(inspect.getsource(cls) for cls in classes)
    except (OSError, TypeError):
        return "source unavailable"
    if not classes:
        return "source unavailable"
    return hashlib.sha256(text.encode()).hexdigest()


def code_modules(model: Any) -> dict[str, str]:
    """sha256 of each module that defines a class of ``model`` or of its submodules (their bases included),
    and of the modules the model names as its ``code_origins`` (the file of the factory that made it).

    Only these modules: an edit elsewhere in the project (a metric, another model) leaves the hash alone.
    """
    classes: dict[str, list[type]] = {}
    for module in model.modules():
        for cls in type(module).__mro__:
            if not _outside_project(cls.__module__) and cls not in classes.setdefault(cls.__module__, []):
                classes[cls.__module__].append(cls)
    for name in getattr(model, "code_origins", ()):
        if not _outside_project(name):
            classes.setdefault(name, [])
    return {name: _source_sha256(name, found) for name, found in sorted(classes.items())}


def code_sha256(modules: dict[str, str]) -> str:
    return hashlib.sha256(canonical_json(modules).encode()).hexdigest()


def model_identity(model: Any) -> dict[str, str]:
    """What a cell's key needs of a materialised model: ``weights_sha256`` and ``code_sha256``."""
    return {"weights_sha256": weights_sha256(model), "code_sha256": code_sha256(code_modules(model))}


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
    seeds = spec.eval_seeds
    for cell_spec in _cell_specs(spec):
        model, dataset = spec.model(cell_spec.model), spec.dataset(cell_spec.dataset)
        ckpt_path = None
        if model.checkpoint:
            ckpt_path = Path(model.checkpoint)
            if not ckpt_path.is_absolute():
                ckpt_path = options.checkpoint_root / ckpt_path
        ckpt_sha256 = hasher(ckpt_path) if ckpt_path else None
        for seed in seeds:  # one cell per evaluation seed, next to each other (the model is built once)
            cell = Cell(
                index=len(cells),
                spec_name=spec.name,
                table=spec.table,
                model=model,
                dataset=dataset,
                metrics=tuple(cell_spec.metrics or spec.metrics),
                protocol=merge_protocol(spec.protocol, dataset.protocol, model.protocol, cell_spec.protocol),
                seed=seed,
                device=device,
                dtype=spec.dtype,
                checkpoint_path=ckpt_path,
                checkpoint_sha256=ckpt_sha256,
                data_root=options.data_root,
                model_seed=spec.seed,
                replicates=len(seeds),
            )
            cells.append(replace(cell, key=cell_key(cell)))
    return cells
