"""Checkpoint files: safe reading, strict name/shape comparison, and smisbench bundles on disk.

These are the pieces; :mod:`smisbench.models.loader` puts them together into the one loader
every command, the harness and the Python API use.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn

from smisbench.errors import SmisbenchError, WeightsError
from smisbench.io import atomic_torch_save, sha256_file

# official checkpoint names per part: checkpoints/<name>/latest_net_{G,E,D}.pth
OFFICIAL_FILES = {"G": "latest_net_G.pth", "E": "latest_net_E.pth", "D": "latest_net_D.pth"}
BUNDLE_FORMAT = "smisbench-model/1"
CLEAN_FILE_FIX = ("use the file from the model's official release (checkpoints/<name>/latest_net_G.pth) "
                  "or a bundle written by `smisbench train` / `smisbench import-checkpoint`, and compare its sha256")


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
        """Every difference, one kind per line (``inspect-checkpoint``)."""
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

    def summary(self, limit: int = 3) -> str:
        """The first differences of each kind on one line (for an ``error:`` line)."""
        def first(items: list[str]) -> str:
            return ", ".join(items[:limit]) + (f" (+{len(items) - limit} more)" if len(items) > limit else "")

        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} missing keys: {first(self.missing)}")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected keys: {first(self.unexpected)}")
        if self.wrong_shape:
            shapes = [f"{k} (file {tuple(a)}, network {tuple(b)})" for k, a, b in self.wrong_shape]
            parts.append(f"{len(shapes)} mis-shaped keys: {first(shapes)}")
        return "; ".join(parts) or "fits"


_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def safe_load(path: str | os.PathLike) -> Any:
    """``torch.load`` with the weights-only unpickler; a file that holds code is refused, never run."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"checkpoint {path} does not exist",
                           "check the path (official files are checkpoints/<name>/latest_net_G.pth)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = _GLOBAL.search(str(err))
        if found:  # torch's own text would suggest turning safety off: say what the file holds instead
            raise WeightsError(
                f"{path} holds pickled Python code ({found.group(1)}) that safe loading refuses to run",
                "do not run this file; " + CLEAN_FILE_FIX) from None
        raise WeightsError(f"cannot read checkpoint {path}: not a torch file, or corrupt", CLEAN_FILE_FIX) from None
    except Exception as err:  # truncated zip, wrong magic number, I/O error
        reason = str(err).split(".")[0].strip()
        raise WeightsError(f"cannot read checkpoint {path}: {reason}", "download the file again and compare its sha256") from None


def is_bundle(payload: Any) -> bool:
    return isinstance(payload, Mapping) and payload.get("format") == BUNDLE_FORMAT


def tensors_of(obj: Any, source: str) -> dict[str, torch.Tensor]:
    """The state dict inside a loaded official file (plain, or under ``state_dict``/``model``/``netG``)."""
    for key in ("state_dict", "model", "netG"):
        if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{source} holds no state dict of tensors", "pass a latest_net_*.pth file or a smisbench bundle")
    return dict(obj)


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state dict from an official checkpoint file, read safely."""
    return tensors_of(safe_load(path), str(path))


def strip_prefix(state: dict[str, torch.Tensor], prefix: str = "module.") -> tuple[dict[str, torch.Tensor], str | None]:
    """Names without the ``module.`` that ``nn.DataParallel`` adds when every key has it."""
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


def load_state(network: nn.Module, state: dict[str, torch.Tensor], source: str, what: str,
               legacy_filter: Callable[[dict], tuple[dict, list[str]]] | None = None) -> FitReport:
    """Load ``state`` strictly; a misfit names its first missing, unexpected and mis-shaped keys."""
    report, state = compare(network, state, source, legacy_filter)
    if not report.fits:
        raise WeightsError(f"{source} does not fit {what}: {report.summary()}",
                           "pass the --model/--dataset (and part) the file was trained with; "
                           "`smisbench inspect-checkpoint` lists every difference")
    network.load_state_dict(state, strict=True)
    return report


def load_into(
    network: nn.Module,
    path: str | os.PathLike,
    legacy_filter: Callable[[dict], tuple[dict, list[str]]] | None = None,
) -> FitReport:
    """Load one official checkpoint file into ``network`` with ``strict=True``."""
    report = load_state(network, read_state_dict(path), str(path), type(network).__name__, legacy_filter)
    report.sha256 = sha256_file(path)
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
    """Write model weights with their config and provenance atomically (read back by the loader)."""
    payload = {
        "format": BUNDLE_FORMAT,
        "model": model.model_name,
        "config": json.dumps(dataclasses.asdict(config), default=list),
        "state_dict": model.state_dict(),
        "extra": json.dumps(extra or {}),
    }
    atomic_torch_save(payload, path)


def load_bundle(path: str | os.PathLike) -> tuple[nn.Module, dict]:
    """Rebuild whatever model a smisbench bundle holds (strict load), with its info (sha256 and extras)."""
    from smisbench.models.loader import load_model

    loaded = load_model(path)
    return loaded.model, loaded.info
