"""The segmenters the suite knows, each described as data: classes, labels, preprocessing, files.

``load_segmenter(name, checkpoints)`` builds the network, checks each file's sha256 against the
spec's table and loads it strictly. ``build_network(name)`` gives the same network with random
weights in the original checkpoint's key layout (what the tests save and load back).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import torch

from smisbench.errors import SmisbenchError, UnknownNameError, WeightsError
from smisbench.segmenters.checkpoints import CheckpointFile

CheckpointPaths = Mapping[str, "str | Path"]


@dataclass(frozen=True)
class SegmenterSpec:
    """Everything needed to run and cite one segmenter.

    ``classes`` are the evaluation classes its predictions are scored in; ``label_convention``
    names how the dataset's stored label maps become those classes; ``checkpoints`` lists the
    released files per role (one role for most, ``encoder`` + ``decoder`` for CSAIL's UperNet).
    """

    name: str
    dataset: str
    classes: tuple[str, ...]
    label_convention: str
    preprocessing: Mapping[str, Any]
    checkpoints: tuple[CheckpointFile, ...]
    build: Callable[[], torch.nn.Module]
    load: Callable[..., Any]
    ignore_index: int = 255
    backend: str = "native"
    reference: str = ""
    published: str = ""
    notes: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c.role for c in self.checkpoints))

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dataset": self.dataset,
            "backend": self.backend,
            "num_classes": len(self.classes),
            "ignore_index": self.ignore_index,
            "label_convention": self.label_convention,
            "preprocessing": dict(self.preprocessing),
            "checkpoints": [
                {"role": c.role, "filename": c.filename, "url": c.url, "sha256": c.sha256, "note": c.note}
                for c in self.checkpoints
            ],
            "reference": self.reference,
            "published": self.published,
            "notes": self.notes,
        }


_REGISTRY: dict[str, SegmenterSpec] = {}
_BUILTINS_LOADED = False


def register(spec: SegmenterSpec) -> SegmenterSpec:
    """Add a segmenter (built-ins register themselves; users may add their own)."""
    _REGISTRY[spec.name] = spec
    return spec


def _load_builtins() -> None:
    global _BUILTINS_LOADED
    if _BUILTINS_LOADED:
        return
    _BUILTINS_LOADED = True
    from smisbench.segmenters import csail_upernet, drn, graphonomy, mmseg_backend, synthetic_fcn

    for spec in (csail_upernet.SPEC, drn.SPEC, graphonomy.SPEC, *mmseg_backend.SPECS, synthetic_fcn.SPEC):
        _REGISTRY.setdefault(spec.name, spec)


def segmenter_names() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)


def get_spec(name: str) -> SegmenterSpec:
    _load_builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownNameError("segmenter", name, list(_REGISTRY)) from None


def build_network(name: str) -> torch.nn.Module:
    """The network with random weights, in the released checkpoint's module/key layout."""
    return get_spec(name).build()


def resolve_checkpoints(spec: SegmenterSpec, given: Iterable[str] | CheckpointPaths) -> dict[str, Path]:
    """Turn CLI-style inputs into ``{role: path}``.

    Accepts a mapping, ``role=PATH`` strings, a single bare path for a one-file segmenter, or a
    directory holding the released file names.
    """
    roles = spec.roles
    if isinstance(given, Mapping):
        items = {str(k): Path(v) for k, v in given.items()}
    else:
        items = {}
        for entry in given:
            role, sep, path = str(entry).partition("=")
            if sep and role in roles:
                items[role] = Path(path)
            elif Path(entry).is_dir():
                for ckpt in spec.checkpoints:
                    candidate = Path(entry) / ckpt.filename
                    if candidate.is_file():
                        items.setdefault(ckpt.role, candidate)
            elif len(roles) == 1:
                items[roles[0]] = Path(entry)
            else:
                raise SmisbenchError(
                    f"{spec.name} needs one file per role ({', '.join(roles)}); got the bare path {entry}",
                    f"pass them as {' '.join(f'--checkpoint {r}=PATH' for r in roles)} or pass a folder holding "
                    + ", ".join(c.filename for c in spec.checkpoints),
                )
    unknown = sorted(set(items) - set(roles))
    if unknown:
        raise SmisbenchError(f"{spec.name} has no checkpoint role(s) {unknown}", f"its roles are: {', '.join(roles)}")
    missing = [r for r in roles if r not in items]
    if missing:
        files = [c for c in spec.checkpoints if c.role in missing]
        raise WeightsError(
            f"{spec.name}: no checkpoint given for {', '.join(missing)}",
            "download " + "; ".join(f"{c.role}: {c.filename} from {c.url}" for c in files)
            + " and pass the local path(s) with --checkpoint (no download happens at run time)",
        )
    return items


def load_segmenter(name: str, checkpoints: Iterable[str] | CheckpointPaths, *, device: str = "cpu",
                   multi_scale: bool | None = None, expected_sha256: Mapping[str, str] | None = None,
                   allowed_globals: Iterable[str] = (), **options: Any):
    """Build ``name``, verify and strictly load its checkpoint(s), and return a ready ``Segmenter``."""
    spec = get_spec(name)
    paths = resolve_checkpoints(spec, checkpoints)
    return spec.load(spec, paths, device=device, multi_scale=multi_scale,
                     expected_sha256=dict(expected_sha256 or {}), allowed_globals=tuple(allowed_globals), **options)
