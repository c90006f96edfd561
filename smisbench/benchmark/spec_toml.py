"""A :class:`BenchmarkSpec` written back as TOML text, so a spec composed in code (the demo's, from the zoo)
is stored as the text of what ran; ``parse_spec(spec_toml(spec))`` gives the same spec (a test checks)."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from smisbench.benchmark.spec import BenchmarkSpec, DatasetSpec, ModelSpec
from smisbench.benchmark.spec_claims import ClaimSpec

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def toml_value(value: Any) -> str:
    """One TOML value: strings, booleans, numbers, arrays and (inline) tables."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON string escapes are valid TOML basic strings
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{toml_key(str(k))} = {toml_value(v)}" for k, v in value.items()) + " }" if value \
            else "{}"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _lines(pairs: list[tuple[str, Any]]) -> list[str]:
    return [f"{toml_key(k)} = {toml_value(v)}" for k, v in pairs if v is not None]


def _protocol(protocol: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in protocol.items() if v is not None}


def _model(model: ModelSpec) -> list[str]:
    pairs: list[tuple[str, Any]] = [("id", model.id), ("name", model.name), ("label", model.label)]
    if model.config:
        pairs.append(("config", model.config))
    pairs.append(("checkpoint", model.checkpoint))
    if model.train is not None:
        train: dict[str, Any] = {"steps": model.train.steps, "batch_size": model.train.batch_size}
        if model.train.options:
            train["options"] = model.train.options
        pairs.append(("train", train))
    if model.protocol:
        pairs.append(("protocol", _protocol(model.protocol)))
    return ["[[models]]", *_lines(pairs), ""]


def _dataset(dataset: DatasetSpec) -> list[str]:
    pairs: list[tuple[str, Any]] = [("id", dataset.id), ("name", dataset.name), ("label", dataset.label),
                                    ("root", dataset.root), ("split", dataset.split)]
    if dataset.options:
        pairs.append(("options", dataset.options))
    if dataset.protocol:
        pairs.append(("protocol", _protocol(dataset.protocol)))
    return ["[[datasets]]", *_lines(pairs), ""]


def _claim(claim: ClaimSpec) -> list[str]:
    pairs: list[tuple[str, Any]] = [("text", claim.text), ("value", claim.value), ("model", claim.model),
                                    ("reference", claim.reference), ("max_ratio", claim.max_ratio),
                                    ("dataset", claim.dataset)]
    if claim.given:
        pairs.append(("given", [{"value": c.value, "max_ratio": c.max_ratio} for c in claim.given]))
    return ["[[claims]]", *_lines(pairs), ""]


def spec_toml(spec: BenchmarkSpec, header: str = "") -> str:
    """The spec as TOML; ``header`` lines become comments at the top."""
    out = [f"# {line}" if line else "#" for line in header.splitlines()]
    out += _lines([("name", spec.name), ("description", spec.description or None), ("table", spec.table),
                   ("seed", spec.seed), ("seeds", list(spec.seeds) or None), ("device", spec.device),
                   ("dtype", spec.dtype)])
    if spec.metrics:
        out += _lines([("metrics", list(spec.metrics))])
    protocol = _protocol(spec.protocol)
    extra = protocol.pop("extra", None)
    out += ["", "[protocol]", *_lines(list(protocol.items()))]
    if extra:
        out += ["", "[protocol.extra]", *_lines(list(extra.items()))]
    out.append("")
    for dataset in spec.datasets:
        out += _dataset(dataset)
    for model in spec.models:
        out += _model(model)
    for cell in spec.cells or ():
        pairs: list[tuple[str, Any]] = [("model", cell.model), ("dataset", cell.dataset)]
        if cell.metrics is not None:
            pairs.append(("metrics", list(cell.metrics)))
        if cell.protocol:
            pairs.append(("protocol", _protocol(cell.protocol)))
        out += ["[[cells]]", *_lines(pairs), ""]
    for claim in spec.claims:
        out += _claim(claim)
    return "\n".join(out).rstrip("\n") + "\n"
