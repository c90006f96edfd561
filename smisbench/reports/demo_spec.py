"""The demo's spec composed with the zoo: which rows score a shipped checkpoint, which are trained now.

``benchmark/specs/demo.toml`` lists every zoo entry as a model (``checkpoint = "<id>.pt"``, relative
to the zoo folder) with one cell each computing its tables' metrics; that block is generated from
``zoo.toml`` by :func:`zoo_models_toml` (a test keeps the file current). At run time
:func:`compose` rewrites each model by what is there: a verified shipped (or retrained) checkpoint,
else a short training now for the :data:`FALLBACK` rows, else the row is left out. The composed spec
is what runs and what the store keeps.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smisbench.benchmark.spec import BenchmarkSpec, TrainSpec, parse_spec
from smisbench.benchmark.spec_claims import REAL_ROW
from smisbench.benchmark.spec_toml import spec_toml, toml_value
from smisbench.errors import SmisbenchError
from smisbench.zoo.definition import Zoo

BEGIN = "# BEGIN zoo models: generated from smisbench/zoo/zoo.toml by smisbench.reports.demo_spec.zoo_models_toml"
END = "# END zoo models"
# rows trained now, for a few steps, when the zoo has no usable checkpoint for them (the demo before the zoo)
FALLBACK = ("groupdnet", "vspade", "groupnet")
FALLBACK_TRAIN = TrainSpec(steps=60, batch_size=4)


def cell_metrics(zoo: Zoo, ident: str) -> list[str]:
    """The metrics of every table the entry is a row of, in table order."""
    metrics: list[str] = []
    for table in zoo.model(ident).tables:
        metrics += [m for m in zoo.tables[table].metrics if m not in metrics]
    return metrics


def zoo_models_toml(zoo: Zoo, dataset_id: str = "synthetic", ids: tuple[str, ...] | None = None,
                    cells: bool = True) -> str:
    """The ``[[models]]`` (and with ``cells`` the ``[[cells]]``) block of a spec scoring the zoo's entries
    (``ids``: these alone, default all): demo.toml's and zoo_seeds.toml's."""
    chosen = [m for m in zoo.models if ids is None or m.id in ids]
    out = [BEGIN]
    for m in chosen:
        out += ["[[models]]", f"id = {toml_value(m.id)}", f"name = {toml_value(m.model)}",
                f"label = {toml_value(m.label)}"]
        if m.config:
            out.append(f"config = {toml_value(m.config)}")
        out += [f"checkpoint = {toml_value(m.id + '.pt')}", ""]
    for m in chosen if cells else ():
        out += ["[[cells]]", f"model = {toml_value(m.id)}", f"dataset = {toml_value(dataset_id)}",
                f"metrics = {toml_value(cell_metrics(zoo, m.id))}", ""]
    out.append(END)
    return "\n".join(out) + "\n"


def generated_block(text: str) -> str:
    """The zoo block as it stands in a demo.toml text."""
    start, end = text.index(BEGIN), text.index(END) + len(END)
    return text[start:end] + "\n"


@dataclass
class Row:
    """Where one zoo row's model comes from in this demo run."""

    id: str
    label: str
    source: str  # shipped | trained now | fallback | missing
    checkpoint: Path | None = None
    manifest: dict[str, Any] | None = None
    detail: str = ""


def compose(spec: BenchmarkSpec, rows: dict[str, Row], protocol_extra: dict[str, Any] | None = None,
            segmenter_checkpoint: str | None = None) -> BenchmarkSpec:
    """The spec with each model as ``rows`` say (checkpoint, short training, or left out)."""
    models, kept = [], set()
    for model in spec.models:
        row = rows.get(model.id)
        if row is None or row.source == "missing":
            continue
        if row.source == "fallback":
            model = dataclasses.replace(model, checkpoint=None, train=FALLBACK_TRAIN)
        else:
            model = dataclasses.replace(model, checkpoint=str(row.checkpoint.resolve()), train=None)
        models.append(model)
        kept.add(model.id)
    if not models:
        raise SmisbenchError("no zoo row has a checkpoint or a training budget", "run `smisbench zoo train` first")
    cells = tuple(c for c in spec.cells or () if c.model in kept) if spec.cells is not None else None
    claims = tuple(c for c in spec.claims if set(c.models + c.references) - {REAL_ROW} <= kept)
    protocol = dict(spec.protocol)
    if segmenter_checkpoint is not None:
        protocol["segmenter_checkpoints"] = [segmenter_checkpoint]
    if protocol_extra:
        protocol["extra"] = {**protocol.get("extra", {}), **protocol_extra}
    composed = dataclasses.replace(spec, models=tuple(models), cells=cells, claims=claims, protocol=protocol)
    left_out = sorted(set(rows) - kept)
    header = (f"Composed by `smisbench demo` from {spec.source} and the zoo: "
              + ", ".join(f"{r.id}={r.source}" for r in rows.values())
              + (f"; left out (no checkpoint): {', '.join(left_out)}" if left_out else ""))
    text = spec_toml(composed, header)
    return parse_spec(text, f"{spec.name} composed with the zoo")
