"""The one model loader: ``inspect-checkpoint``, ``import-checkpoint``, ``sample``, the harness and the API.

A source is a smisbench bundle (config + weights), an official file (``latest_net_G.pth``,
``_E``, ``_D``) or an official release folder (``checkpoints/<name>/``). Files are read with the
weights-only unpickler; ``module.`` prefixes are stripped; a family whose releases differ in
shape reads its config off the file (``ModelEntry.config_from_checkpoint``); every load is strict,
and a file of another model or dataset is refused with the keys that do not fit.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from smisbench.errors import SmisbenchError, WeightsError
from smisbench.io import sha256_file
from smisbench.models.checkpoints import (
    OFFICIAL_FILES,
    FitReport,
    compare,
    is_bundle,
    load_state,
    safe_load,
    tensors_of,
)

SOURCES = "a smisbench bundle (.pt), an official latest_net_G.pth, or a release folder checkpoints/<name>/"
PART_NAMES = {"G": "generator", "E": "encoder", "D": "discriminator"}
_PART_IN_NAME = re.compile(r"net_([GED])\.pth$")


@dataclass
class Checkpoint:
    """What a source holds, read safely, before any network is built."""

    source: Path
    states: dict[str, dict[str, torch.Tensor]]  # "model" for a bundle; "G", "E", "D" for official files
    files: dict[str, Path]  # the file each state came from
    model: str | None = None  # a bundle's model name and dataset
    dataset: str | None = None
    config: dict[str, Any] = field(default_factory=dict)  # a bundle's config fields (JSON data)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_bundle(self) -> bool:
        return "model" in self.states

    @property
    def format(self) -> str:
        return "smisbench bundle" if self.is_bundle else "official parts"


@dataclass
class LoadedModel:
    """A model with its weights loaded strictly, and where they came from."""

    model: Any  # SMISModel
    config: Any  # the typed config it was built with (defaults, then read off the file, then overrides)
    checkpoint: Checkpoint
    files: dict[str, dict[str, str]]  # "bundle" or part -> {"file", "sha256"}
    inferred: dict[str, Any]  # config fields read off the checkpoint
    reports: list[FitReport]
    notes: list[str]

    @property
    def info(self) -> dict[str, Any]:
        """The file's sha256 and a bundle's stored extras (provenance, trained steps)."""
        first = self.files.get("bundle") or self.files.get("G") or {}
        return {"sha256": first.get("sha256"), **self.checkpoint.extra}

    def provenance(self) -> dict[str, Any]:
        dropped = [key for report in self.reports for key in report.dropped_legacy]
        return {"format": self.checkpoint.format, "source": str(self.checkpoint.source), "files": self.files,
                "config_from_checkpoint": self.inferred, "dropped_legacy_keys": dropped, "notes": self.notes}


def _part_of(path: Path) -> str:
    found = _PART_IN_NAME.search(path.name)
    return found.group(1) if found else "G"


def read_checkpoint(source: str | Path, parts: tuple[str, ...] = ("G", "E", "D"), as_part: str | None = None) -> Checkpoint:
    """Read a bundle, an official file (its part from ``as_part`` or its name) or a release folder."""
    path = Path(source)
    if path.is_dir():
        files = {part: path / OFFICIAL_FILES[part] for part in parts if (path / OFFICIAL_FILES[part]).is_file()}
        if not files:
            wanted = ", ".join(OFFICIAL_FILES[p] for p in parts)
            raise WeightsError(f"{path} is a folder without {wanted}", f"point at {SOURCES}")
        return Checkpoint(path, {part: tensors_of(safe_load(file), str(file)) for part, file in files.items()}, files)
    payload = safe_load(path)
    if is_bundle(payload):
        config = json.loads(payload["config"])
        return Checkpoint(path, {"model": dict(payload["state_dict"])}, {"model": path}, payload["model"],
                          config.pop("dataset", None), config, json.loads(payload.get("extra") or "{}"))
    part = as_part or _part_of(path)
    if part not in parts:
        raise WeightsError(f"{path} holds the {PART_NAMES[part]} (part {part}), not the {' or '.join(PART_NAMES[p] for p in parts)}",
                           f"point at the release folder {path.parent}/ or its {OFFICIAL_FILES[parts[0]]}")
    return Checkpoint(path, {part: tensors_of(payload, str(path))}, {part: path})


def _whose(ckpt: Checkpoint, model: str | None, dataset: str | None) -> tuple[str, str]:
    """The model and dataset to build: the requested ones, which a bundle must belong to."""
    if ckpt.is_bundle:
        wanted = (model or ckpt.model, dataset or ckpt.dataset)
        if wanted != (ckpt.model, ckpt.dataset):
            raise WeightsError(
                f"{ckpt.source} is a {ckpt.model}/{ckpt.dataset} bundle, not {wanted[0]}/{wanted[1]}",
                f"pass --model {ckpt.model} --dataset {ckpt.dataset} to use it, or the weights of {wanted[0]}/{wanted[1]}")
        return wanted
    if model is None or dataset is None:
        raise WeightsError(f"{ckpt.source} is not a smisbench model bundle, so it does not say which model it is",
                           "pass the model and dataset it belongs to (--model/--dataset), or a bundle")
    return model, dataset


def _overrides(ckpt: Checkpoint, name: str, dataset: str, overrides: dict[str, Any]) -> tuple[dict, dict]:
    """(config overrides to build with, those read off the checkpoint); explicit overrides win."""
    if ckpt.is_bundle:
        return {**_restore_types(name, dataset, ckpt.config), **overrides}, {}
    from smisbench.models.registry import get_entry

    infer = getattr(get_entry(name), "config_from_checkpoint", None)
    inferred = dict(infer(ckpt.states["G"])) if infer is not None and "G" in ckpt.states else {}
    return {**inferred, **overrides}, inferred


def load_model(source: str | Path, model: str | None = None, dataset: str | None = None, *,
               overrides: dict[str, Any] | None = None) -> LoadedModel:
    """Build ``model``/``dataset`` and load ``source`` into it strictly (both may be left out for a bundle).

    Raises :class:`~smisbench.errors.WeightsError` when the file is unreadable, holds code, belongs to
    another model or dataset, or does not fit (naming the first keys that do not).
    """
    from smisbench.models.registry import build_model, get_entry, model_config

    ckpt = read_checkpoint(source, parts=("G", "E"))
    name, dataset = _whose(ckpt, model, dataset)
    build_with, inferred = _overrides(ckpt, name, dataset, dict(overrides or {}))
    config = model_config(name, dataset, **build_with)
    net = build_model(name, dataset, **build_with)
    what, notes, files, reports = f"{name}/{dataset}", [], {}, []
    if ckpt.is_bundle:
        reports.append(load_state(net, ckpt.states["model"], str(ckpt.source), what))
        files["bundle"] = {"file": str(ckpt.source), "sha256": sha256_file(ckpt.source)}
    else:
        if "G" not in ckpt.states:
            held = " and ".join(f"the {PART_NAMES[part]}" for part in ckpt.states)
            raise WeightsError(f"{ckpt.source} holds {held} but no generator (latest_net_G.pth)", f"point at {SOURCES}")
        legacy = getattr(get_entry(name), "checkpoint_filter", None)
        for part, state in ckpt.states.items():
            network, file = net.parts().get(part), ckpt.files[part]
            if network is None:
                notes.append(f"{file.name} not used: {name} has no {PART_NAMES[part]}")
                continue
            reports.append(load_state(network, state, str(file), f"{what} part {part}", legacy))
            files[part] = {"file": str(file), "sha256": sha256_file(file)}
        if net.netE is not None and "E" not in ckpt.states:
            notes.append(f"{ckpt.source} has no latest_net_E.pth: the encoder keeps random weights "
                         "(sampling works, encoding real images does not)")
    return LoadedModel(net, config, ckpt, files, inferred, reports, notes)


def check_checkpoint(source: str | Path, model: str, dataset: str, part: str = "G",
                     overrides: dict[str, Any] | None = None) -> tuple[FitReport, dict[str, Any]]:
    """Names and shapes of one part against its network, built on the meta device: no weights in memory.

    Returns the report (which may not fit) and the config fields read off the file.
    """
    from smisbench.models.registry import build_discriminator, build_model, get_entry

    wanted = (part,) if part == "G" or not Path(source).is_dir() else (part, "G")  # G tells the config
    ckpt = read_checkpoint(source, parts=wanted, as_part=part)
    name, dataset = _whose(ckpt, model, dataset)
    build_with, inferred = _overrides(ckpt, name, dataset, dict(overrides or {}))
    if part == "D" and ckpt.is_bundle:
        raise SmisbenchError(f"{ckpt.source} is a bundle: it holds G and E, not D", "use --part G")
    with torch.device("meta"):
        network = build_discriminator(name, dataset, **build_with) if part == "D" else build_model(name, dataset, **build_with)
    if ckpt.is_bundle:  # one state dict for G and E
        report, _ = compare(network, ckpt.states["model"], str(ckpt.source))
        report.sha256 = sha256_file(ckpt.source)
    else:
        if part not in ckpt.states:
            raise WeightsError(f"{ckpt.source} has no {OFFICIAL_FILES[part]}", f"point at {SOURCES}")
        target = network if part == "D" else network.parts().get(part)
        if target is None:
            raise SmisbenchError(f"{name} has no {PART_NAMES[part]} (part {part})", "use --part G or D")
        legacy = getattr(get_entry(name), "checkpoint_filter", None)
        report, _ = compare(target, ckpt.states[part], str(ckpt.files[part]), legacy)
        report.sha256 = sha256_file(ckpt.files[part])
    return report, inferred


# ----- bundle configs: JSON turns tuples (and nested dataclasses) into lists/dicts -----

def _restore_types(name: str, dataset: str, fields: dict) -> dict:
    """Rebuild a bundle's config fields with the types of the default config (fields it no longer has are dropped)."""
    from smisbench.models.registry import model_config

    default = model_config(name, dataset)
    return {f.name: _like(getattr(default, f.name), fields[f.name]) for f in dataclasses.fields(default) if f.name in fields}


def _like(reference: Any, value: Any) -> Any:
    if dataclasses.is_dataclass(reference) and isinstance(value, dict):
        return type(reference)(**{f.name: _like(getattr(reference, f.name), value[f.name]) for f in dataclasses.fields(reference)})
    if isinstance(reference, tuple) and isinstance(value, list):
        items = list(reference) or [None]
        return tuple(_like(items[min(i, len(items) - 1)], v) for i, v in enumerate(value))
    return value
