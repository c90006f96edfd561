"""Benchmark specs: TOML files that say which models, datasets, metrics and protocol a benchmark runs.

Parsed with ``tomllib`` into frozen dataclasses. Every mistake raises :class:`SpecError` naming
the key with its path (``cells[2].metrics``), so a typo never silently changes what is measured.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from smisbench.benchmark.catalog import catalog
from smisbench.errors import SmisbenchError, choose_from
from smisbench.metrics.protocol import ProtocolField, protocol_field, protocol_fields


class SpecError(SmisbenchError):
    """A spec that cannot be run; ``key`` is the path of the offending key."""

    def __init__(self, source: str, key: str, problem: str, fix: str | None = None):
        self.source, self.key = source, key
        super().__init__(f"{source}: {key}: {problem}" if key else f"{source}: {problem}", fix)


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


REAL_ROW = "real"  # what claims call the real-data row (the real images scored by the same code)


@dataclass(frozen=True)
class ClaimCondition:
    """A further test on the same pairs that the claim needs (the paper's "at comparable FID")."""

    value: str
    max_ratio: float


@dataclass(frozen=True)
class ClaimSpec:
    """A claim checked on measured numbers: the model is at most ``max_ratio`` times as bad as the reference
    in the value's direction (model/reference for lower-is-better values, reference/model for higher).

    ``value`` is a value key or a ratio of two (``"mocd/mcsd"``); ``model`` and ``reference`` are model
    ids (or :data:`REAL_ROW`), one or several: the claim holds when it holds for every pair, and every
    ``given`` condition holds for every pair too.
    """

    text: str
    value: str
    model: str | tuple[str, ...]
    reference: str | tuple[str, ...]
    max_ratio: float
    dataset: str | None = None
    given: tuple[ClaimCondition, ...] = ()

    @property
    def models(self) -> tuple[str, ...]:
        return (self.model,) if isinstance(self.model, str) else tuple(self.model)

    @property
    def references(self) -> tuple[str, ...]:
        return (self.reference,) if isinstance(self.reference, str) else tuple(self.reference)


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


def _type_name(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "an array", dict: "a table"}.get(type(value), type(value).__name__)


class _Reader:
    """Reads one TOML table, checking types, and refuses keys nobody read."""

    def __init__(self, data: Any, path: str, source: str):
        if not isinstance(data, dict):
            raise SpecError(source, path, f"must be a table, not {_type_name(data)}")
        self.data, self.path, self.source = data, path, source
        self.read: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def error(self, name: str, problem: str, fix: str | None = None) -> SpecError:
        return SpecError(self.source, self.key(name), problem, fix)

    def get(self, name: str, kinds: tuple[type, ...], what: str, *, required: bool = False,
            default: Any = None, choices: tuple | None = None) -> Any:
        self.read.add(name)
        if name not in self.data:
            if required:
                raise self.error(name, "is missing", f"add `{name} = ...` ({what})")
            return default
        value = self.data[name]
        ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            ok, value = True, float(value)
        if not ok:
            raise self.error(name, f"must be {what}, not {_type_name(value)} ({value!r})")
        if choices is not None and value not in choices:
            raise self.error(name, f"{value!r} is not allowed", f"use one of: {', '.join(map(str, choices))}")
        return value

    def text(self, name: str, **kw: Any) -> Any:
        value = self.get(name, (str,), "a string", **kw)
        if name in self.data and not value.strip():
            raise self.error(name, "must not be empty")
        return value

    def integer(self, name: str, minimum: int | None = None, **kw: Any) -> Any:
        value = self.get(name, (int,), "an integer", **kw)
        if value is not None and minimum is not None and value < minimum:
            raise self.error(name, f"must be at least {minimum}, not {value}")
        return value

    def table(self, name: str) -> dict[str, Any]:
        return dict(self.get(name, (dict,), "a table", default={}))

    def strings(self, name: str, **kw: Any) -> Any:
        value = self.get(name, (list,), "an array of strings", **kw)
        if value is None:
            return None
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise SpecError(self.source, f"{self.key(name)}[{i}]", f"must be a string, not {_type_name(item)}")
        return tuple(value)

    def tables(self, name: str, required: bool = False) -> list["_Reader"]:
        value = self.get(name, (list,), "an array of tables ([[" + name + "]])", required=required, default=[])
        return [_Reader(item, f"{self.key(name)}[{i}]", self.source) for i, item in enumerate(value)]

    def only(self, known: tuple[str, ...]) -> "_Reader":
        """Refuse unknown keys before anything else, so a typo is named as such (not as a missing key)."""
        unknown = sorted(set(self.data) - set(known))
        if unknown:
            raise self.error(unknown[0], "is not a known key", f"known keys here: {', '.join(sorted(known))}")
        return self

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.read)
        if unknown:
            raise self.error(unknown[0], "is not a known key",
                             f"known keys here: {', '.join(sorted(self.read))}")


TOP_KEYS = ("name", "description", "table", "seed", "seeds", "device", "dtype", "preset", "metrics", "protocol",
            "models", "datasets", "cells", "claims")
MODEL_KEYS = ("id", "name", "factory", "label", "config", "checkpoint", "train", "protocol")
DATASET_KEYS = ("id", "name", "label", "root", "split", "options", "protocol")
CELL_KEYS = ("model", "dataset", "metrics", "protocol")
CLAIM_KEYS = ("text", "value", "model", "reference", "max_ratio", "dataset", "given")
CONDITION_KEYS = ("value", "max_ratio")
TRAIN_KEYS = ("steps", "batch_size", "options")


def _protocol(reader: _Reader, name: str = "protocol", defaults: bool = False,
              under: dict[str, Any] | None = None) -> dict[str, Any]:
    """A validated protocol table; ``extra`` holds evaluator-specific fields passed through.

    ``defaults`` (the top level): every field not written gets its default, so the cells, their
    keys and the stored results name each setting (a changed default then reruns a cell).
    ``under``: a preset's fields, taken where the table does not write the field itself. Only the
    top level names a preset (its ``preset`` key was resolved by :func:`_preset`).
    """
    raw = reader.get(name, (dict,), "a table", default={})
    sub = _Reader(raw, reader.key(name), reader.source)
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


def _metrics(reader: _Reader, name: str, required: bool) -> tuple[str, ...] | None:
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


def seed_list(value: int | list[int] | tuple[int, ...], base: int) -> tuple[int, ...]:
    """Evaluation seeds from a count K (``base``, ``base + 1``, ..., so the first is the spec's ``seed`` and
    its cells are the single-seed ones) or from a list; raises ValueError naming what is wrong."""
    minimum = protocol_field("seed").minimum or 0
    if isinstance(value, bool) or not isinstance(value, (int, list, tuple)):
        raise ValueError(f"must be a count or an array of seeds, not {_type_name(value)}")
    if isinstance(value, int):
        if value < 1:
            raise ValueError(f"a count of seeds must be at least 1, not {value}")
        return tuple(base + i for i in range(value))
    if not value:
        raise ValueError("must list at least one seed")
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int):
            raise ValueError(f"seeds must be integers, not {_type_name(item)} ({item!r})")
        if item < minimum:
            raise ValueError(f"seeds must be at least {minimum}, not {item}")
    if len(set(value)) != len(value):
        raise ValueError("lists a seed twice")
    return tuple(value)


def parse_seeds_option(text: str, base: int) -> tuple[int, ...]:
    """``--seeds K`` (a count) or ``--seeds 0,4,9`` (a list) on a command line."""
    try:
        parts = [int(p) for p in text.split(",")] if "," in text else int(text)
        return seed_list(parts, base)
    except ValueError as err:
        problem = str(err) if "seed" in str(err) else f"{text!r} is not a number"
        raise SmisbenchError(f"--seeds {text}: {problem}",
                             "give a count (--seeds 3) or a comma-separated list (--seeds 0,4,9)") from None


def with_seeds(spec: BenchmarkSpec, seeds: tuple[int, ...]) -> BenchmarkSpec:
    """The spec run with other evaluation seeds (``--seeds``); everything else, its text included, unchanged."""
    return replace(spec, seeds=tuple(seeds))


def _unique_ids(readers: list[_Reader], ids: list[str], what: str) -> None:
    seen: dict[str, int] = {}
    for reader, ident in zip(readers, ids):
        if ident in seen:
            raise reader.error("id", f"{what} id {ident!r} is used twice",
                               f"give one of them another `id = ...` (the other is {readers[seen[ident]].path})")
        seen[ident] = len(seen)


def _train(reader: _Reader) -> TrainSpec | None:
    if "train" not in reader.data:
        reader.read.add("train")
        return None
    sub = _Reader(reader.get("train", (dict,), "a table"), reader.key("train"), reader.source).only(TRAIN_KEYS)
    spec = TrainSpec(
        steps=sub.integer("steps", minimum=1, required=True),
        batch_size=sub.integer("batch_size", minimum=1, default=4),
        options=sub.table("options"),
    )
    sub.finish()
    return spec


def _named(reader: _Reader, keys: tuple[str, ...], name: str | None = None) -> dict[str, Any]:
    """The keys a model and a dataset share: ``name``, ``id`` (default: the name), ``label`` (default: the id)."""
    reader.only(keys)
    name = reader.text("name", required=True) if name is None else name
    ident = reader.text("id", default=name)
    return {"id": ident, "name": name, "label": reader.text("label", default=ident)}


def _factory(reader: _Reader) -> str | None:
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


def _model(reader: _Reader) -> ModelSpec:
    factory = _factory(reader)
    spec = ModelSpec(**_named(reader, MODEL_KEYS, factory), config=reader.table("config"),
                     checkpoint=reader.text("checkpoint"), train=_train(reader), protocol=_protocol(reader),
                     factory=factory)
    reader.finish()
    return spec


def _preset(top: _Reader) -> Any:
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


def _dataset(reader: _Reader, under: dict[str, Any] | None = None) -> DatasetSpec:
    named = _named(reader, DATASET_KEYS)
    spec = DatasetSpec(**named, root=reader.text("root", default=named["name"]),
                       split=reader.text("split", default="test"), options=reader.table("options"),
                       protocol=_protocol(reader, under=under))
    reader.finish()
    return spec


def _claim_value(reader: _Reader, name: str) -> str:
    value = reader.text(name, required=True)
    if value not in catalog().values and catalog().ratio(value) is None:
        raise reader.error(name, f"{value!r} is not allowed: neither a value key nor a ratio of two",
                           f"use one of: {', '.join(catalog().values)}, or A/B of a higher- and a lower-is-better "
                           "value (mocd/mcsd)")
    return value


def _claim_ids(reader: _Reader, name: str, model_ids: set[str]) -> str | tuple[str, ...]:
    raw = reader.get(name, (str, list), "a model id or an array of them", required=True)
    ids = (raw,) if isinstance(raw, str) else tuple(raw)
    if not ids:
        raise reader.error(name, "must name at least one model")
    for ident in ids:
        if not isinstance(ident, str) or (ident not in model_ids and ident != REAL_ROW):
            raise reader.error(name, f"no model with id {ident!r}",
                               f"use one of: {', '.join(sorted(model_ids))}, or {REAL_ROW!r} (the real-data row)")
    return raw if isinstance(raw, str) else ids


def _ratio(reader: _Reader) -> float:
    value = reader.get("max_ratio", (float,), "a number", required=True)
    if value <= 0:
        raise reader.error("max_ratio", "must be positive")
    return value


def _claim(reader: _Reader, model_ids: set[str], dataset_ids: set[str]) -> ClaimSpec:
    reader.only(CLAIM_KEYS)
    given = []
    for sub in reader.tables("given"):
        sub.only(CONDITION_KEYS)
        given.append(ClaimCondition(_claim_value(sub, "value"), _ratio(sub)))
        sub.finish()
    claim = ClaimSpec(
        text=reader.text("text", required=True),
        value=_claim_value(reader, "value"),
        model=_claim_ids(reader, "model", model_ids),
        reference=_claim_ids(reader, "reference", model_ids),
        max_ratio=_ratio(reader),
        dataset=reader.text("dataset"),
        given=tuple(given),
    )
    if claim.dataset is not None and claim.dataset not in dataset_ids:
        raise reader.error("dataset", f"no dataset with id {claim.dataset!r}",
                           f"use one of: {', '.join(sorted(dataset_ids))}")
    reader.finish()
    return claim


def parse_spec(text: str, source: str = "<spec>") -> BenchmarkSpec:
    """Parse and validate a spec's TOML text."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise SpecError(source, "", f"is not valid TOML: {err}",
                        "fix the syntax at the line and column named") from None
    top = _Reader(data, "", source).only(TOP_KEYS)
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
    claims = tuple(_claim(r, model_ids, dataset_ids) for r in top.tables("claims"))
    top.finish()
    return BenchmarkSpec(name, description, table, seed, device, dtype, metrics or (), protocol, models,
                         datasets, cells, claims, source, text, seeds)


def shipped_specs() -> list[str]:
    """Names of the specs that ship with smisbench (``smisbench run demo``)."""
    folder = resources.files("smisbench.benchmark").joinpath("specs")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_spec(ref: str | Path) -> BenchmarkSpec:
    """A spec from a file path, or a shipped spec by name (``table1``, ``demo``)."""
    path = Path(ref)
    if path.is_file():
        return parse_spec(path.read_text(encoding="utf-8"), str(path))
    name = str(ref)
    if name in shipped_specs():
        text = resources.files("smisbench.benchmark").joinpath("specs", f"{name}.toml").read_text(encoding="utf-8")
        return parse_spec(text, f"{name}.toml (shipped)")
    raise SmisbenchError(f"no spec file {str(ref)!r}",
                         f"give a path to a .toml spec or a shipped name: {', '.join(shipped_specs())}")
