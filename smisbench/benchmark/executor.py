"""The real cell executor: build (or load, or train) the model, build the dataset, score it, draw a grid.

``identify_cell`` materialises the model first and returns the digest of its weights and the
hash of its code, so the runner keys each cell by what it evaluates before looking it up.

Interfaces it relies on (imported lazily, so the harness itself needs none of them):

* ``smisbench.data.build_dataset(name, root, split, **options)`` -> dataset of
  ``{"label", "image"[, "instance"], "name"}`` items;
* ``smisbench.models.registry.build_model(name, dataset, **overrides)`` / ``model_config``;
* ``smisbench.models.loader.load_model`` (the one loader: smisbench bundles, official
  ``latest_net_{G,E}.pth`` files and release folders, config read off the file where needed);
* ``smisbench.metrics.evaluate.evaluate(model, dataset, dataset_config, metrics, protocol, device)``
  with ``smisbench.metrics.protocol.EvalProtocol`` -> ``values``, ``protocol``, ``provenance``
  (its ``weights`` entry: sha256 of the metric networks' files) and ``notes``;
* ``smisbench.training.trainer.train(TrainConfig)`` for models with a ``train`` budget in the spec
  (it writes ``model.pt``, a smisbench bundle, when the budget is done).
"""

from __future__ import annotations

import dataclasses
import enum
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smisbench.benchmark.cells import Cell, canonical_json, code_modules, code_sha256, weights_sha256
from smisbench.benchmark.runner import CellOutcome, ExecutionContext, identified_by
from smisbench.errors import SmisbenchError


def jsonable(value: Any) -> Any:
    """A config (dataclass, tuples, enums, paths) as plain JSON data."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _dataset(cell: Cell, ctx: ExecutionContext, split: str) -> Any:
    from smisbench.data.registry import build_dataset

    spec = cell.dataset
    key = ("dataset", spec.name, str(cell.dataset_root), split, canonical_json(spec.options))
    root = None if spec.name == "synthetic" else cell.dataset_root
    return ctx.cached(key, lambda: build_dataset(spec.name, root, split, **spec.options))


@dataclass
class Materialised:
    """A cell's model as built, loaded or trained, with what it is (the cell key's model identity)."""

    model: Any
    info: dict[str, Any]  # provenance: model_config, model_weights, training
    identity: dict[str, str]  # weights_sha256, code_sha256
    notes: list[str]


def _training_folder(cell: Cell, ctx: ExecutionContext) -> Path:
    """The training folder, keyed by everything training depends on, the model's code included."""
    import hashlib

    import torch

    from smisbench.models.registry import build_model

    with torch.device("meta"):  # the classes are enough to hash the code: no weights in memory
        probe = build_model(cell.model.name, cell.dataset.name, **cell.model.config)
    inputs = cell.model_inputs()
    key = hashlib.sha256(canonical_json({
        "model": {"name": inputs["name"], "config": inputs["config"], "train": inputs["train"]},
        "code_sha256": code_sha256(code_modules(probe)), "dataset": cell.dataset.name,
        "options": cell.dataset.options, "seed": cell.weights_seed, "device": cell.device}).encode()).hexdigest()
    return ctx.artifacts_dir / "training" / f"{cell.model.id}-{key[:16]}"


def _train(cell: Cell, ctx: ExecutionContext) -> tuple[Any, dict[str, Any]] | None:
    """Train with the cell's budget (``smisbench train`` under the hood) and load the result.

    A finished training is reused, an interrupted one resumes from its latest checkpoint; a dry
    run trains nothing (None when there is no finished training to identify).
    """
    from smisbench.io import exclusive_lock, sha256_file
    from smisbench.models.loader import load_model
    from smisbench.runtime import pick_device
    from smisbench.training import trainer
    from smisbench.training.config import TrainConfig

    train = cell.model.train
    out = _training_folder(cell, ctx)
    bundle = out / "model.pt"  # written atomically at the very end of a finished training
    trained = "reused"
    if not bundle.is_file():
        if ctx.dry_run:
            return None
        from smisbench.metrics.sharding import world

        if not world().is_main:  # under torchrun rank 0 trains (while keying the cell) before the others start it
            raise SmisbenchError(f"rank {world().rank} cannot find the model rank 0 trained: {bundle}",
                                 "put the store's artifact folder on a file system every node reads")
        fields = {f.name for f in dataclasses.fields(TrainConfig)}
        unknown = sorted(set(train.options) - fields)
        if unknown:
            raise SmisbenchError(f"model {cell.model.id!r}: unknown training option {unknown[0]!r}",
                                 f"train.options may set: {', '.join(sorted(fields))}")
        # one process trains a folder, others sharing the store wait and then reuse (or resume) it
        with exclusive_lock(out / "train.lock"):
            if not bundle.is_file():
                config = TrainConfig(**{
                    **train.options,
                    "model": cell.model.name, "dataset": cell.dataset.name,
                    "root": None if cell.dataset.name == "synthetic" else str(cell.dataset_root), "out": str(out),
                    "dataset_options": dict(cell.dataset.options), "model_overrides": dict(cell.model.config),
                    "batch_size": train.batch_size, "steps": train.steps, "device": str(pick_device(cell.device)),
                    "seed": cell.weights_seed, "resume": (out / "checkpoints" / "latest.pt").is_file(),
                })
                trainer.train(config)
                trained = "now"
        if not bundle.is_file():
            raise SmisbenchError(f"training of {cell.model.id!r} ended without {bundle}",
                                 "run the same command again to resume the training")
    loaded = load_model(bundle, cell.model.name, cell.dataset.name, overrides=cell.model.config)
    run_json = out / "run.json"
    return loaded, {"checkpoint": str(bundle), "checkpoint_sha256": sha256_file(bundle), "trained": trained,
                    "train_log": json.loads(run_json.read_text()) if run_json.is_file() else None,
                    "model_weights": loaded.provenance()}


def _build(cell: Cell, ctx: ExecutionContext) -> Materialised | None:
    import torch

    from smisbench.models.loader import load_model
    from smisbench.models.registry import build_model, model_config

    torch.manual_seed(cell.weights_seed)  # not the evaluation seed: every seed's cell scores one model
    info: dict[str, Any] = {}
    notes: list[str] = []
    if cell.checkpoint_path is not None:
        if cell.checkpoint_sha256 is None:
            raise SmisbenchError(f"checkpoint {cell.checkpoint_path} of model {cell.model.id!r} does not exist",
                                 "download or train it, or pass --checkpoint-root where the files are")
        loaded = load_model(cell.checkpoint_path, cell.model.name, cell.dataset.name, overrides=cell.model.config)
        model, config, notes = loaded.model, loaded.config, loaded.notes
        info["model_weights"] = loaded.provenance()
    elif cell.model.train is not None:
        trained = _train(cell, ctx)
        if trained is None:
            return None
        loaded, info = trained
        model, config = loaded.model, loaded.config
    else:
        model = build_model(cell.model.name, cell.dataset.name, **cell.model.config)
        config = model_config(cell.model.name, cell.dataset.name, **cell.model.config)
        info["model_weights"] = "random initialisation (no checkpoint, no training)"
    modules = code_modules(model)
    identity = {"weights_sha256": weights_sha256(model), "code_sha256": code_sha256(modules)}
    info["model_config"] = jsonable(config)
    info["model_identity"] = {**identity, "code_modules": modules}
    return Materialised(model, info, identity, notes)


def materialise(cell: Cell, ctx: ExecutionContext) -> Materialised | None:
    """The cell's model, built once per context (identify and execute share it), on the CPU in float32."""
    key = ("model", canonical_json(cell.model_inputs()), cell.dataset.name, cell.weights_seed, cell.device)
    if ctx.dry_run:  # nothing kept, nothing trained
        return _build(cell, ctx)
    return ctx.cached(key, lambda: _build(cell, ctx))


def identify_cell(cell: Cell, ctx: ExecutionContext) -> dict[str, str] | None:
    """What the cell evaluates: the digest of its model's weights and the hash of the model's code."""
    found = materialise(cell, ctx)
    return None if found is None else dict(found.identity)


def _model(cell: Cell, ctx: ExecutionContext, device: Any, dtype: Any) -> Materialised:
    found = materialise(cell, ctx)
    if found is None:
        raise SmisbenchError(f"model {cell.model.id!r} is not trained yet", "run the spec without --dry-run")
    if cell.model_identity is not None and cell.model_identity != found.identity:
        raise SmisbenchError(f"the weights or code of {cell.model.id!r} changed while the run was keying it",
                             "run the same command again")
    found.model.to(device=device, dtype=dtype).eval()
    return found


def eval_protocol(cell: Cell, device: Any) -> Any:
    """The evaluator's protocol record from the cell: spec fields by name, plus seed, dtype, device, data identity."""
    from smisbench.metrics.protocol import EvalProtocol

    names = {f.name for f in dataclasses.fields(EvalProtocol)}
    settings = {key: value for key, value in cell.protocol.items() if key in names}
    if cell.dataset.name == "synthetic":  # generated, not read: its identity is its options
        root = "synthetic:" + canonical_json(cell.dataset.options)
    else:
        root = str(cell.dataset_root)
    return EvalProtocol(**settings, seed=cell.seed, dtype=cell.dtype, device=str(device), dataset_root=root,
                        split=cell.dataset.split)


@identified_by(identify_cell)
def execute_cell(cell: Cell, ctx: ExecutionContext) -> CellOutcome:
    """Score one cell with every metric it lists that this installation has; store a SMIS grid beside the numbers."""
    import torch

    from smisbench.benchmark.grids import save_grid, smis_grid
    from smisbench.datasets_config import get_dataset_config
    from smisbench.metrics.evaluate import evaluate
    from smisbench.metrics.registry import metric_names
    from smisbench.models.base import CodesKind
    from smisbench.provenance import device_description
    from smisbench.runtime import pick_device, pick_dtype

    device, dtype = pick_device(cell.device), pick_dtype(cell.dtype)
    dataset = _dataset(cell, ctx, cell.dataset.split)
    config = getattr(dataset, "config", None) or get_dataset_config(cell.dataset.name)
    materialised = _model(cell, ctx, device, dtype)
    model, info = materialised.model, materialised.info

    available = set(metric_names())
    metrics = [m for m in cell.metrics if m in available]
    notes = list(materialised.notes) + [f"metric {m!r} is not available in this installation (not computed, "
                                        "shown as missing)" for m in cell.metrics if m not in available]
    values: dict[str, float] = {}
    protocol: dict[str, Any] = {**cell.protocol}
    provenance: dict[str, Any] = {}
    if metrics:
        torch.manual_seed(cell.seed)
        # FID statistics and trained segmenters live in the machine's cache, shared by every store
        result = evaluate(model, dataset, config, metrics, eval_protocol(cell, device), device)
        values = {k: float(v) for k, v in result.values.items()}
        protocol.update(result.protocol)
        provenance.update(result.provenance)
        notes += list(result.notes)

    from smisbench.metrics.sharding import world

    artifacts = []
    rows = int(cell.protocol.get("grid_rows", 4))
    if rows > 0 and model.codes_kind != CodesKind.NONE and world().is_main:  # rank 0 alone writes
        item = dataset[int(cell.protocol.get("grid_label_index", 0))]
        grid = smis_grid(model, item, config, rows, cell.seed)
        path = ctx.artifacts_dir / "grids" / f"{cell.key[:20]}.npz"
        save_grid(grid, path)
        artifacts.append(ctx.artifact("smis_grid", path, {"model": cell.model.label, "dataset": cell.dataset.label,
                                                          "rows": rows}))

    provenance.update({key: value for key, value in info.items() if key != "model_config"})
    provenance.update({"threads": torch.get_num_threads(), "dtype": cell.dtype,
                       "device_name": device_description(device)})
    return CellOutcome(
        values=values,
        protocol=jsonable(protocol),
        provenance=jsonable(provenance),
        notes=notes,
        artifacts=artifacts,
        model_config=info.get("model_config"),
        weights_sha256=jsonable(provenance.get("weights", {})),  # the metric networks' files (LPIPS, Inception)
    )
