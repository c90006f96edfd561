"""Real-image FID statistics and suite-trained segmenters are computed once per machine, not once per
results store or per API call: both live in the machine's cache (under ``smisbench.paths.cache_root()``),
keyed by content. The harness once passed each store's artifact folder, so every store recomputed them."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch

from conftest_weights import FakeInception, ToyPerClassModel
from smisbench.datasets_config import get_dataset_config
from smisbench.metrics.protocol import EvalProtocol

SYNTHETIC = get_dataset_config("synthetic")


@pytest.fixture
def counted(monkeypatch, tmp_path):
    """The machine cache in a temporary folder; counts of real-statistics and segmenter computations."""
    from smisbench.metrics import fid
    from smisbench.segmenters import synthetic_fcn

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "machine"))
    monkeypatch.delenv("SMISBENCH_FID_CACHE_DIR", raising=False)
    monkeypatch.setattr(fid, "load_inception", lambda *args, **kwargs: FakeInception())
    counts = {"real_stats": 0, "segmenter": 0}

    def saved(*args, original=fid.save_cached_stats, **kwargs):
        counts["real_stats"] += 1  # called exactly when real statistics were computed, not read
        return original(*args, **kwargs)

    def trained(*args, original=synthetic_fcn.train_synthetic_fcn, **kwargs):
        counts["segmenter"] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(fid, "save_cached_stats", saved)
    monkeypatch.setattr(synthetic_fcn, "train_synthetic_fcn", trained)
    return counts


PROTOCOL = dict(fid_samples=4, segmenter="synthetic-fcn", segmenter_train_steps=0, segmentation_samples=4,
                batch_size=4)


def test_two_api_calls_share_one_cache_entry(counted, tmp_path):
    from smisbench.data.synthetic import SyntheticSMIS
    from smisbench.metrics.evaluate import evaluate

    data = SyntheticSMIS("test", length=6)
    results = [evaluate(ToyPerClassModel(SYNTHETIC), data, SYNTHETIC, ["fid", "miou"], EvalProtocol(**PROTOCOL),
                        "cpu", progress=False) for _ in range(2)]
    assert counted == {"real_stats": 1, "segmenter": 1}
    assert [r.details["fid"]["real_stats_cached"] for r in results] == [False, True]
    assert results[0].values == results[1].values
    machine = tmp_path / "machine" / "smisbench"
    assert len(list((machine / "fid_stats").glob("*.npz"))) == 1
    assert results[1].provenance["segmenter"]["checkpoint"]["file"].startswith(str(machine / "segmenters"))


SPEC = """
name = "caches"
table = "caches"
metrics = ["fid", "miou"]
[protocol]
fid_samples = 4
segmenter = "synthetic-fcn"
segmenter_train_steps = 0
segmentation_samples = 4
batch_size = 4
grid_rows = 0
[[datasets]]
name = "synthetic"
options = { length = 6 }
[[models]]
name = "groupdnet"
"""


def test_two_stores_share_one_cache_entry(counted, tmp_path):
    """Runs into two stores (each with its own artifact folder) compute the real statistics and the segmenter once."""
    import benchmark_fakes as fakes
    from smisbench.benchmark.runner import run_spec
    from smisbench.benchmark.spec import parse_spec
    from smisbench.benchmark.store import Store

    torch.set_num_threads(1)
    for name in ("a", "b"):
        with Store(tmp_path / name / "s.sqlite") as store:
            summary = run_spec(parse_spec(SPEC), store, progress=False, stream=io.StringIO(),
                               environment=fakes.fake_environment)
            assert summary.ok, summary.failed
    assert counted == {"real_stats": 1, "segmenter": 1}
    for name in ("a", "b"):  # nothing of the machine cache under either store
        assert not [p for p in (tmp_path / name).rglob("*") if p.suffix in (".npz", ".pt")]


def test_explicit_folders_still_move_the_caches(counted, tmp_path):
    from smisbench.data.synthetic import SyntheticSMIS
    from smisbench.metrics.evaluate import evaluate

    result = evaluate(ToyPerClassModel(SYNTHETIC), SyntheticSMIS("test", length=6), SYNTHETIC, ["fid", "miou"],
                      EvalProtocol(**PROTOCOL), "cpu", stats_cache_dir=tmp_path / "stats",
                      segmenter_cache_dir=tmp_path / "segmenters", progress=False)
    assert len(list((tmp_path / "stats").glob("*.npz"))) == 1
    assert Path(result.provenance["segmenter"]["checkpoint"]["file"]).parent == tmp_path / "segmenters"
    assert not (tmp_path / "machine").exists()
