"""Where smisbench keeps files on the user's machine: one cache root for every cache.

Weights, FID statistics and suite-trained segmenters all live under it, so a user who moves
their caches with ``XDG_CACHE_HOME`` (as the XDG base-directory convention says) moves all of them.
This module imports nothing of the suite, so any package may use it.
"""

from __future__ import annotations

import os
from pathlib import Path


def xdg_cache_home() -> Path:
    """``$XDG_CACHE_HOME`` when set and not empty, else ``~/.cache`` (the base of smisbench's and torch's caches)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"))


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/smisbench``, else ``~/.cache/smisbench``."""
    return xdg_cache_home() / "smisbench"
