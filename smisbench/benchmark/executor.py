"""The real cell executor: build (or load, or train) the model, build the dataset, score it, draw a grid.

Interfaces it relies on (imported lazily, so the harness itself needs none of them):

* ``smisbench.data.build_dataset(name, root, split, **options)`` -> dataset of
  ``{"label", "image"[, "instance"], "name"}`` items;
* ``smisbench.models.registry.build_model(name, dataset, **overrides)`` / ``model_config``;
* ``smisbench.models.checkpoints`` (smisbench bundles, official ``latest_net_{G,E}.pth`` folders);
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
from pathlib import Path
from typing import Any

from smisbench.benchmark.cells import Cell, canonical_json
from smisbench.benchmark.runner import CellOutcome, ExecutionContext
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


def _load_checkpoint(model: Any, path: Path, entry: Any) -> dict[str, Any]:
    """Weights into ``model`` strictly: a smisbench bundle, a latest_net_G.pth file, or a release folder."""
    import torch

    from smisbench.models.checkpoints import OFFICIAL_FILES, load_into

    if path.is_file():
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(payload, dict) and payload.get("format") == "smisbench-model/1":
            model.load_state_dict(payload["state_dict"], strict=True)
            return {"format": "smisbench bundle", "files": {"bundle": str(path)}}
        files = {"G": path}
    else:
        files = {part: path / name for part, name in OFFICIAL_FILES.items()
                 if part != "D" and (path / name).is_file()}
    if "G" not in files:
        raise SmisbenchError(f"no generator weights at {path}",
                             "point `checkpoint` at a smisbench bundle, a latest_net_G.pth, or a release folder")
    loaded = {}
    for part, file in files.items():
        network = model.netG if part == "G" else model.netE
        if network is None:
            continue
        report = load_into(network, file, getattr(entry, "checkpoint_filter", None))
        loaded[part] = {"file": str(file), "sha256": report.sha256}
    return {"format": "official parts", "files": loaded}


def _train(model: Any, cell: Cell, ctx: ExecutionContext, device: Any) -> dict[str, Any]:
    """Train with the cell's budget (``smisbench train`` under the hood) and load the result into ``model``.

    The training folder sits under the artifact folder, keyed by everything training depends on:
    a finished training is reused, an interrupted one resumes from its latest checkpoint.
    """
    import hashlib

    from smisbench.io import sha256_file
    from smisbench.training import trainer
    from smisbench.training.config import TrainConfig

    train = cell.model.train
    key = hashlib.sha256(canonical_json({"model": cell.identity()["model"], "dataset": cell.dataset.name,
                                         "options": cell.dataset.options, "seed": cell.seed,
                                         "device": cell.device}).encode()).hexdigest()
    out = ctx.artifacts_dir / "training" / f"{cell.model.id}-{key[:16]}"
    bundle = out / "model.pt"  # written atomically at the very end of a finished training
    trained = "reused"
    if not bundle.is_file():
        fields = {f.name for f in dataclasses.fields(TrainConfig)}
        unknown = sorted(set(train.options) - fields)
        if unknown:
            raise SmisbenchError(f"model {cell.model.id!r}: unknown training option {unknown[0]!r}",
                                 f"train.options may set: {', '.join(sorted(fields))}")
        config = TrainConfig(**{
            **train.options,
            "model": cell.model.name, "dataset": cell.dataset.name,
            "root": None if cell.dataset.name == "synthetic" else str(cell.dataset_root), "out": str(out),
            "dataset_options": dict(cell.dataset.options), "model_overrides": dict(cell.model.config),
            "batch_size": train.batch_size, "steps": train.steps, "device": str(device), "seed": cell.seed,
            "resume": (out / "checkpoints" / "latest.pt").is_file(),
        })
        trainer.train(config)
        trained = "now"
        if not bundle.is_file():
            raise SmisbenchError(f"training of {cell.model.id!r} ended without {bundle}",
                                 "run the same command again to resume the training")
    import torch

    payload = torch.load(bundle, map_location="cpu", weights_only=True)
    model.load_state_dict(payload["state_dict"], strict=True)
    run_json = out / "run.json"
    return {"checkpoint": str(bundle), "checkpoint_sha256": sha256_file(bundle), "trained": trained,
            "train_log": json.loads(run_json.read_text()) if run_json.is_file() else None}


def _model(cell: Cell, ctx: ExecutionContext, device: Any, dtype: Any) -> tuple[Any, dict[str, Any]]:
    from smisbench.models.registry import build_model, get_entry, model_config

    def build() -> tuple[Any, dict[str, Any]]:
        import torch

        torch.manual_seed(cell.seed)
        model = build_model(cell.model.name, cell.dataset.name, **cell.model.config)
        info: dict[str, Any] = {
            "model_config": jsonable(model_config(cell.model.name, cell.dataset.name, **cell.model.config)),
        }
        if cell.checkpoint_path is not None:
            if cell.checkpoint_sha256 is None:
                raise SmisbenchError(f"checkpoint {cell.checkpoint_path} of model {cell.model.id!r} does not exist",
                                     "download or train it, or pass --checkpoint-root where the files are")
            info["model_weights"] = _load_checkpoint(model, cell.checkpoint_path, get_entry(cell.model.name))
        elif cell.model.train is not None:
            info.update(_train(model, cell, ctx, device))
        else:
            info["model_weights"] = "random initialisation (no checkpoint, no training)"
        return model, info

    key = ("model", canonical_json(cell.identity()["model"]), cell.dataset.name, cell.seed, cell.device)
    model, info = ctx.cached(key, build)
    model.to(device=device, dtype=dtype).eval()
    return model, info


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
    model, info = _model(cell, ctx, device, dtype)

    available = set(metric_names())
    metrics = [m for m in cell.metrics if m in available]
    notes = [f"metric {m!r} is not available in this installation (not computed, shown as missing)"
             for m in cell.metrics if m not in available]
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

    artifacts = []
    rows = int(cell.protocol.get("grid_rows", 4))
    if rows > 0 and model.codes_kind != CodesKind.NONE:
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
