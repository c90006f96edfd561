"""Evaluation seeds of a benchmark spec: ``seeds = K`` or a list in the spec, ``--seeds`` on a command line."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from smisbench.benchmark.spec_reader import type_name
from smisbench.errors import SmisbenchError
from smisbench.metrics.protocol import protocol_field

if TYPE_CHECKING:
    from smisbench.benchmark.spec import BenchmarkSpec


def seed_list(value: int | list[int] | tuple[int, ...], base: int) -> tuple[int, ...]:
    """Evaluation seeds from a count K (``base``, ``base + 1``, ..., so the first is the spec's ``seed`` and
    its cells are the single-seed ones) or from a list; raises ValueError naming what is wrong."""
    minimum = protocol_field("seed").minimum or 0
    if isinstance(value, bool) or not isinstance(value, (int, list, tuple)):
        raise ValueError(f"must be a count or an array of seeds, not {type_name(value)}")
    if isinstance(value, int):
        if value < 1:
            raise ValueError(f"a count of seeds must be at least 1, not {value}")
        return tuple(base + i for i in range(value))
    if not value:
        raise ValueError("must list at least one seed")
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int):
            raise ValueError(f"seeds must be integers, not {type_name(item)} ({item!r})")
        if item < minimum:
            raise ValueError(f"seeds must be at least {minimum}, not {item}")
    if len(set(value)) != len(value):
        raise ValueError("lists a seed twice")
    return tuple(value)


def parse_seeds_option(text: str, base: int) -> tuple[int, ...]:
    """``--seeds K`` (a count) or ``--seeds 0,4,9`` (a list) on a command line."""
    try:
        parts = [int(p) for p in text.split(",")] if "," in text else int(text)
        return seed_list(parts, base)
    except ValueError as err:
        problem = str(err) if "seed" in str(err) else f"{text!r} is not a number"
        raise SmisbenchError(f"--seeds {text}: {problem}",
                             "give a count (--seeds 3) or a comma-separated list (--seeds 0,4,9)") from None


def with_seeds(spec: BenchmarkSpec, seeds: tuple[int, ...]) -> BenchmarkSpec:
    """The spec run with other evaluation seeds (``--seeds``); everything else, its text included, unchanged."""
    return replace(spec, seeds=tuple(seeds))
