"""Loading official and smisbench checkpoints strictly, with a precise account of what does not fit."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn

from smisbench.errors import SmisbenchError, WeightsError
from smisbench.io import atomic_torch_save, sha256_file

# official checkpoint names per part: checkpoints/<name>/latest_net_{G,E,D}.pth
OFFICIAL_FILES = {"G": "latest_net_G.pth", "E": "latest_net_E.pth", "D": "latest_net_D.pth"}


@dataclass
class FitReport:
    """How a state dict compares with a network: empty lists mean it loads with ``strict=True``."""

    source: str
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    wrong_shape: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    dropped_legacy: list[str] = field(default_factory=list)
    stripped_prefix: str | None = None
    sha256: str | None = None

    @property
    def fits(self) -> bool:
        return not (self.missing or self.unexpected or self.wrong_shape)

    def describe(self, limit: int = 20) -> str:
        lines = [f"{self.source}: " + ("fits (strict load)" if self.fits else "does not fit")]
        if self.stripped_prefix:
            lines.append(f"  stripped prefix {self.stripped_prefix!r} (DataParallel)")
        for title, items in (("missing", self.missing), ("unexpected", self.unexpected)):
            if items:
                lines.append(f"  {len(items)} {title} keys: " + ", ".join(items[:limit]) + (" ..." if len(items) > limit else ""))
        if self.wrong_shape:
            lines.append(f"  {len(self.wrong_shape)} wrong-shape keys:")
            lines += [f"    {k}: file {tuple(a)} vs network {tuple(b)}" for k, a, b in self.wrong_shape[:limit]]
        if self.dropped_legacy:
            lines.append(f"  dropped {len(self.dropped_legacy)} legacy entries: " + ", ".join(self.dropped_legacy[:limit]))
        return "\n".join(lines)


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state dict from a checkpoint file, with torch's safe (weights-only) unpickler."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"checkpoint {path} does not exist", "check the path (official files are checkpoints/<name>/latest_net_G.pth)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt, truncated or not a torch file
        raise WeightsError(f"cannot read checkpoint {path}: {err}", "download the file again and compare its sha256") from err
    for key in ("state_dict", "model", "netG"):
        if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path} holds no state dict of tensors", "pass a latest_net_*.pth file or a smisbench bundle")
    return dict(obj)


def strip_prefix(state: dict[str, torch.Tensor], prefix: str = "module.") -> tuple[dict[str, torch.Tensor], str | None]:
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix):]: v for k, v in state.items()}, prefix
    return state, None


def compare(
    network: nn.Module,
    state: dict[str, torch.Tensor],
    source: str = "state dict",
    legacy_filter: Callable[[dict], tuple[dict, list[str]]] | None = None,
) -> tuple[FitReport, dict[str, torch.Tensor]]:
    """Compare names and shapes; returns the report and the (prefix-stripped, filtered) state dict."""
    state, prefix = strip_prefix(state)
    dropped: list[str] = []
    if legacy_filter is not None:
        state, dropped = legacy_filter(state)
    expected = network.state_dict()
    report = FitReport(source, stripped_prefix=prefix, dropped_legacy=dropped)
    report.missing = [k for k in expected if k not in state]
    report.unexpected = [k for k in state if k not in expected]
    report.wrong_shape = [
        (k, tuple(state[k].shape), tuple(v.shape)) for k, v in expected.items() if k in state and state[k].shape != v.shape
    ]
    return report, state


def load_into(
    network: nn.Module,
    path: str | os.PathLike,
    legacy_filter: Callable[[dict], tuple[dict, list[str]]] | None = None,
) -> FitReport:
    """Load a checkpoint file into ``network`` with ``strict=True``; raise with the full report if it does not fit."""
    report, state = compare(network, read_state_dict(path), str(path), legacy_filter)
    report.sha256 = sha256_file(path)
    if not report.fits:
        raise WeightsError(report.describe(), "pick the --model/--dataset/--part the file was trained with")
    network.load_state_dict(state, strict=True)
    return report


def network_part(model: nn.Module, part: str, discriminator: Callable[[], nn.Module] | None = None) -> nn.Module:
    """The network a checkpoint part names: G (generator), E (encoder) or D (discriminator)."""
    if part == "G":
        return model.netG
    if part == "E":
        if model.netE is None:
            raise SmisbenchError(f"{model.model_name} has no encoder (part E)", "use --part G or D")
        return model.netE
    if part == "D":
        if discriminator is None:
            raise SmisbenchError("no discriminator builder given for part D", "use --part G or E")
        return discriminator()
    raise SmisbenchError(f"unknown part {part!r}", "use G, E or D")


# ----- smisbench bundles: one file with config, weights and provenance -----

def save_bundle(path: str | os.PathLike, model: nn.Module, config: Any, extra: dict | None = None) -> None:
    """Write model weights with their config and provenance atomically (loadable by :func:`load_bundle`)."""
    payload = {
        "format": "smisbench-model/1",
        "model": model.model_name,
        "config": json.dumps(dataclasses.asdict(config), default=list),
        "state_dict": model.state_dict(),
        "extra": json.dumps(extra or {}),
    }
    atomic_torch_save(payload, path)


def load_bundle(path: str | os.PathLike) -> tuple[nn.Module, dict]:
    """Rebuild a model saved by :func:`save_bundle` (strict load)."""
    from smisbench.models.registry import build_model

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"model file {path} does not exist", "train a model with `smisbench train` or import one with `smisbench import-checkpoint`")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != "smisbench-model/1":
        raise WeightsError(f"{path} is not a smisbench model bundle", "official latest_net_*.pth files are read with `smisbench import-checkpoint`")
    config = json.loads(payload["config"])
    dataset = config.pop("dataset")
    model = build_model(payload["model"], dataset, **_restore_tuples(payload["model"], dataset, config))
    model.load_state_dict(payload["state_dict"], strict=True)
    return model, {"sha256": sha256_file(path), **json.loads(payload["extra"])}


def _restore_tuples(name: str, dataset: str, fields: dict) -> dict:
    """JSON turns tuples (and nested dataclasses) into lists/dicts; rebuild them from the default config's types."""
    from smisbench.models.registry import model_config

    default = model_config(name, dataset)
    out = {}
    for f in dataclasses.fields(default):
        if f.name not in fields:
            continue
        value, reference = fields[f.name], getattr(default, f.name)
        out[f.name] = _like(reference, value)
    return out


def _like(reference: Any, value: Any) -> Any:
    if dataclasses.is_dataclass(reference) and isinstance(value, dict):
        return type(reference)(**{f.name: _like(getattr(reference, f.name), value[f.name]) for f in dataclasses.fields(reference)})
    if isinstance(reference, tuple) and isinstance(value, list):
        items = list(reference) or [None]
        return tuple(_like(items[min(i, len(items) - 1)], v) for i, v in enumerate(value))
    return value
