"""The segmenters the suite knows, each described as data (:class:`~smisbench.segmenters.base.SegmenterSpec`).

``load_segmenter(name, checkpoints)`` builds the network, checks each file's sha256 against the
spec's table and loads it strictly. ``build_network(name)`` gives the same network with random
weights in the original checkpoint's key layout (what the tests save and load back).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

import torch

from smisbench.errors import SmisbenchError, WeightsError
from smisbench.registry import SEGMENTERS
from smisbench.segmenters.base import SegmenterSpec

__all__ = ["SegmenterSpec", "register", "segmenter_names", "get_spec", "build_network", "resolve_checkpoints",
           "load_segmenter"]

CheckpointPaths = Mapping[str, "str | Path"]


def register(spec: SegmenterSpec, replace: bool = False) -> SegmenterSpec:
    """Add a segmenter under ``spec.name`` (a taken name raises unless ``replace``).

    Built-ins register in their own modules, listed in :data:`smisbench.registry.SEGMENTERS`.
    """
    return SEGMENTERS.register(spec.name, spec, replace)


def segmenter_names() -> list[str]:
    return sorted(SEGMENTERS.names())


def get_spec(name: str) -> SegmenterSpec:
    return SEGMENTERS.get(name)


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
