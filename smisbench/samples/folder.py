"""Opening a sample folder (``smisbench.samples.layout``): the manifest and every file checked, each
problem named with its fix, before anything is scored."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from smisbench.data.files import first_few
from smisbench.datasets_config import DatasetConfig
from smisbench.errors import SmisbenchError
from smisbench.imaging import from_uint8
from smisbench.labels import validate_label_map
from smisbench.samples import layout

LAYOUT_FIX = ("write every map's label.png, global/ (k samples) and one class_CCC/ folder of n samples per class "
              "in its label map (docs/sample_folders.md); `smisbench export-samples` writes this layout")


@dataclass(frozen=True)
class Manifest:
    """What manifest.json says (see ``layout``)."""

    dataset: str
    split: str
    codes: str
    classes: tuple[int, ...]
    n: int
    k: int
    seed: int
    maps: tuple[int, ...]
    model: dict[str, Any]
    image_size: tuple[int, int] | None = None
    dataset_options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {"format": layout.FORMAT, "version": layout.VERSION, "dataset": self.dataset, "split": self.split,
               "dataset_options": self.dataset_options, "codes": self.codes, "classes": list(self.classes),
               "n": self.n, "k": self.k, "seed": self.seed, "maps": list(self.maps), "model": self.model}
        if self.image_size is not None:
            out["image_size"] = list(self.image_size)
        return out

    @property
    def model_name(self) -> str:
        return str(self.model.get("name", "unnamed model"))


def _bad(path: Path, problem: str, fix: str | None = None) -> SmisbenchError:
    return SmisbenchError(f"sample manifest {path}: {problem}", fix or "see docs/sample_folders.md for its fields")


def _integer(data: dict, key: str, path: Path, minimum: int) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _bad(path, f"{key!r} must be an integer of at least {minimum}, not {value!r}")
    return value


def _integers(data: dict, key: str, path: Path) -> tuple[int, ...]:
    value = data.get(key)
    if not isinstance(value, list) or any(isinstance(v, bool) or not isinstance(v, int) for v in value):
        raise _bad(path, f"{key!r} must be a list of integers, not {value!r}")
    return tuple(value)


def parse_manifest(data: Any, path: Path) -> Manifest:
    """The manifest's fields, each checked (one error names the first wrong one)."""
    if not isinstance(data, dict):
        raise _bad(path, "is not a JSON object")
    if data.get("format") != layout.FORMAT:
        raise _bad(path, f"format is {data.get('format')!r}, not {layout.FORMAT!r}",
                   f'write "format": "{layout.FORMAT}" (a folder `smisbench export-samples` wrote has it)')
    if data.get("version") != layout.VERSION:
        raise _bad(path, f"version {data.get('version')!r} is not {layout.VERSION}",
                   "write it again with this smisbench version")
    missing = [key for key in ("dataset", "codes", "classes", "n", "k", "seed", "maps", "model") if key not in data]
    if missing:
        raise _bad(path, f"lacks {', '.join(map(repr, missing))}")
    if data["codes"] not in layout.CODES:
        raise _bad(path, f"codes {data['codes']!r} is not one of {', '.join(layout.CODES)}")
    model = data["model"]
    if not isinstance(model, dict) or not isinstance(model.get("name"), str):
        raise _bad(path, 'model must be an object with a "name" string, e.g. {"name": "my-model", "provenance": {}}')
    maps = _integers(data, "maps", path)
    if not maps:
        raise _bad(path, "lists no label maps", "write at least one map folder and list its index under maps")
    if list(maps) != list(range(len(maps))):
        raise _bad(path, f"maps must be the first {len(maps)} label maps of the split in order (0..{len(maps) - 1}), "
                         f"not {first_few(maps)}", "score the split's first maps, as the protocol does")
    size = data.get("image_size")
    if size is not None and (not isinstance(size, list) or len(size) != 2
                             or not all(isinstance(v, int) and v > 0 for v in size)):
        raise _bad(path, f"image_size must be [height, width], not {size!r}")
    codes = data["codes"]
    return Manifest(
        dataset=str(data["dataset"]), split=str(data.get("split", "test")), codes=codes,
        classes=_integers(data, "classes", path), n=_integer(data, "n", path, 1 if codes == "none" else 2),
        k=_integer(data, "k", path, 1), seed=_integer(data, "seed", path, 0), maps=maps, model=model,
        image_size=None if size is None else (size[0], size[1]),
        dataset_options=dict(data.get("dataset_options") or {}),
    )


def read_manifest(root: Path) -> Manifest:
    """The manifest of the sample folder ``root``: an error for a missing folder, an empty one, no manifest."""
    if not root.is_dir():
        raise SmisbenchError(f"sample folder {root} does not exist",
                             "pass the folder `smisbench export-samples --out` wrote "
                             "(or one in the layout of docs/sample_folders.md)")
    path = root / layout.MANIFEST
    if not path.is_file():
        if not any(root.iterdir()):
            raise SmisbenchError(f"sample folder {root} is empty",
                                 "write samples into it first: `smisbench export-samples --out DIR`, or your "
                                 "model's PNGs in the layout of docs/sample_folders.md")
        raise SmisbenchError(f"sample folder {root} has no {layout.MANIFEST}",
                             f"write {layout.MANIFEST} naming the dataset, classes, n, k, seed and the model "
                             "(docs/sample_folders.md); an export that was interrupted writes none: run it again")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _bad(path, f"is not readable JSON ({err})") from None
    return parse_manifest(data, path)


@dataclass(frozen=True)
class SampleMap:
    """One label map of the folder and the sets it holds."""

    index: int
    folder: Path
    label: torch.Tensor  # (H, W) int64
    classes: tuple[int, ...]  # classes with a class_CCC set here


class SampleFolder:
    """A checked sample folder: its manifest and maps, and the samples read on demand."""

    def __init__(self, root: Path, manifest: Manifest, maps: list[SampleMap], size: tuple[int, int]):
        self.root = root
        self.manifest = manifest
        self.maps = maps
        self.image_size = size

    @classmethod
    def open(cls, root: str | Path, config: DatasetConfig) -> "SampleFolder":
        """Read the manifest and label maps and check every set's files exist (sizes are checked as read)."""
        root = Path(root)
        manifest = read_manifest(root)
        if manifest.dataset != config.name:
            raise SmisbenchError(f"sample folder {root} holds samples of dataset {manifest.dataset!r}, "
                                 f"not {config.name!r}", f"pass --dataset {manifest.dataset}, the dataset they "
                                                         "were generated for")
        wrong = [c for c in manifest.classes if not 0 <= c < config.label_nc]
        if wrong:
            raise _bad(root / layout.MANIFEST, f"classes {first_few(wrong)} are outside {config.name}'s ids "
                                               f"0..{config.label_nc - 1}", "list the dataset's class ids")
        problems: list[str] = []
        maps = [m for m in (_map(root, manifest, index, config, problems) for index in manifest.maps) if m]
        if problems:
            raise SmisbenchError(f"sample folder {root} is incomplete: {len(problems)} problem(s): "
                                 f"{first_few(problems, 4)}", LAYOUT_FIX)
        first = maps[0].folder / layout.GLOBAL / layout.sample_name(0, manifest.k)
        size = manifest.image_size or layout.image_size(first)
        return cls(root, manifest, maps, size)

    def paths(self, sample_map: SampleMap, key: int, indices: torch.Tensor | list[int]) -> list[Path]:
        """Files of samples ``indices`` of class ``key``'s set (``GLOBAL_SET`` = -1: the global set)."""
        if key < 0:
            folder, count = sample_map.folder / layout.GLOBAL, self.manifest.k
        else:
            folder, count = sample_map.folder / layout.class_folder(key), self.manifest.n
        return [folder / layout.sample_name(int(i), count) for i in indices]

    def images(self, sample_map: SampleMap, key: int, indices: torch.Tensor | list[int]) -> torch.Tensor:
        """(len(indices), 3, H, W) float32 in [-1, 1]; a sample of another size than the folder's is an error."""
        out = []
        for path in self.paths(sample_map, key, indices):
            pixels = layout.read_rgb(path)
            if tuple(pixels.shape[-2:]) != tuple(self.image_size):
                h, w = pixels.shape[-2:]
                raise SmisbenchError(
                    f"sample {path} is {h}x{w} (height x width), the folder's samples are "
                    f"{self.image_size[0]}x{self.image_size[1]}",
                    "write every sample of the folder at one size (the manifest's image_size, or that of "
                    "0000/global/000.png)")
            out.append(pixels)
        return from_uint8(torch.stack(out))


def _missing(folder: Path, count: int) -> list[str]:
    return [layout.sample_name(i, count) for i in range(count) if not (folder / layout.sample_name(i, count)).is_file()]


def _map(root: Path, manifest: Manifest, index: int, config: DatasetConfig, problems: list[str]) -> SampleMap | None:
    """One map folder, its problems appended to ``problems`` (None when it cannot be read at all)."""
    folder = root / layout.map_folder(index)
    name = layout.map_folder(index)
    if not (folder / layout.LABEL).is_file():
        problems.append(f"map {name} is missing" if not folder.is_dir() else f"{name}/{layout.LABEL} is missing")
        return None
    label = validate_label_map(layout.read_label(folder / layout.LABEL), config, str(folder / layout.LABEL))[0]
    wanted = sorted(set(torch.unique(label).tolist()) & set(manifest.classes)) if manifest.codes != "none" else []
    present = {p.name for p in folder.iterdir() if p.is_dir() and p.name.startswith("class_")}
    for c in wanted:
        sub = layout.class_folder(c)
        if sub not in present:
            problems.append(f"{name}/{sub} is missing (class {c} is in its label map)")
        elif gaps := _missing(folder / sub, manifest.n):
            problems.append(f"{name}/{sub} lacks {len(gaps)} of its n={manifest.n} samples ({first_few(gaps, 3)})")
    for sub in sorted(present - {layout.class_folder(c) for c in wanted}):
        problems.append(f"{name}/{sub} does not belong there (its class is not in the label map, or not among "
                        "the manifest's classes)")
    if not (folder / layout.GLOBAL).is_dir():
        problems.append(f"{name}/{layout.GLOBAL} is missing")
    elif gaps := _missing(folder / layout.GLOBAL, manifest.k):
        problems.append(f"{name}/{layout.GLOBAL} lacks {len(gaps)} of its k={manifest.k} samples "
                        f"({first_few(gaps, 3)})")
    return SampleMap(index, folder, label, tuple(wanted))
