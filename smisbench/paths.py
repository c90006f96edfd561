"""Where smisbench keeps files on the user's machine: one cache root for every cache.

Weights, FID statistics and suite-trained segmenters all live under it, so a user who moves
their caches with ``XDG_CACHE_HOME`` (as the XDG base-directory convention says) moves all of them.
This module imports nothing of the suite, so any package may use it.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/smisbench`` when that variable is set and not empty, else ``~/.cache/smisbench``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "smisbench"
