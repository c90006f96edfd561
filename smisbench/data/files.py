"""Finding and pairing dataset files, with errors that name the first offending files.

Readers list label maps, images and instance maps from folders and pair them by a key
(the basename without extension, or a Cityscapes frame id). A user whose copy of a dataset
is incomplete must learn *which* files are missing, so every check here lists the first few.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Iterable

from smisbench.errors import SmisbenchError
from smisbench.image_io import IMAGE_SUFFIXES

SHOW_FIRST = 5


def natural_key(text: str) -> list:
    """Sort "img2" before "img10" (the order the official loaders use)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


def first_few(paths: Iterable[object], limit: int = SHOW_FIRST) -> str:
    """The first ``limit`` items as a comma-separated list, with a count of the rest."""
    items = [str(p) for p in paths]
    shown = ", ".join(items[:limit])
    more = len(items) - limit
    return shown + (f" (and {more} more)" if more > 0 else "")


def require_dir(path: Path, what: str, fix: str) -> Path:
    """``path`` if it is a folder, else an error saying what was expected there."""
    if not path.is_dir():
        raise SmisbenchError(f"{what} folder {path} does not exist", fix)
    return path


def list_files(folder: Path, suffixes: tuple[str, ...] = IMAGE_SUFFIXES, recursive: bool = False,
               endswith: str = "") -> list[Path]:
    """Files in ``folder`` whose names end in ``endswith`` plus one of ``suffixes``, naturally sorted."""
    pattern = "**/*" if recursive else "*"
    found = [
        p for p in folder.glob(pattern)
        if p.is_file() and p.suffix.lower() in suffixes and p.name[: -len(p.suffix)].endswith(endswith)
    ]
    return sorted(found, key=lambda p: natural_key(str(p.relative_to(folder))))


def stem_key(path: Path) -> str:
    """Pairing key of the SMIS/SPADE readers: the file name without its extension."""
    return path.name[: -len(path.suffix)] if path.suffix else path.name


def index_by_key(paths: list[Path], key: Callable[[Path], str], what: str) -> dict[str, Path]:
    """Map key -> path, refusing two files with the same key (e.g. ``a.jpg`` and ``a.png``)."""
    index: dict[str, Path] = {}
    clashes: list[str] = []
    for path in paths:
        k = key(path)
        if k in index:
            clashes.append(f"{index[k]} / {path}")
        else:
            index[k] = path
    if clashes:
        raise SmisbenchError(
            f"{len(clashes)} {what} share a name with another {what[:-1] if what.endswith('s') else what}: "
            f"{first_few(clashes)}",
            "keep one file per name (remove duplicates with other extensions)",
        )
    return index


def pair_files(
    labels: dict[str, Path],
    images: dict[str, Path],
    label_dir: Path,
    image_dir: Path,
    extra: dict[str, tuple[dict[str, Path], Path]] | None = None,
) -> list[tuple[str, dict[str, Path]]]:
    """Match label maps with images (and ``extra`` kinds such as instance maps) by key.

    Every unmatched file on either side is an error: a silently dropped image would change
    the dataset a number was measured on.
    """
    problems: list[str] = []
    only_labels = sorted(set(labels) - set(images), key=natural_key)
    only_images = sorted(set(images) - set(labels), key=natural_key)
    if only_labels:
        problems.append(
            f"{len(only_labels)} label maps in {label_dir} have no image in {image_dir}: "
            f"{first_few(labels[k].name for k in only_labels)}"
        )
    if only_images:
        problems.append(
            f"{len(only_images)} images in {image_dir} have no label map in {label_dir}: "
            f"{first_few(images[k].name for k in only_images)}"
        )
    for kind, (files, folder) in (extra or {}).items():
        missing = sorted(set(labels) - set(files), key=natural_key)
        if missing:
            problems.append(
                f"{len(missing)} label maps have no {kind} map in {folder}: {first_few(labels[k].name for k in missing)}"
            )
    if problems:
        raise SmisbenchError(
            "the dataset's files do not pair up:\n  " + "\n  ".join(problems),
            "restore the missing files, or remove the unmatched ones so that every label map has its image",
        )
    pairs = []
    for key in sorted(labels, key=natural_key):
        entry = {"label": labels[key], "image": images[key]}
        for kind, (files, _) in (extra or {}).items():
            entry[kind] = files[key]
        pairs.append((key, entry))
    return pairs


def refuse_empty(pairs: list, where: str, fix: str) -> None:
    if not pairs:
        raise SmisbenchError(f"no image/label pairs found in {where}", fix)
