"""Shipped zoo checkpoints: where they live, how they are stored (float16) and loaded, their manifests.

Layout of a zoo folder (the shipped one is ``smisbench/zoo/checkpoints/``, package data):
``<id>.pt`` (a smisbench model bundle, or the segmenter's state dict) and ``<id>.json`` (its
manifest: the command, settings, commit, device, wall time, losses, sha256, parameter counts).

Storage: model bundles keep every floating tensor in float16 (integer buffers as they are), which
halves the size; :func:`load_checkpoint` builds the float32 network and ``load_state_dict``
casts the values back. The manifest records the storage and the largest output difference the
cast made when the file was written (``float16_check``). The segmenter is stored as trained
(float32; it is small). Every zoo checkpoint is loaded through :func:`load_checkpoint`, the one
call into ``smisbench.models.checkpoints`` for zoo files.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch

from smisbench.errors import SmisbenchError, WeightsError
from smisbench.io import atomic_write_text, sha256_file
from smisbench.packaged import packaged_file

FORMAT = "smisbench-zoo-manifest/1"
STORAGE_NOTE = "float16 state dict (floating tensors; integer buffers unchanged); loading casts back to float32"


def shipped_dir() -> Path:
    """The zoo folder that ships with the package (tracked in git, installed as package data)."""
    return Path(str(packaged_file("smisbench.zoo", "checkpoints")))


def checkpoint_path(folder: str | Path, ident: str) -> Path:
    return Path(folder) / f"{ident}.pt"


def manifest_path(folder: str | Path, ident: str) -> Path:
    return Path(folder) / f"{ident}.json"


def load_checkpoint(path: str | Path) -> tuple[Any, dict[str, Any]]:
    """A zoo model bundle as a float32 model (strict load); the one place zoo model files are read."""
    from smisbench.models.checkpoints import load_bundle

    model, info = load_bundle(path)
    return model.float(), info


def save_float16(model: Any, path: str | Path, extra: dict[str, Any]) -> None:
    """Write ``model`` as a bundle with float16 floating tensors (the model itself is not changed)."""
    from smisbench.models.checkpoints import save_bundle

    half = copy.deepcopy(model).cpu().half()
    half.model_name = model.model_name
    save_bundle(path, half, model.config, {**extra, "storage": STORAGE_NOTE})


@torch.no_grad()
def float16_check(model: Any, path: str | Path, dataset: Any, items: int = 4, seed: int = 0) -> dict[str, float]:
    """Largest and mean |difference| (in [-1, 1] units) between ``model`` and the stored float16 file's outputs."""
    reloaded, _ = load_checkpoint(path)
    model, reloaded = model.eval(), reloaded.eval()
    label = torch.stack([dataset[i]["label"] for i in range(min(items, len(dataset)))])
    semantics = model.semantics(label)
    z = model.sample_z(label.shape[0], torch.Generator().manual_seed(seed))
    a, b = model.generate(semantics, z).float(), reloaded.generate(reloaded.semantics(label), z).float()
    diff = (a - b).abs()
    return {"max_abs": float(diff.max()), "mean_abs": float(diff.mean()), "items": int(label.shape[0])}


def write_manifest(folder: str | Path, ident: str, manifest: dict[str, Any]) -> Path:
    path = manifest_path(folder, ident)
    atomic_write_text(path, json.dumps({"format": FORMAT, **manifest}, indent=2, sort_keys=False, default=str) + "\n")
    return path


def read_manifest(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise SmisbenchError(f"cannot read zoo manifest {path}: {err}",
                             "restore it from git, or retrain the entry with `smisbench zoo train`") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise SmisbenchError(f"{path} is not a zoo manifest ({FORMAT})", "retrain the entry with `smisbench zoo train`")
    return data


def manifests(folder: str | Path) -> dict[str, dict[str, Any]]:
    """Every manifest in ``folder`` by entry id (an absent folder has none)."""
    folder = Path(folder)
    if not folder.is_dir():
        return {}
    return {p.stem: read_manifest(p) for p in sorted(folder.glob("*.json"))}


def checked_file(folder: str | Path, ident: str) -> tuple[Path, dict[str, Any]]:
    """The checkpoint of ``ident`` and its manifest, after checking the file's sha256 against the manifest."""
    manifest = read_manifest(manifest_path(folder, ident))
    path = checkpoint_path(folder, ident)
    if not path.is_file():
        raise WeightsError(f"zoo checkpoint {path} is missing (its manifest is there)",
                           "restore it from git (git lfs is not used) or retrain with `smisbench zoo train`")
    digest = sha256_file(path)
    if digest != manifest["file"]["sha256"]:
        raise WeightsError(f"zoo checkpoint {path} has sha256 {digest[:12]}..., its manifest says "
                           f"{manifest['file']['sha256'][:12]}...", "restore the file from git or retrain the entry")
    return path, manifest


def load_zoo_model(ident: str, folder: str | Path | None = None) -> tuple[Any, dict[str, Any]]:
    """A zoo model by id, sha256-checked and strictly loaded (float32)."""
    folder = Path(folder) if folder is not None else shipped_dir()
    if not manifest_path(folder, ident).is_file():
        raise SmisbenchError(f"no zoo checkpoint {ident!r} in {folder}",
                             f"train it with `smisbench zoo train --models {ident}`, or pass --weights FILE")
    path, manifest = checked_file(folder, ident)
    model, _ = load_checkpoint(path)
    return model, manifest


def total_bytes(folder: str | Path) -> int:
    folder = Path(folder)
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file()) if folder.is_dir() else 0
