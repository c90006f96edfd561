"""One error type for every user-facing failure, so the CLI can print it without a traceback."""

from __future__ import annotations

import difflib
from typing import Iterable


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` when a known name is close to a mistyped one, else ``""``."""
    close = difflib.get_close_matches(str(name), [str(k) for k in known], n=2, cutoff=0.6)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


def choose_from(name: str, known: Iterable[str]) -> str:
    """The fix for an unknown name: every known one, then the close matches of the mistyped one (if any)."""
    known = sorted(str(k) for k in known)
    return f"use one of: {', '.join(known)}{did_you_mean(name, known)}"


class SmisbenchError(Exception):
    """A failure the user can fix; ``fix`` says how."""

    def __init__(self, problem: str, fix: str | None = None):
        self.problem = problem
        self.fix = fix
        super().__init__(problem if not fix else f"{problem}\n  fix: {fix}")


class UnknownNameError(SmisbenchError, KeyError):
    """A model, dataset, metric or segmenter name that no registry knows."""

    def __init__(self, kind: str, name: str, known: list[str]):
        super().__init__(f"unknown {kind} {name!r}", choose_from(name, known))
        self.kind, self.name, self.known = kind, name, known

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return Exception.__str__(self)


class WeightsError(SmisbenchError):
    """A pretrained file that is missing, corrupt or does not fit its network."""


class LabelMapError(SmisbenchError, ValueError):
    """A label map whose values, dtype or size do not fit the dataset configuration."""
