"""Benchmark specs: TOML files that say which models, datasets, metrics and protocol a benchmark runs.

Parsed with ``tomllib`` into frozen dataclasses. Every mistake raises :class:`SpecError` naming
the key with its path (``cells[2].metrics``), so a typo never silently changes what is measured.
The table reader is :mod:`~smisbench.benchmark.spec_reader`, the ``[[claims]]`` are parsed by
:mod:`~smisbench.benchmark.spec_claims` and the evaluation seeds by :mod:`~smisbench.benchmark.spec_seeds`;
their public names are re-exported here.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smisbench.benchmark.catalog import catalog
from smisbench.benchmark.spec_claims import REAL_ROW, ClaimCondition, ClaimSpec, parse_claim
from smisbench.benchmark.spec_reader import SpecError, TableReader
from smisbench.benchmark.spec_seeds import parse_seeds_option, seed_list, with_seeds
from smisbench.errors import SmisbenchError, choose_from
from smisbench.metrics.protocol import ProtocolField, protocol_field, protocol_fields
from smisbench.packaged import packaged_file, packaged_text

__all__ = [  # the spec's public names, the re-exported ones included (importers use this module)
    "EXECUTOR_FIELDS", "PROTOCOL_FIELDS", "REAL_ROW", "BenchmarkSpec", "CellSpec", "ClaimCondition", "ClaimSpec",
    "DatasetSpec", "ModelSpec", "SpecError", "TrainSpec", "load_spec", "parse_seeds_option", "parse_spec",
    "seed_list", "shipped_specs", "with_seeds",
]

# Protocol fields a spec may set (at top level, per dataset, per model or per cell): the evaluator's
# own (smisbench.metrics.protocol defines each once: type, default, allowed values, meaning; seed,
# dtype, device, dataset root and split come from the spec itself), plus the executor's grid fields.
# Anything else goes under `protocol.extra`, kept with the cell (and in its key) untouched.
EXECUTOR_FIELDS: dict[str, ProtocolField] = {f.name: f for f in (
    ProtocolField("grid_rows", int, 4, "samples (rows) in the stored SMIS grid; 0: no grid", minimum=0),
    ProtocolField("grid_label_index", int, 0, "which label map of the split the SMIS grid uses", minimum=0),
)}
PROTOCOL_FIELDS: dict[str, ProtocolField] = {**{f.name: f for f in protocol_fields() if f.spec}, **EXECUTOR_FIELDS}


@dataclass(frozen=True)
class TrainSpec:
    """A training budget: the model is trained on the dataset before it is scored (the demo)."""

    steps: int
    batch_size: int = 4
    options: dict[str, Any] = field(default_factory=dict)  # more `smisbench train` options (TrainConfig fields)


@dataclass(frozen=True)
class ModelSpec:
    id: str  # unique within the spec; what cells and claims refer to
    name: str  # registry name for build_model (a factory's reference for `factory = ...` models)
    label: str  # row label in reports (the paper's row name where there is one)
    config: dict[str, Any] = field(default_factory=dict)  # model config overrides
    checkpoint: str | None = None
    train: TrainSpec | None = None
    protocol: dict[str, Any] = field(default_factory=dict)
    factory: str | None = None  # "pkg.mod:build" or "file.py:build" (smisbench.models.plugins), instead of a name


@dataclass(frozen=True)
class DatasetSpec:
    id: str  # unique within the spec; paper table columns name it (deepfashion:fid)
    name: str  # dataset name for build_dataset
    label: str
    root: str  # relative paths are under the run's data root
    split: str = "test"
    options: dict[str, Any] = field(default_factory=dict)
    protocol: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CellSpec:
    model: str
    dataset: str
    metrics: tuple[str, ...] | None = None
    protocol: dict[str, Any] = field(default_factory=dict)



@dataclass(frozen=True)
class BenchmarkSpec:
    name: str
    description: str
    table: str  # the report table the results belong to (table1, table2, ablations, demo)
    seed: int
    device: str
    dtype: str
    metrics: tuple[str, ...]
    protocol: dict[str, Any]
    models: tuple[ModelSpec, ...]
    datasets: tuple[DatasetSpec, ...]
    cells: tuple[CellSpec, ...] | None
    claims: tuple[ClaimSpec, ...]
    source: str
    text: str
    seeds: tuple[int, ...] = ()  # evaluation seeds (`seeds = K` or a list); empty: the one `seed`

    @property
    def eval_seeds(self) -> tuple[int, ...]:
        """The seeds each cell is evaluated with: one cell per seed, the model (built or trained with
        ``seed``) the same in all of them; only the codes drawn for the metrics differ."""
        return self.seeds or (self.seed,)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    def model(self, model_id: str) -> ModelSpec:
        return next(m for m in self.models if m.id == model_id)

    def dataset(self, dataset_id: str) -> DatasetSpec:
        return next(d for d in self.datasets if d.id == dataset_id)


TOP_KEYS = ("name", "description", "table", "seed", "seeds", "device", "dtype", "preset", "metrics", "protocol",
            "models", "datasets", "cells", "claims")
MODEL_KEYS = ("id", "name", "factory", "label", "config", "checkpoint", "train", "protocol")
DATASET_KEYS = ("id", "name", "label", "root", "split", "options", "protocol")
CELL_KEYS = ("model", "dataset", "metrics", "protocol")
TRAIN_KEYS = ("steps", "batch_size", "options")


def _protocol(reader: TableReader, name: str = "protocol", defaults: bool = False,
              under: dict[str, Any] | None = None) -> dict[str, Any]:
    """A validated protocol table; ``extra`` holds evaluator-specific fields passed through.

    ``defaults`` (the top level): every field not written gets its default, so the cells, their
    keys and the stored results name each setting (a changed default then reruns a cell).
    ``under``: a preset's fields, taken where the table does not write the field itself. Only the
    top level names a preset (its ``preset`` key was resolved by :func:`_preset`).
    """
    raw = reader.get(name, (dict,), "a table", default={})
    sub = TableReader(raw, reader.key(name), reader.source)
    if "preset" in raw and not defaults:
        raise sub.error("preset", "can only be set for the whole spec",
                        "write `preset = ...` at the top level or under the top [protocol]")
    under = under or {}
    out: dict[str, Any] = {}
    for field_name, spec_field in PROTOCOL_FIELDS.items():
        if field_name == "preset":  # the reference was resolved; the record holds the preset's name
            sub.read.add(field_name)
            if "preset" in under or defaults:
                out[field_name] = under.get("preset")
            continue
        if field_name not in raw:
            if field_name in under:
                value = under[field_name]
                out[field_name] = list(value) if spec_field.sequence is not None and value is not None else value
            elif defaults:
                out[field_name] = spec_field.default
            continue
        sub.read.add(field_name)
        value = raw[field_name]
        problem = spec_field.problem(value)
        if problem is not None:
            raise sub.error(field_name, problem, spec_field.hint())
        out[field_name] = list(value) if spec_field.sequence is not None else value
    extra = sub.table("extra")
    clash = sorted(set(extra) & set(PROTOCOL_FIELDS))
    if clash:
        raise SpecError(reader.source, f"{sub.key('extra')}.{clash[0]}", "is a protocol field",
                        f"set it as `{clash[0]}` directly under [{sub.path}]")
    sub.finish()
    if extra:
        out["extra"] = extra
    return out


def _metrics(reader: TableReader, name: str, required: bool) -> tuple[str, ...] | None:
    metrics = reader.strings(name, required=required)
    if metrics is None:
        return None
    if not metrics:
        raise reader.error(name, "must list at least one metric")
    known = catalog().metrics
    for i, metric in enumerate(metrics):
        if metric not in known:
            raise SpecError(reader.source, f"{reader.key(name)}[{i}]", f"unknown metric {metric!r}",
                            choose_from(metric, known))
    if len(set(metrics)) != len(metrics):
        raise reader.error(name, "lists a metric twice")
    return metrics



def _unique_ids(readers: list[TableReader], ids: list[str], what: str) -> None:
    seen: dict[str, int] = {}
    for reader, ident in zip(readers, ids):
        if ident in seen:
            raise reader.error("id", f"{what} id {ident!r} is used twice",
                               f"give one of them another `id = ...` (the other is {readers[seen[ident]].path})")
        seen[ident] = len(seen)


def _train(reader: TableReader) -> TrainSpec | None:
    if "train" not in reader.data:
        reader.read.add("train")
        return None
    sub = TableReader(reader.get("train", (dict,), "a table"), reader.key("train"), reader.source).only(TRAIN_KEYS)
    spec = TrainSpec(
        steps=sub.integer("steps", minimum=1, required=True),
        batch_size=sub.integer("batch_size", minimum=1, default=4),
        options=sub.table("options"),
    )
    sub.finish()
    return spec


def _named(reader: TableReader, keys: tuple[str, ...], name: str | None = None) -> dict[str, Any]:
    """The keys a model and a dataset share: ``name``, ``id`` (default: the name), ``label`` (default: the id)."""
    reader.only(keys)
    name = reader.text("name", required=True) if name is None else name
    ident = reader.text("id", default=name)
    return {"id": ident, "name": name, "label": reader.text("label", default=ident)}


def _factory(reader: TableReader) -> str | None:
    """A model's ``factory`` reference (it then stands where the registry name would), checked for its form."""
    reader.only(MODEL_KEYS)
    factory = reader.text("factory")
    if factory is not None and "name" in reader.data:
        raise reader.error("factory", "is given together with `name`", "keep one: a registered name or a factory")
    if factory is not None and ":" not in factory:
        raise reader.error("factory", f"{factory!r} is not MODULE:FACTORY or FILE.py:FACTORY",
                           'write e.g. factory = "mypkg.models:build"')
    if factory is None and ":" in str(reader.data.get("name", "")):
        raise reader.error("name", f"{reader.data['name']!r} is a factory reference",
                           f'write factory = "{reader.data["name"]}"')
    return factory


def _model(reader: TableReader) -> ModelSpec:
    factory = _factory(reader)
    spec = ModelSpec(**_named(reader, MODEL_KEYS, factory), config=reader.table("config"),
                     checkpoint=reader.text("checkpoint"), train=_train(reader), protocol=_protocol(reader),
                     factory=factory)
    reader.finish()
    return spec


def _preset(top: TableReader) -> Any:
    """The preset a spec names (``preset`` at the top or under [protocol]; a relative .toml beside the spec), or None."""
    from smisbench.metrics.presets import get_preset

    inner = top.data["protocol"].get("preset") if isinstance(top.data.get("protocol"), dict) else None
    outer = top.text("preset")
    if outer is not None and inner is not None:
        raise top.error("preset", "is set both here and under [protocol]", "keep one of the two")
    key, ref = ("preset", outer) if outer is not None else ("protocol.preset", inner)
    if ref is None:
        return None
    try:
        if not isinstance(ref, str):
            raise SmisbenchError(f"must be a preset name or .toml file, not {ref!r}", 'e.g. preset = "groupdnet2020"')
        return get_preset(ref, relative_to=Path(top.source).parent if Path(top.source).is_file() else None)
    except SmisbenchError as err:
        raise SpecError(top.source, key, err.problem, err.fix) from None


def _dataset(reader: TableReader, under: dict[str, Any] | None = None) -> DatasetSpec:
    named = _named(reader, DATASET_KEYS)
    spec = DatasetSpec(**named, root=reader.text("root", default=named["name"]),
                       split=reader.text("split", default="test"), options=reader.table("options"),
                       protocol=_protocol(reader, under=under))
    reader.finish()
    return spec



def parse_spec(text: str, source: str = "<spec>") -> BenchmarkSpec:
    """Parse and validate a spec's TOML text."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise SpecError(source, "", f"is not valid TOML: {err}",
                        "fix the syntax at the line and column named") from None
    top = TableReader(data, "", source).only(TOP_KEYS)
    name = top.text("name", required=True)
    description = top.text("description", default="")
    table = top.text("table", default=name)
    preset = _preset(top)
    preset_fields = preset.fields() if preset else {}
    seed = top.integer("seed", minimum=protocol_field("seed").minimum,
                       default=preset_fields.get("seed", protocol_field("seed").default))
    device = top.text("device", default=protocol_field("device").default)
    dtype = top.text("dtype", default=preset_fields.get("dtype", protocol_field("dtype").default),
                     choices=protocol_field("dtype").choices)
    top.read.add("seeds")
    try:
        seeds = seed_list(top.data["seeds"], seed) if "seeds" in top.data else ()
    except ValueError as err:
        raise top.error("seeds", str(err), "write `seeds = 3` (a count) or `seeds = [0, 4, 9]`") from None
    protocol = _protocol(top, defaults=True, under=preset_fields)
    written = set(top.data.get("protocol", {})) if isinstance(top.data.get("protocol"), dict) else set()

    model_readers = top.tables("models", required=True)
    if not model_readers:
        raise top.error("models", "must list at least one model")
    models = tuple(_model(r) for r in model_readers)
    _unique_ids(model_readers, [m.id for m in models], "model")

    dataset_readers = top.tables("datasets", required=True)
    if not dataset_readers:
        raise top.error("datasets", "must list at least one dataset")
    # a preset's per-dataset fields sit under the top-level fields the spec writes itself
    datasets = tuple(_dataset(r, {k: v for k, v in preset.datasets.get(r.data.get("name"), {}).items()
                                  if k not in written} if preset else None) for r in dataset_readers)
    _unique_ids(dataset_readers, [d.id for d in datasets], "dataset")

    model_ids, dataset_ids = {m.id for m in models}, {d.id for d in datasets}
    cell_readers = top.tables("cells")
    metrics = _metrics(top, "metrics", required=not cell_readers)
    cells: tuple[CellSpec, ...] | None = None
    if cell_readers:
        built = []
        for reader in cell_readers:
            reader.only(CELL_KEYS)
            cell = CellSpec(
                model=reader.text("model", required=True),
                dataset=reader.text("dataset", required=True),
                metrics=_metrics(reader, "metrics", required=metrics is None),
                protocol=_protocol(reader),
            )
            if cell.model not in model_ids:
                raise reader.error("model", f"no model with id {cell.model!r}",
                                   f"use one of: {', '.join(sorted(model_ids))}")
            if cell.dataset not in dataset_ids:
                raise reader.error("dataset", f"no dataset with id {cell.dataset!r}",
                                   f"use one of: {', '.join(sorted(dataset_ids))}")
            reader.finish()
            built.append(cell)
        cells = tuple(built)
    claims = tuple(parse_claim(r, model_ids, dataset_ids) for r in top.tables("claims"))
    top.finish()
    return BenchmarkSpec(name, description, table, seed, device, dtype, metrics or (), protocol, models,
                         datasets, cells, claims, source, text, seeds)


def shipped_specs() -> list[str]:
    """Names of the specs that ship with smisbench (``smisbench run demo``)."""
    folder = packaged_file("smisbench.benchmark", "specs")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_spec(ref: str | Path) -> BenchmarkSpec:
    """A spec from a file path, or a shipped spec by name (``table1``, ``demo``)."""
    path = Path(ref)
    if path.is_file():
        return parse_spec(path.read_text(encoding="utf-8"), str(path))
    name = str(ref)
    if name in shipped_specs():
        return parse_spec(packaged_text("smisbench.benchmark", "specs", f"{name}.toml"), f"{name}.toml (shipped)")
    raise SmisbenchError(f"no spec file {str(ref)!r}",
                         f"give a path to a .toml spec or a shipped name: {', '.join(shipped_specs())}")
