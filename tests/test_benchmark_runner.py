"""The runner: resume after an interruption, failed cells retried, dry run, two concurrent runs.

Concurrent `smisbench run` processes and kill -9 are in test_benchmark_concurrency.py."""

from __future__ import annotations

import io
import multiprocessing as mp
from pathlib import Path

import pytest

import benchmark_fakes as fakes
from smisbench.benchmark.cells import expand_cells
from smisbench.benchmark.runner import run_spec
from smisbench.benchmark.spec import parse_spec
from smisbench.benchmark.store import Store


def spec():
    return parse_spec(fakes.SMALL_SPEC, "small.toml")


def run(store: Store, executor, **kw):
    return run_spec(spec(), store, executor, progress=False, stream=io.StringIO(),
                    environment=fakes.fake_environment, **kw)


def numbers(store: Store, run_id: int) -> dict[tuple[str, str, str], float]:
    return {(r["model_id"], r["dataset_id"], r["metric"]): r["value"] for r in store.run_results(run_id)}


def test_full_run_stores_every_cell_with_provenance(tmp_path: Path):
    with Store(tmp_path / "s.sqlite") as store:
        summary = run(store, fakes.plain)
        assert summary.ok and len(summary.computed) == 6 and not summary.reused
        values = numbers(store, summary.run_id)
        assert len(values) == 6 * 4  # fid, mcsd, mocd, params per cell
        cells = expand_cells(spec())
        for cell in cells:
            cell_id = store.finished_cell(cell.key)
            row = store.cell(cell_id)
            assert row["values"] == {k: fakes.fake_value(cell.key, k) for k in ("fid", "mcsd", "mocd", "params")}
            assert row["spec_sha256"] == spec().sha256
            assert row["seed"] == 3 and row["device"] == "cpu" and row["dtype"] == "float32"
            assert row["git_commit"] == "0" * 40 and row["versions"] == {"smisbench": "test"}
            assert row["threads"] == 1 and row["wall_time_s"] >= 0
            assert row["weights_sha256"] == {} and row["provenance"]["weights_sha256"] == {"lpips": "ab" * 32}
            assert row["protocol"]["n"] == 4 and row["protocol"]["resolved"] is True
            assert row["protocol"]["mask_mode"] == "image"  # unwritten fields stored with their defaults
            assert row["provenance"]["cell_identity"]["dataset"]["name"] == "synthetic"
        assert store.run(summary.run_id)["status"] == "finished"


@pytest.mark.parametrize("k", [0, 2, 5])
def test_interrupted_run_resumes_and_matches_uninterrupted(tmp_path: Path, k: int):
    with Store(tmp_path / "reference.sqlite") as ref:
        expected = numbers(ref, run(ref, fakes.plain).run_id)
    with Store(tmp_path / "s.sqlite") as store:
        with pytest.raises(KeyboardInterrupt):
            run(store, fakes.InterruptAt(k))
        (first,) = store.runs()
        assert first.status == "interrupted" and first.computed == k
        counting = fakes.Counting()
        summary = run(store, counting)
        assert len(counting.seen) == 6 - k  # finished cells are not redone
        assert len(summary.reused) == k and len(summary.computed) == 6 - k
        assert numbers(store, summary.run_id) == expected
        assert store.run(summary.run_id)["status"] == "finished"
        again = fakes.Counting()
        assert len(run(store, again).reused) == 6 and again.seen == []


def test_failed_cell_is_recorded_and_retried(tmp_path: Path):
    with Store(tmp_path / "s.sqlite") as store:
        broken = fakes.Counting(fail=("vspade",))
        summary = run(store, broken)
        assert not summary.ok and len(summary.failed) == 2 and len(summary.computed) == 4
        assert "planted failure in vspade" in summary.failed[0][1]
        assert store.run(summary.run_id)["status"] == "failed"
        retry = fakes.Counting()
        second = run(store, retry)
        assert second.ok and len(retry.seen) == 2 and len(second.reused) == 4
        assert {c.model.id for c in second.computed} == {"vspade"}


def test_fail_fast_stops(tmp_path: Path):
    with Store(tmp_path / "s.sqlite") as store:
        broken = fakes.Counting(fail=("groupdnet",))
        summary = run(store, broken, fail_fast=True)
        assert len(broken.seen) == 1 and len(summary.failed) == 1


def test_dry_run_shows_cached_and_pending(tmp_path: Path):
    with Store(tmp_path / "s.sqlite") as store:
        with pytest.raises(KeyboardInterrupt):
            run(store, fakes.InterruptAt(2))
        out = io.StringIO()
        counting = fakes.Counting()
        summary = run_spec(spec(), store, counting, dry_run=True, stream=out, progress=False,
                           environment=fakes.fake_environment)
        text = out.getvalue()
        assert counting.seen == [] and summary.run_id is None
        assert text.count("cached (cell") == 2 and text.count("  to run") == 4
        assert "2 cached, 4 to run" in text
        assert len(store.runs()) == 1  # a dry run records nothing


def test_missing_values_are_noted_not_invented(tmp_path: Path):
    def partial(cell, ctx):
        outcome = fakes.fake_outcome(cell)
        del outcome.values["mocd"]
        return outcome

    with Store(tmp_path / "s.sqlite") as store:
        summary = run(store, partial)
        cell = store.cell(store.finished_cell(summary.cells[0].key))
        assert "mocd" not in cell["values"]
        assert any("no value for mocd" in note for note in cell["notes"])
        assert len(run(store, fakes.plain).reused) == 6  # finished is finished...
        out = io.StringIO()
        run_spec(spec(), store, fakes.plain, dry_run=True, stream=out, progress=False, redo_incomplete=True)
        assert out.getvalue().count("to run again (lacks mocd)") == 6
        counting = fakes.Counting()
        redo = run(store, counting, redo_incomplete=True)  # ...unless asked to complete what lacks a value
        assert len(counting.seen) == 6 and len(redo.computed) == 6
        assert all("mocd" in store.values(store.finished_cell(c.key)) for c in redo.cells)
        assert len(run(store, fakes.plain, redo_incomplete=True).reused) == 6


def _run_in_process(path: str, start) -> None:
    start.wait()
    with Store(path, timeout_s=60) as store:
        run_spec(parse_spec(fakes.SMALL_SPEC.replace("n = 4", "n = 4\nbatch_size = 2")
                            .replace('name = "groupnet"', 'name = "groupnet"\n[[models]]\nname = "mulnet"\n'
                                     '[[models]]\nname = "groupenc"\n[[models]]\nname = "groupdec"'), "c.toml"),
                 store, fakes.slow, progress=False, stream=io.StringIO(), environment=fakes.fake_environment)


def test_two_concurrent_runs_into_one_store(tmp_path: Path):
    path = str(tmp_path / "shared.sqlite")
    ctx = mp.get_context("spawn")
    start = ctx.Event()
    procs = [ctx.Process(target=_run_in_process, args=(path, start)) for _ in range(2)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    with Store(path) as store:
        assert store.integrity_ok()
        runs = store.runs()
        assert [r.status for r in runs] == ["finished", "finished"]
        assert all(r.cells == 12 and r.failed == 0 for r in runs)
        assert sum(r.computed for r in runs) == 12  # every cell computed once: the runs shared the work
        a, b = (numbers(store, r.run_id) for r in runs)
        assert a == b and len(a) == 12 * 4
        assert all(value == value for value in a.values())  # no NaN slipped in


def test_changed_weights_or_code_recompute_and_identical_rerun_reuses(tmp_path: Path):
    with Store(tmp_path / "s.sqlite") as store:
        first = run(store, fakes.Identified())
        assert len(first.computed) == 6 and all(c.model_identity for c in first.cells)
        identical = fakes.Identified()
        again = run(store, identical)
        assert len(again.reused) == 6 and identical.seen == [] and len(identical.identified) == 6

        new_weights = fakes.Identified(weights={"vspade": "2" * 64})
        changed = run(store, new_weights)
        assert {c.model.id for c in changed.computed} == {"vspade"} and len(changed.reused) == 4
        row = store.cell(store.finished_cell(changed.computed[0].key))
        assert row["provenance"]["cell_identity"]["model"]["weights_sha256"] == "2" * 64

        new_code = fakes.Identified(weights={"vspade": "2" * 64}, code={"groupnet": "3" * 64})
        recoded = run(store, new_code)
        assert {c.model.id for c in recoded.computed} == {"groupnet"} and len(recoded.reused) == 4

        out = io.StringIO()  # the dry run keys cells the same way
        run_spec(spec(), store, fakes.Identified(weights={"groupdnet": "4" * 64}), dry_run=True, stream=out,
                 progress=False)
        assert "4 cached, 2 to run" in out.getvalue()


def test_a_cell_whose_model_cannot_be_identified_fails_and_is_retried(tmp_path: Path):
    with Store(tmp_path / "s.sqlite") as store:
        broken = fakes.Identified(fail=("groupnet",))
        summary = run(store, broken)
        assert len(summary.failed) == 2 and len(summary.computed) == 4
        assert "planted identification failure" in summary.failed[0][1]
        retry = run(store, fakes.Identified())
        assert retry.ok and {c.model.id for c in retry.computed} == {"groupnet"} and len(retry.reused) == 4
