"""Everything about a spec that can be checked without computing, checked before a run touches the store.

``smisbench run SPEC`` (and ``--dry-run``) call :func:`check_spec` before the results store is
opened, so a spec that cannot run never creates a store or records a run whose every cell
failed. Each problem is one :class:`SpecError` naming the spec key, with the close matches of a
mistyped name: unknown model, dataset, segmenter or scoring-protocol names, model config keys the
config dataclass lacks (or values of the wrong type), unknown dataset or training options, a
model/dataset pair without a configuration, a device smisbench cannot use (or this machine
lacks), and protocols the evaluator would refuse. What is only worth knowing (a missing data
folder or checkpoint file, a metric this installation lacks) comes back as notes for the plan.
"""

from __future__ import annotations

import dataclasses
import json
import re
import types
import typing
from pathlib import Path
from typing import Any

from smisbench.benchmark.cells import Cell, RunOptions, expand_cells
from smisbench.benchmark.spec import BenchmarkSpec, SpecError
from smisbench.errors import SmisbenchError, choose_from

DEVICE = re.compile(r"cpu|mps|cuda(:\d+)?")
DEVICE_FORMS = "cpu, cuda, cuda:N (a GPU index) or mps"
SEGMENTER_METRICS = ("miou", "accuracy")  # scored by protocol.segmenter (smisbench.segmenters.metric)


# ----- devices -----

def available_devices() -> list[str]:
    """The device strings this machine can run on, in the form specs use."""
    import torch

    found = ["cpu"]
    if torch.cuda.is_available():
        found += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    return found


def _device_error(spec: BenchmarkSpec, options: RunOptions, problem: str, fix: str) -> SmisbenchError:
    """The error names where the device came from: --device, or the spec's `device` key."""
    if options.device:
        return SmisbenchError(f"--device {options.device!r} {problem}", fix)
    return SpecError(spec.source, "device", f"{spec.device!r} {problem}", fix)


def check_device(spec: BenchmarkSpec, options: RunOptions, availability: bool = True) -> str:
    """The run's device, refused when smisbench cannot use it (with ``availability``: when this machine lacks it)."""
    name = options.device or spec.device
    if not DEVICE.fullmatch(name):
        raise _device_error(spec, options, "is not a device smisbench runs on",
                            f"use {DEVICE_FORMS}; available here: {', '.join(available_devices())}")
    if availability:
        check_device_available(spec, options)
    return name


def check_device_available(spec: BenchmarkSpec, options: RunOptions) -> None:
    """Refuse a device this machine does not have, saying which ones it has."""
    name = options.device or spec.device
    found = available_devices()
    if name in found:
        return
    kind = name.partition(":")[0]
    if kind == "cuda" and "cuda" in found:
        count = sum(d.startswith("cuda:") for d in found)
        reason = f"this machine has {count} CUDA device(s): cuda:0 to cuda:{count - 1}"
    elif kind == "cuda":
        reason = "CUDA is not available (no GPU or driver, or a CPU-only torch build)"
    else:
        reason = "MPS (the Apple GPU backend) is not available"
    raise _device_error(spec, options, f"cannot be used here: {reason}",
                        f"run on a device this machine has: {', '.join(found)} (pass --device or set `device` in "
                        "the spec; cells are keyed by their device, so results of another device are not reused)")


# ----- value types against a config dataclass -----

def _hints(cls: type) -> dict[str, Any]:
    """Resolved field annotations (empty when they cannot be resolved: nothing is then type-checked)."""
    try:
        return typing.get_type_hints(cls)
    except Exception:  # an annotation naming something its module does not import at runtime
        return {}


def _fits(value: Any, hint: Any) -> bool | None:
    """Whether a TOML value fits a field's annotation; None where the annotation is beyond a spec's types."""
    if hint is Any:
        return True
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if hint is type(None):
        return value is None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        results = [_fits(value, arm) for arm in args]
        return True if True in results else (None if None in results else False)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                return False
            results = [_fits(v, a) for v, a in zip(value, args)]
        else:
            results = [_fits(v, args[0]) for v in value] if args else []
        return False if False in results else (None if None in results else True)
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    return None


_NAMES = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array",
          dict: "a table"}


def _describe(hint: Any) -> str:
    if hint in _NAMES:
        return _NAMES[hint]
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args if a is not type(None))
    if origin in (tuple, list):
        if origin is tuple and args and args[-1] is not Ellipsis:
            return f"an array of {len(args)} ({', '.join(_describe(a) for a in args)})"
        return f"an array ({_describe(args[0])} each)" if args else "an array"
    return getattr(hint, "__name__", str(hint))


def _toml(value: Any) -> str | None:
    """A default value as a spec would write it (None when TOML cannot)."""
    if value is None:
        return None
    try:
        return json.dumps(value)  # tuples become arrays; strings, numbers and booleans read the same in TOML
    except TypeError:
        return None


def _check_fields(spec: BenchmarkSpec, where: str, values: dict[str, Any], cls: type, what: str,
                  defaults: dict[str, Any]) -> None:
    """Refuse keys ``cls`` has no field for (with close matches) and values its annotations rule out."""
    fields = [f.name for f in dataclasses.fields(cls) if f.init]
    hints = _hints(cls)
    for key, value in values.items():
        if key not in fields:
            raise SpecError(spec.source, f"{where}.{key}", f"is not {what}", choose_from(key, fields))
        if key in hints and _fits(value, hints[key]) is False:
            example = _toml(defaults.get(key))
            raise SpecError(spec.source, f"{where}.{key}",
                            f"must be {_describe(hints[key])} ({cls.__name__}.{key}), not {value!r}",
                            f"write it like the default: {key} = {example}" if example else
                            f"give {_describe(hints[key])}")


def _defaults(cls: type) -> dict[str, Any]:
    return {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}


# ----- the spec -----

def _cell_key(spec: BenchmarkSpec, cell: Cell) -> str:
    """Where a cell comes from in the spec: its [[cells]] entry, or its model x dataset pair."""
    if spec.cells is not None:
        return f"cells[{cell.index}]"
    return f"models[{spec.models.index(cell.model)}] x datasets[{spec.datasets.index(cell.dataset)}]"


def _check_models(spec: BenchmarkSpec) -> None:
    from smisbench.models.registry import get_entry, model_names
    from smisbench.training.config import TrainConfig

    known = model_names()
    for i, model in enumerate(spec.models):
        if model.factory is not None:  # loads the factory's module: a missing file or a broken factory stops here
            try:
                get_entry(model.factory)
            except SmisbenchError as err:
                raise SpecError(spec.source, f"models[{i}].factory", err.problem, err.fix) from None
        elif model.name not in known:
            raise SpecError(spec.source, f"models[{i}].name", f"unknown model {model.name!r}",
                            choose_from(model.name, known) + "; `smisbench models` describes them")
        if model.train is not None and model.checkpoint is None:
            if get_entry(model.name).build_discriminator is None:
                raise SpecError(spec.source, f"models[{i}].train", f"model {model.name!r} has no discriminator, "
                                "so smisbench cannot train it", "give it a `checkpoint` instead of `train`")
            _check_fields(spec, f"models[{i}].train.options", model.train.options, TrainConfig, "a training option",
                          _defaults(TrainConfig))


def _check_datasets(spec: BenchmarkSpec) -> None:
    from smisbench.data.registry import dataset_names, reader_options

    known = dataset_names()
    for i, dataset in enumerate(spec.datasets):
        if dataset.name not in known:
            raise SpecError(spec.source, f"datasets[{i}].name", f"unknown dataset {dataset.name!r}",
                            choose_from(dataset.name, known) + "; `smisbench datasets` describes them")
        options = reader_options(dataset.name)
        for key in dataset.options:
            if key not in options:
                raise SpecError(spec.source, f"datasets[{i}].options.{key}",
                                f"is not an option of the {dataset.name} reader",
                                choose_from(key, options) if options else "it takes no options: remove it")


def _check_model_config(spec: BenchmarkSpec, cell: Cell) -> None:
    """The model has a configuration for the dataset, and the overrides name its fields with fitting values."""
    from smisbench.models.registry import model_config

    model, dataset = cell.model, cell.dataset
    try:
        base = model_config(model.name, dataset.name)
    except SmisbenchError as err:
        raise SpecError(spec.source, _cell_key(spec, cell), err.problem,
                        f"{err.fix}, or list the cells to run with [[cells]] to leave this pair out") from None
    where = f"models[{spec.models.index(model)}].config"
    defaults = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
    _check_fields(spec, where, model.config, type(base),
                  f"a field of {type(base).__name__} ({model.name} on {dataset.name})", defaults)
    try:
        model_config(model.name, dataset.name, **model.config)
    except (SmisbenchError, TypeError, ValueError) as err:  # the config's own checks (__post_init__)
        fix = (err.fix if isinstance(err, SmisbenchError) else None) or "change the override to a value it accepts"
        problem = err.problem if isinstance(err, SmisbenchError) else str(err)
        raise SpecError(spec.source, where, problem, fix) from None


def _protocol_layers(spec: BenchmarkSpec) -> list[tuple[str, dict[str, Any]]]:
    layers = [("protocol", spec.protocol)]
    layers += [(f"datasets[{i}].protocol", d.protocol) for i, d in enumerate(spec.datasets)]
    layers += [(f"models[{i}].protocol", m.protocol) for i, m in enumerate(spec.models)]
    layers += [(f"cells[{i}].protocol", c.protocol) for i, c in enumerate(spec.cells or ())]
    return layers


def _check_protocol_names(spec: BenchmarkSpec) -> None:
    """Segmenter and scoring-protocol names, named at the table that sets them."""
    from smisbench.segmenters.protocol import protocol_names
    from smisbench.segmenters.registry import segmenter_names

    known = {"segmenter": segmenter_names(), "scoring_protocol": protocol_names()}
    for where, layer in _protocol_layers(spec):
        for key, names in known.items():
            if layer.get(key) is not None and layer[key] not in names:  # None: the default, no segmenter
                raise SpecError(spec.source, f"{where}.{key}", f"unknown {key.replace('_', ' ')} {layer[key]!r}",
                                choose_from(layer[key], names) + "; `smisbench segmenters` describes them")


def _check_cell_protocol(spec: BenchmarkSpec, cell: Cell, device: str, notes: list[str]) -> None:
    """A cell's merged protocol: a segmenter (and its files) where one scores it; what the evaluator accepts."""
    from smisbench.benchmark.executor import eval_protocol
    from smisbench.metrics.registry import metric_names
    from smisbench.segmenters.registry import get_spec, resolve_checkpoints

    where = _cell_key(spec, cell)
    available = metric_names()
    segmented = [m for m in cell.metrics if m in available and m in SEGMENTER_METRICS]
    segmenter = cell.protocol.get("segmenter")
    if segmented and not segmenter:
        raise SpecError(spec.source, where, f"lists {', '.join(segmented)} but no protocol table sets a segmenter",
                        "set `segmenter = ...` under [protocol] (see `smisbench segmenters`), or drop "
                        f"{' and '.join(segmented)} from its metrics")
    if segmented and segmenter != "synthetic-fcn":  # the synthetic stand-in is trained by the suite
        given = cell.protocol.get("segmenter_checkpoints") or []
        if not given:
            raise SpecError(spec.source, where, f"segmenter {segmenter!r} needs its checkpoint file(s)",
                            "set `segmenter_checkpoints = [...]` in the protocol (files are verified by sha256)")
        try:
            paths = resolve_checkpoints(get_spec(segmenter), given)
        except SmisbenchError as err:
            raise SpecError(spec.source, f"{where}: protocol.segmenter_checkpoints", err.problem,
                            err.fix or "see `smisbench segmenters` for its files") from None
        notes += [f"segmenter {segmenter} checkpoint missing: {path}" for path in paths.values()
                  if not Path(path).exists()]
    try:
        eval_protocol(cell, device)
    except (SmisbenchError, TypeError, ValueError) as err:
        fix = (err.fix if isinstance(err, SmisbenchError) else None) or "change the protocol field named"
        problem = err.problem if isinstance(err, SmisbenchError) else str(err)
        raise SpecError(spec.source, f"{where}: protocol", problem, fix) from None


def check_spec(spec: BenchmarkSpec, options: RunOptions | None = None, *, availability: bool = True) -> list[str]:
    """Check everything about ``spec`` that needs no computing; raise the first problem, return notes for the plan.

    ``availability`` also refuses a device this machine lacks (the dry run checks that after
    showing the plan, so a plan for another machine can still be read).
    """
    options = options or RunOptions()
    device = check_device(spec, options, availability)
    _check_models(spec)
    _check_datasets(spec)
    _check_protocol_names(spec)
    from smisbench.metrics.registry import metric_names

    notes: list[str] = []
    available, pairs = set(metric_names()), set()
    cells = expand_cells(spec, options, hasher=lambda path: None)
    for cell in cells:
        if (cell.model.id, cell.dataset.id) not in pairs:
            pairs.add((cell.model.id, cell.dataset.id))
            _check_model_config(spec, cell)
        _check_cell_protocol(spec, cell, device, notes)
    for metric in sorted({m for c in cells for m in c.metrics} - available):
        notes.append(f"metric {metric!r} is not available in this installation: its values will be missing")
    for dataset in {c.dataset.id: c for c in cells if c.dataset.name != "synthetic"}.values():
        if not dataset.dataset_root.exists():
            notes.append(f"dataset {dataset.dataset.id!r}: folder {dataset.dataset_root} does not exist "
                         "(its cells would fail; pass --data-root where the data is)")
    return list(dict.fromkeys(notes))  # one line per missing file, however many cells use it
