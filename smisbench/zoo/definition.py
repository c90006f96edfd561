"""The zoo definition (``zoo.toml``) as typed data: which checkpoints exist, how each is trained, how big it is.

Everything a zoo checkpoint is trained with comes from here (:func:`train_settings`): the trainer
config and the equivalent ``smisbench train`` command line are both derived from the same
:class:`TrainSettings`, so the command a manifest records is the command that ran.
"""

from __future__ import annotations

import functools
import json
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from smisbench.errors import SmisbenchError
from smisbench.packaged import packaged_text

SEGMENTER_KIND = "segmenter"
MODEL_KIND = "model"


@dataclass(frozen=True)
class Band:
    """A stated parameter balance: G+E of every entry in it lies in [min, max]."""

    name: str
    text: str
    min: int
    max: int


@dataclass(frozen=True)
class ZooTable:
    name: str
    title: str
    paper: str
    metrics: tuple[str, ...]


@dataclass(frozen=True)
class ZooModel:
    id: str
    model: str
    label: str
    config: dict[str, Any]
    tables: tuple[str, ...]
    balance: str
    steps: int
    batch_size: int
    seed: int


@dataclass(frozen=True)
class ZooSegmenter:
    id: str
    steps: int
    batch_size: int
    seed: int


@dataclass(frozen=True)
class Zoo:
    dataset: str
    dataset_options: dict[str, Any]
    vgg: str
    log_every: int
    checkpoint_every: int
    first_steps: int
    final_window: int
    storage: str
    max_total_bytes: int
    balance: dict[str, Band]
    tables: dict[str, ZooTable]
    models: tuple[ZooModel, ...]
    segmenter: ZooSegmenter

    @property
    def ids(self) -> list[str]:
        return [m.id for m in self.models] + [self.segmenter.id]

    def model(self, ident: str) -> ZooModel:
        for entry in self.models:
            if entry.id == ident:
                return entry
        raise SmisbenchError(f"no zoo model {ident!r}", f"use one of: {', '.join(self.ids)}")

    def rows_of(self, table: str) -> list[ZooModel]:
        return [m for m in self.models if table in m.tables]


def scaled_steps(steps: int, scale: float) -> int:
    """``steps`` times ``scale``, at least 1 (``--steps-scale``)."""
    if not scale > 0:
        raise SmisbenchError(f"--steps-scale must be positive, got {scale}", "pass e.g. 1 (full), 0.01 (a smoke run)")
    return max(1, round(steps * scale))


@dataclass(frozen=True)
class TrainSettings:
    """Everything one zoo checkpoint is trained with (what its manifest records as ``train``)."""

    id: str
    kind: str  # "model" or "segmenter"
    model: str
    label: str
    dataset: str
    dataset_options: dict[str, Any]
    config: dict[str, Any]
    steps: int
    batch_size: int
    seed: int
    vgg: str
    log_every: int
    checkpoint_every: int
    steps_scale: float = 1.0
    definition_steps: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainSettings":
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    def train_config(self, out: str | Path, device: str = "cpu", threads: int | None = None, progress: bool = True,
                     resume: bool = False, stop_after: int | None = None) -> Any:
        """The :class:`~smisbench.training.config.TrainConfig` of a zoo model's training."""
        from smisbench.training.config import TrainConfig

        return TrainConfig(model=self.model, dataset=self.dataset, out=str(out),
                           dataset_options=dict(self.dataset_options), model_overrides=dict(self.config),
                           batch_size=self.batch_size, steps=self.steps, seed=self.seed, vgg=self.vgg,
                           log_every=self.log_every, checkpoint_every=self.checkpoint_every, keep_checkpoints=1,
                           device=device, threads=threads, progress=progress, resume=resume, stop_after=stop_after)

    def train_argv(self, out: str | Path, device: str = "cpu") -> list[str]:
        """The ``smisbench train`` arguments that give the same :meth:`train_config` (a test parses them back)."""
        argv = ["train", self.model, "--dataset", self.dataset]
        argv += [a for k, v in self.dataset_options.items() for a in ("--dataset-option", f"{k}={json.dumps(v)}")]
        argv += [a for k, v in self.config.items() for a in ("--model-option", f"{k}={json.dumps(v)}")]
        argv += ["--batch-size", str(self.batch_size), "--steps", str(self.steps), "--seed", str(self.seed),
                 "--vgg", self.vgg, "--log-every", str(self.log_every), "--checkpoint-every",
                 str(self.checkpoint_every), "--keep-checkpoints", "1", "--device", device, "--out", str(out)]
        return argv


def settings_for(zoo: Zoo, ident: str, scale: float = 1.0) -> TrainSettings:
    """The training of zoo entry ``ident`` at ``--steps-scale scale``."""
    if ident == zoo.segmenter.id:
        s = zoo.segmenter
        return TrainSettings(s.id, SEGMENTER_KIND, s.id, "synthetic segmenter", zoo.dataset, dict(zoo.dataset_options),
                             {}, scaled_steps(s.steps, scale), s.batch_size, s.seed, "none", 1, s.steps, scale,
                             s.steps)
    m = zoo.model(ident)
    return TrainSettings(m.id, MODEL_KIND, m.model, m.label, zoo.dataset, dict(zoo.dataset_options), dict(m.config),
                         scaled_steps(m.steps, scale), m.batch_size, m.seed, zoo.vgg, zoo.log_every,
                         zoo.checkpoint_every, scale, m.steps)


def parameter_counts(model: str, dataset: str, config: dict[str, Any]) -> dict[str, int]:
    """G, E and G+E of a configuration, counted on the meta device (no memory, no weights)."""
    import torch

    from smisbench.models.registry import build_model

    with torch.device("meta"):
        network = build_model(model, dataset, **config)
    g = sum(p.numel() for p in network.netG.parameters())
    e = sum(p.numel() for p in network.netE.parameters()) if network.netE is not None else 0
    return {"G": g, "E": e, "G+E": g + e}


def balance_report(zoo: Zoo) -> list[dict[str, Any]]:
    """Every model's computed G+E against its stated band."""
    rows = []
    for m in zoo.models:
        counts = parameter_counts(m.model, zoo.dataset, m.config)
        band = zoo.balance[m.balance]
        rows.append({"id": m.id, "label": m.label, **counts, "band": band.name,
                     "in_band": band.min <= counts["G+E"] <= band.max})
    return rows


def _err(where: str, problem: str, fix: str) -> SmisbenchError:
    return SmisbenchError(f"zoo.toml: {where}: {problem}", fix)


def _parse(data: dict[str, Any]) -> Zoo:
    balance = {name: Band(name, body["text"], int(body["min"]), int(body["max"]))
               for name, body in data["balance"].items()}
    tables = {name: ZooTable(name, body["title"], body["paper"], tuple(body["metrics"]))
              for name, body in data["tables"].items()}
    models, seen = [], set()
    for i, body in enumerate(data["models"]):
        where = f"models[{i}]"
        unknown = set(body) - {"id", "model", "label", "config", "tables", "balance", "steps", "batch_size", "seed"}
        if unknown:
            raise _err(where, f"unknown key {sorted(unknown)[0]!r}", "remove it or fix its spelling")
        entry = ZooModel(body["id"], body["model"], body["label"], dict(body.get("config", {})),
                         tuple(body["tables"]), body["balance"], int(body["steps"]),
                         int(body.get("batch_size", data["batch_size"])), int(body.get("seed", data["seed"])))
        if entry.id in seen:
            raise _err(where, f"id {entry.id!r} is used twice", "give every entry its own id")
        seen.add(entry.id)
        if entry.balance not in balance:
            raise _err(where, f"balance {entry.balance!r} is not a [balance.*] band",
                       f"use one of: {', '.join(balance)}")
        for table in entry.tables:
            if table not in tables:
                raise _err(where, f"table {table!r} is not a [tables.*] entry", f"use one of: {', '.join(tables)}")
        models.append(entry)
    seg = data["segmenter"]
    segmenter = ZooSegmenter(seg["id"], int(seg["steps"]), int(seg["batch_size"]), int(seg["seed"]))
    return Zoo(data["dataset"], dict(data["dataset_options"]), data["vgg"], int(data["log_every"]),
               int(data["checkpoint_every"]), int(data["first_steps"]), int(data["final_window"]), data["storage"],
               int(float(data["max_total_mb"]) * 1_000_000), balance, tables, tuple(models), segmenter)


def parse_zoo(text: str) -> Zoo:
    try:
        return _parse(tomllib.loads(text))
    except KeyError as err:
        raise SmisbenchError(f"zoo.toml: missing key {err}",
                             "compare with the shipped smisbench/zoo/zoo.toml") from None


@functools.lru_cache(maxsize=1)
def load_zoo() -> Zoo:
    """The shipped zoo definition."""
    return parse_zoo(packaged_text("smisbench.zoo", "zoo.toml"))
