"""Loading segmenter checkpoints safely: sha256 against a table, safe unpickling, strict key checks.

Why strict: the original loaders of these networks load with ``strict=False`` (CSAIL) or skip
unknown and mis-shaped keys (Graphonomy), so a wrong file silently gives a half-random network
and a meaningless mIoU. Here every parameter must come from the file; only buffers the
original networks never read at inference (``num_batches_tracked``, sync-BN bookkeeping) may
be absent. Unpickling is always ``weights_only=True``; extra globals (numpy arrays in
mmengine metadata) are allowed only inside the load, never process-wide.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch

from smisbench.errors import WeightsError
from smisbench.io import sha256_file


@dataclass(frozen=True)
class CheckpointFile:
    """One released file a segmenter accepts for ``role``.

    ``sha256`` is the full digest, or a published prefix of it (OpenMMLab file names end in the
    first 8 hex digits), or None when nobody has pinned the file yet.
    """

    role: str
    filename: str
    url: str
    sha256: str | None = None
    note: str = ""

    def matches(self, digest: str) -> bool:
        return self.sha256 is not None and digest.startswith(self.sha256.lower())


@dataclass
class LoadedCheckpoint:
    """What was loaded and how far it could be verified; goes into every score's provenance."""

    role: str
    path: str
    sha256: str
    status: str  # "pinned", "pinned-prefix", "user-pinned" or "unpinned"
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"role": self.role, "path": self.path, "sha256": self.sha256, "status": self.status,
                "warnings": list(self.warnings)}


def verify_checksum(path: str | Path, role: str, accepted: Sequence[CheckpointFile], segmenter: str,
                    expected_sha256: str | None = None) -> LoadedCheckpoint:
    """Hash ``path`` and check it against the user's pin or the segmenter's table.

    A mismatch with a pin (the user's, or the table entry whose file name is the same) raises
    WeightsError; a digest nobody pinned is accepted with a warning kept in the provenance.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(
            f"{segmenter}: checkpoint file for {role!r} not found: {path}",
            _where_to_get(role, accepted),
        )
    digest = sha256_file(path)
    if expected_sha256:
        if not digest.startswith(expected_sha256.lower()):
            raise WeightsError(
                f"{segmenter}: {path} has sha256 {digest}, but {expected_sha256} was required",
                "the file is corrupt, truncated or a different release; download it again or fix the pinned sha256",
            )
        return LoadedCheckpoint(role, str(path), digest, "user-pinned")
    candidates = [c for c in accepted if c.role == role]
    for entry in candidates:
        if entry.matches(digest):
            status = "pinned" if len(entry.sha256 or "") == 64 else "pinned-prefix"
            return LoadedCheckpoint(role, str(path), digest, status)
    for entry in candidates:
        if entry.sha256 is not None and entry.filename == path.name:
            raise WeightsError(
                f"{segmenter}: {path} has sha256 {digest}, but the released {entry.filename} has "
                f"sha256 {entry.sha256}{'...' if len(entry.sha256) < 64 else ''}",
                f"the file is corrupt, truncated or a different release; download it again from {entry.url}",
            )
    message = (f"{segmenter}: sha256 {digest} of {path.name} ({role}) is not in the table of released files; "
               "its scores cannot be compared with published numbers unless the file is the released one")
    warnings.warn(message, stacklevel=3)
    return LoadedCheckpoint(role, str(path), digest, "unpinned", [message])


def _where_to_get(role: str, accepted: Sequence[CheckpointFile]) -> str:
    known = [c for c in accepted if c.role == role]
    if not known:
        return "pass the path of the checkpoint file"
    return "download " + " or ".join(f"{c.filename} from {c.url}" for c in known) + " and pass its local path"


def numpy_safe_globals() -> list[Any]:
    """The numpy objects that array-holding checkpoint metadata needs, under numpy 1 and 2 names."""
    import numpy as np

    try:
        multiarray = np._core.multiarray  # numpy >= 2
    except AttributeError:  # pragma: no cover - numpy 1
        multiarray = np.core.multiarray
    allowed: list[Any] = [np.ndarray, np.dtype, multiarray._reconstruct, multiarray.scalar]
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed.append((multiarray._reconstruct, f"{module}._reconstruct"))
        allowed.append((multiarray.scalar, f"{module}.scalar"))
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        allowed += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType")]
    return allowed


def _resolve_global(dotted: str) -> Any:
    import importlib

    module, _, name = dotted.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        raise WeightsError(f"cannot import {dotted!r}, named as an allowed checkpoint global",
                           "give the full dotted name of a class or function, e.g. numpy.dtype") from None


def load_checkpoint_file(path: str | Path, *, allow_numpy: bool = False, allowed_globals: Iterable[str] = (),
                         source: str = "checkpoint") -> Any:
    """``torch.load(..., weights_only=True)`` with extra globals allowed only for this call."""
    extra: list[Any] = numpy_safe_globals() if allow_numpy else []
    extra += [_resolve_global(name) for name in allowed_globals]
    try:
        if extra:
            with torch.serialization.safe_globals(extra):
                return torch.load(path, map_location="cpu", weights_only=True)
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a foreign or truncated file
        names = sorted(set(re.findall(r"GLOBAL ([\w.]+)", str(err))))
        if names:
            raise WeightsError(
                f"{source} {path} holds {', '.join(names)}, which safe loading (weights_only=True) refuses",
                "if you trust the file, allow exactly these names (CLI: --allow-global NAME; Python: "
                "allowed_globals=[...]); or re-save only its state_dict",
            ) from None
        raise WeightsError(
            f"{source} {path} is not a readable PyTorch checkpoint ({type(err).__name__}: {str(err)[:200]})",
            "the download is probably truncated or an error page; download the file again",
        ) from None


def extract_state_dict(obj: Any, source: str, strip_prefix: str = "module.") -> dict[str, torch.Tensor]:
    """The tensor mapping inside a checkpoint: a bare state_dict or the ``state_dict`` / ``model`` entry."""
    if isinstance(obj, Mapping) and obj and not all(isinstance(v, torch.Tensor) for v in obj.values()):
        for key in ("state_dict", "model", "net"):
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(
            f"{source} holds no state_dict (a mapping of parameter names to tensors)",
            "pass the released checkpoint file of this segmenter, not a whole pickled model or another file",
        )
    state = dict(obj)
    if strip_prefix and all(k.startswith(strip_prefix) for k in state):
        state = {k[len(strip_prefix):]: v for k, v in state.items()}  # saved from nn.DataParallel
    return state


def inference_unused_buffer(key: str) -> bool:
    """Buffers old checkpoints may lack and that eval-mode inference never reads."""
    return key.endswith(("num_batches_tracked", "_tmp_running_mean", "_tmp_running_var", "_running_iter"))


def load_state_dict_strict(module: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str,
                           optional: Callable[[str], bool] = inference_unused_buffer) -> None:
    """Load ``state`` into ``module``, refusing any missing, unexpected or mis-shaped entry.

    Keys for which ``optional(key)`` is true may be absent from the file (the module keeps its own value).
    """
    own = module.state_dict()
    missing = [k for k in own if k not in state and not optional(k)]
    unexpected = [k for k in state if k not in own]
    misshaped = [f"{k} {tuple(state[k].shape)} (expected {tuple(own[k].shape)})"
                 for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or misshaped:
        parts = []
        for label, items in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)):
            if items:
                shown = ", ".join(items[:5]) + (f", ... ({len(items)} in all)" if len(items) > 5 else "")
                parts.append(f"{len(items)} {label}: {shown}")
        raise WeightsError(
            f"{source} does not fit the network: " + "; ".join(parts),
            "pass the released checkpoint of this segmenter (see `smisbench segmenters`); "
            "a file from another architecture, class count or training script cannot be scored",
        )
    complete = {k: state.get(k, v) for k, v in own.items()}
    module.load_state_dict(complete, strict=True)
