"""One switch for every progress bar; small numbers shown with enough digits."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from smisbench.progress import NO_PROGRESS_ENV, progress_bar, silenced, silenced_while

REPO = Path(__file__).resolve().parents[1]


def _drawn(**options) -> str:
    stream = io.StringIO()
    for _ in progress_bar(range(3), desc="work", file=stream, **options):
        pass
    return stream.getvalue()


def test_the_switch_silences_every_bar(monkeypatch):
    monkeypatch.delenv(NO_PROGRESS_ENV, raising=False)
    assert "work" in _drawn()
    assert _drawn(enabled=False) == ""
    monkeypatch.setenv(NO_PROGRESS_ENV, "1")
    assert silenced() and _drawn() == ""
    monkeypatch.setenv(NO_PROGRESS_ENV, "0")
    assert not silenced()


def test_silenced_while_restores_the_environment(monkeypatch):
    monkeypatch.delenv(NO_PROGRESS_ENV, raising=False)
    with silenced_while(True):
        assert os.environ[NO_PROGRESS_ENV] == "1"
    assert NO_PROGRESS_ENV not in os.environ
    with silenced_while(False):
        assert not silenced()


def test_the_cli_switch_reaches_bars_inside_commands(monkeypatch, capsys):
    """``smisbench --no-progress CMD`` and ``CMD --no-progress`` both silence the bars the command draws."""
    import smisbench.benchmark.cli as benchmark_cli
    from smisbench.cli import main

    monkeypatch.delenv(NO_PROGRESS_ENV, raising=False)
    seen = []
    monkeypatch.setattr(benchmark_cli, "_specs", lambda args: seen.append(silenced()))
    assert main(["--no-progress", "specs"]) == 0 and main(["specs"]) == 0
    assert seen == [True, False] and NO_PROGRESS_ENV not in os.environ


def test_no_library_module_draws_a_bar_of_its_own():
    """Every bar goes through smisbench.progress (one switch), none through tqdm directly."""
    offenders = [str(path.relative_to(REPO)) for path in (REPO / "smisbench").rglob("*.py")
                 if path.name != "progress.py" and "tqdm" in path.read_text()]
    assert offenders == []


@pytest.mark.parametrize("value, digits, shown", [
    (0.000162, 1, "0.00016"),  # a 162-parameter model in millions
    (0.05, 1, "0.050"),
    (0.1, 1, "0.1"),
    (109.16, 1, "109.2"),
    (0.0, 4, "0.0000"),  # a true zero (mOCD of a per-class model) stays a zero
    (float("nan"), 2, "nan"),
])
def test_small_values_get_two_significant_digits(value, digits, shown):
    from smisbench.formatting import fixed

    assert fixed(value, digits) == shown


def test_report_tables_show_tiny_parameter_counts():
    """Before: a 162-parameter model showed as "0.0" M in every report table."""
    from smisbench.benchmark.catalog import catalog
    from smisbench.reports.tables import _fmt

    info = catalog().value("params")
    assert _fmt(info.display(162.0), info) == "0.00016"
    assert _fmt(info.display(109_160_000.0), info) == "109.2"
    assert info.format(info.display(54_000.0)) == "0.054"
