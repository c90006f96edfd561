"""The one progress bar of the suite: every bar goes through :func:`progress_bar`, so one switch silences all.

``smisbench --no-progress`` (or a command's own ``--no-progress``) sets ``SMISBENCH_NO_PROGRESS=1``;
the variable also works from the shell or a job script, and reaches worker processes (torchrun).
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Iterable, Iterator

NO_PROGRESS_ENV = "SMISBENCH_NO_PROGRESS"


def silenced() -> bool:
    """Whether the environment switches every progress bar off (any value but empty or 0)."""
    return os.environ.get(NO_PROGRESS_ENV, "").strip() not in ("", "0")


def silence() -> None:
    """Switch every progress bar off for this process and the processes it starts."""
    os.environ[NO_PROGRESS_ENV] = "1"


@contextlib.contextmanager
def silenced_while(active: bool) -> Iterator[None]:
    """Every bar off inside the block when ``active`` (the CLI's switch); the environment is restored after."""
    if not active:
        yield
        return
    before = os.environ.get(NO_PROGRESS_ENV)
    silence()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(NO_PROGRESS_ENV, None)
        else:
            os.environ[NO_PROGRESS_ENV] = before


def progress_bar(iterable: Iterable | None = None, *, enabled: bool = True, **options: Any):
    """A tqdm bar (``tqdm.auto``: a widget in notebooks), off when ``enabled`` is False or the switch is set.

    ``options`` are tqdm's (``total``, ``desc``, ``unit``, ``file``, ...); a disabled bar still
    iterates and accepts ``update``/``set_postfix_str``, so callers never branch on it.
    """
    from tqdm.auto import tqdm

    return tqdm(iterable, disable=not enabled or silenced(), **options)
