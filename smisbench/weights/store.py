"""The store itself: its manifest, the check of each stored file against the pinned table, ``require``.

Every pretrained file a metric loads comes from here, never from a run-time download; a file
is trusted when it is the pinned file or the manifest shows it was installed from an accepted
source with the pinned content.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from smisbench.errors import WeightsError
from smisbench.io import atomic_write_text, sha256_file
from smisbench.weights.locations import dir_flag, weights_dir
from smisbench.weights.pinned import PINNED, PinnedWeights, pinned

MANIFEST = "manifest.json"


@dataclass
class FileStatus:
    """What ``verify`` found for one pinned file."""

    name: str
    path: Path
    state: str  # "ok", "missing", "corrupt"
    sha256: str | None = None
    origin: str | None = None
    problem: str | None = None
    fix: str | None = None


def read_manifest(store: Path) -> dict[str, dict]:
    path = store / MANIFEST
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_manifest(store: Path, manifest: dict[str, dict]) -> None:
    atomic_write_text(store / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def _accepted(entry: PinnedWeights, record: dict | None, file_sha: str) -> bool:
    """A stored file is trusted when it is the pinned file, or the manifest shows pinned content or a canonical source."""
    if file_sha == entry.sha256:
        return True
    if not record or record.get("sha256") != file_sha:
        return False
    if record.get("content_sha256") == entry.content_sha256:
        return True
    return record.get("source_sha256") in {c.sha256 for c in entry.canonical}


_HASH_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha(path: Path) -> str:
    """sha256 of a file, remembered per (path, size, mtime) for the life of the process."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _HASH_CACHE:
        _HASH_CACHE[key] = sha256_file(path)
    return _HASH_CACHE[key]


def check_file(entry: PinnedWeights, store: Path, manifest: dict | None = None) -> FileStatus:
    path = store / entry.filename
    manifest = read_manifest(store) if manifest is None else manifest
    record = manifest.get(entry.name)
    if not path.exists():
        return FileStatus(entry.name, path, "missing", problem=f"{entry.name}: {path} is missing",
                          fix=f"smisbench weights install{dir_flag(store)}")
    sha = file_sha(path)
    if not _accepted(entry, record, sha):
        return FileStatus(
            entry.name, path, "corrupt", sha256=sha,
            problem=f"{entry.name}: {path} has sha256 {sha}, which matches neither the pinned {entry.sha256} "
            "nor a verified installation (corrupt, truncated or replaced)",
            fix=f"smisbench weights install --force --only {entry.name}{dir_flag(store)}",
        )
    origin = (record or {}).get("origin", f"{entry.source.requirement}:{entry.member}")
    return FileStatus(entry.name, path, "ok", sha256=sha, origin=origin)


def verify(store_dir: str | os.PathLike | None = None, names: Iterable[str] | None = None) -> list[FileStatus]:
    """Recheck every pinned file (or ``names``) of the store; nothing is raised, problems are reported."""
    store = weights_dir(store_dir)
    manifest = read_manifest(store)
    entries = PINNED if names is None else tuple(pinned(n) for n in names)
    return [check_file(entry, store, manifest) for entry in entries]


def require(name: str, store_dir: str | os.PathLike | None = None) -> tuple[Path, str]:
    """The verified path and sha256 of one pinned file, or a WeightsError that says which file and the fix."""
    entry = pinned(name)
    status = check_file(entry, weights_dir(store_dir))
    if status.state != "ok":
        raise WeightsError(status.problem, status.fix)
    return status.path, status.sha256
