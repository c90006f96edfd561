"""Keep freed CPU tensor memory in the process instead of handing it back to the OS after every op.

glibc serves every allocation above its mmap threshold (at most 32 MiB) with a fresh ``mmap`` and
unmaps it on free. A 256x256 activation of 320 float32 channels is 84 MB, so on the CPU each such
intermediate tensor is page-faulted in and zeroed by the kernel again, op after op: on this project's
2-core machine the work around GroupDNet's convolutions took 1.39 s per DeepFashion image that way
and 0.53 s without it (``docs/bench/bench_2026-12-01c_official_*.json``). With mmap disabled and the
heap never trimmed (not even with gigabytes free at its top, as after a batch of 16 at 256x256),
freed blocks are reused at once. The numbers computed do not change, only where
the bytes live; the cost is that the process keeps its peak memory until it exits, which suits an
evaluation process.

Set ``SMISBENCH_HOST_MALLOC=system`` to leave the C library's defaults alone.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
import sys
from collections.abc import Iterator

_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
_M_MMAP_THRESHOLD = -3
_M_MMAP_MAX = -4
# glibc's defaults once its dynamic threshold has settled on a workload of tensors above 32 MiB: the
# mmap threshold at its cap (32 MiB), trimming at twice that, mmap allowed (65536 maps)
_SETTLED_DEFAULTS = ((_M_MMAP_MAX, 65536), (_M_MMAP_THRESHOLD, 32 * 2**20), (_M_TRIM_THRESHOLD, 64 * 2**20))
_REUSE = ((_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, -1))  # -1 is read as SIZE_MAX: never trim
_state: str | None = None


@functools.cache
def _mallopt():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt


def _apply(settings: tuple[tuple[int, int], ...]) -> bool:
    mallopt = _mallopt()
    return mallopt is not None and all(mallopt(param, value) == 1 for param, value in settings)


def keep_freed_memory() -> str:
    """Switch glibc to heap-only, untrimmed allocation once per process; returns the mode in force.

    ``"reuse"`` when switched, ``"system"`` when opted out or not on glibc (macOS, musl, Windows keep
    their allocator and only lose speed).
    """
    global _state
    if _state is not None:
        return _state
    _state = "system"
    if os.environ.get("SMISBENCH_HOST_MALLOC", "reuse") == "system" or not sys.platform.startswith("linux"):
        return _state
    if _apply(_REUSE):
        _state = "reuse"
    return _state


@contextlib.contextmanager
def system_malloc() -> Iterator[None]:
    """Run a block under glibc's own (settled) behaviour, then switch back: for timing code as its
    users run it (the official SMIS code) beside ours in one process. Slightly favours that code:
    freed heap blocks from before stay reusable."""
    if _state != "reuse":
        yield
        return
    _apply(_SETTLED_DEFAULTS)
    try:
        yield
    finally:
        _apply(_REUSE)


def host_malloc_mode() -> str:
    """The mode recorded in provenance: what :func:`keep_freed_memory` set, or ``"system"``."""
    return _state or "system"
