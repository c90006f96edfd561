"""`smisbench run` checks a spec before it computes or writes anything: one `error:` line, a `fix:`, exit 2.

Each case is a spec the old code accepted (the dry run planned it, the real run stored a run
whose cells then failed); now both refuse it before the results store is created or changed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from smisbench.cli import main
from test_benchmark_store import snapshot

BASE = """
name = "v"
device = "cpu"
metrics = ["fid", "params"]

[[datasets]]
name = "synthetic"
options = { length = 4 }

[[models]]
name = "groupdnet"
label = "GroupDNet"
config = { z_per_class = 4 }
"""

# (edit of BASE, what the error line says, what the fix line says)
SYNTHETIC = 'name = "synthetic"\noptions = { length = 4 }'
DATASET_PROTOCOL = "options = { length = 4 }\nprotocol = "
TRAIN = 'label = "GroupDNet"\ntrain = {{ steps = 2, options = {{ {} }} }}'

# name -> (edits of BASE, what the error line says, what the fix line says)
BAD_SPECS = {
    "model name": ([('name = "groupdnet"', 'name = "groupdnt"')], "models[0].name: unknown model 'groupdnt'",
                   "did you mean 'groupdnet'"),
    "dataset name": ([('name = "synthetic"', 'name = "synthetc"')], "datasets[0].name: unknown dataset 'synthetc'",
                     "did you mean 'synthetic'"),
    "config key": ([("z_per_class = 4", "z_per_clas = 4")], "models[0].config.z_per_clas: is not a field of",
                   "did you mean 'z_per_class'"),
    "config type": ([("z_per_class = 4", 'z_per_class = "4"')], "models[0].config.z_per_class: must be an integer",
                    None),
    "config tuple": ([("z_per_class = 4", "latent_hw = [4]")], "models[0].config.latent_hw: must be an array of 2",
                     None),
    "dataset option": ([("length = 4", "lenght = 4")], "datasets[0].options.lenght: is not an option",
                       "did you mean 'length'"),
    "model/dataset pair": ([('name = "groupdnet"', 'name = "groupnet"'), (SYNTHETIC, 'name = "cityscapes"')],
                           "model 'groupnet' has no configuration for dataset 'cityscapes'", "deepfashion"),
    "training option": ([('label = "GroupDNet"', TRAIN.format('lr_G = 1.0'))],
                        "models[0].train.options.lr_G: is not a training option", "did you mean 'lr_g'"),
    "training option type": ([('label = "GroupDNet"', TRAIN.format('lr_g = "x"'))],
                             "models[0].train.options.lr_g: must be a number", None),
    "segmenter": ([("options = { length = 4 }", DATASET_PROTOCOL + '{ segmenter = "synthetic_fcn" }')],
                  "datasets[0].protocol.segmenter: unknown segmenter 'synthetic_fcn'", "did you mean 'synthetic-fcn'"),
    "scoring protocol": ([("options = { length = 4 }", DATASET_PROTOCOL + '{ scoring_protocol = "cityscapes-drn" }')],
                         "datasets[0].protocol.scoring_protocol: unknown scoring protocol", "cityscapes-drn105"),
    "segmenter missing": ([('metrics = ["fid", "params"]', 'metrics = ["miou"]')],
                          "lists miou but no protocol table sets a segmenter", "segmenter = "),
    "metric name": ([('"fid", "params"', '"fdi", "params"')], "metrics[0]: unknown metric 'fdi'",
                    "did you mean 'fid'"),
    "device tpu": ([('device = "cpu"', 'device = "tpu"')], "device: 'tpu' is not a device smisbench runs on",
                   "cpu, cuda, cuda:N"),
    "device auto": ([('device = "cpu"', 'device = "auto"')], "device: 'auto' is not a device", "available here: "),
}


def write_spec(tmp_path: Path, edits: list[tuple[str, str]] = ()) -> Path:
    text = BASE
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / "spec" / "v.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def refused(capsys, argv: list[str]) -> tuple[str, str, str]:
    """Run the CLI; assert exit 2 with exactly `error:` + `fix:` on stderr and no traceback."""
    code = main(argv)
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2, (code, out, err)
    assert len(lines) == 2, err
    assert lines[0].startswith("smisbench run: error: ") or lines[0].startswith("smisbench demo: error: "), err
    assert lines[1].strip().startswith("fix: "), err
    assert "Traceback" not in out + err
    return lines[0], lines[1], out


def run_args(spec: Path, store: Path, *extra: str) -> list[str]:
    return ["run", str(spec), "--store", str(store), "--executor", "benchmark_fakes:plain", "--no-progress", *extra]


@pytest.mark.parametrize("dry", [True, False], ids=["dry-run", "run"])
@pytest.mark.parametrize("case", sorted(BAD_SPECS))
def test_a_spec_that_cannot_run_is_refused_before_the_store(tmp_path: Path, capsys, case: str, dry: bool):
    edits, problem, fix = BAD_SPECS[case]
    spec = write_spec(tmp_path, edits)
    store = tmp_path / "store" / "s.sqlite"
    error, fix_line, _ = refused(capsys, run_args(spec, store, *(["--dry-run"] if dry else [])))
    assert problem in error
    if fix is not None:
        assert fix in fix_line
    assert not store.parent.exists()  # no store, no folder for it, no failed run


def test_a_refused_run_leaves_an_existing_store_as_it_was(tmp_path: Path, capsys):
    good, store = write_spec(tmp_path), tmp_path / "store" / "s.sqlite"
    assert main(run_args(good, store)) == 0
    before = snapshot(store.parent)
    for case in ("model name", "config key", "device tpu"):
        refused(capsys, run_args(write_spec(tmp_path, BAD_SPECS[case][0]), store))
        assert snapshot(store.parent) == before
    capsys.readouterr()
    assert main(["runs", "--store", str(store)]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 2  # the header and the one good run


def test_device_flag_is_checked_too(tmp_path: Path, capsys):
    store = tmp_path / "store" / "s.sqlite"
    error, fix, _ = refused(capsys, run_args(write_spec(tmp_path), store, "--device", "tpu"))
    assert "--device 'tpu' is not a device smisbench runs on" in error and "cuda:N" in fix
    assert not store.parent.exists()


def test_cuda_without_cuda_names_the_devices_there_are(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    spec, store = write_spec(tmp_path, [('device = "cpu"', 'device = "cuda"')]), tmp_path / "store" / "s.sqlite"
    error, fix, _ = refused(capsys, run_args(spec, store))
    assert "device: 'cuda' cannot be used here: CUDA is not available" in error
    assert "a device this machine has: cpu" in fix
    assert not store.parent.exists()
    error, fix, out = refused(capsys, run_args(spec, store, "--dry-run"))  # the plan is shown, then the refusal
    assert "CUDA is not available" in error and "0 cached, 1 to run" in out
    assert not store.parent.exists()
    assert main(run_args(spec, store, "--device", "cpu")) == 0  # the fix works


def test_a_gpu_index_this_machine_lacks(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    store = tmp_path / "store" / "s.sqlite"
    error, fix, _ = refused(capsys, run_args(write_spec(tmp_path), store, "--device", "cuda:2"))
    assert "--device 'cuda:2' cannot be used here: this machine has 2 CUDA device(s)" in error
    assert "cpu, cuda, cuda:0, cuda:1" in fix
    assert not store.parent.exists()


def test_demo_refuses_a_bad_device_before_making_its_folder(tmp_path: Path, capsys):
    out = tmp_path / "demo"
    error, fix, _ = refused(capsys, ["demo", "--out", str(out), "--device", "tpu", "--executor",
                                     "benchmark_fakes:plain", "--no-provision", "--no-progress"])
    assert "--device 'tpu'" in error and "cuda:N" in fix
    assert not out.exists()


@pytest.mark.parametrize("name", ["demo", "table1", "table2", "ablations"])
def test_shipped_specs_pass_the_check(name: str):
    from smisbench.benchmark.spec import load_spec
    from smisbench.benchmark.validate import check_spec

    check_spec(load_spec(name), availability=False)  # table1, table2, ablations are CUDA specs


def test_dry_run_shows_a_table_of_the_cells(tmp_path: Path, capsys):
    spec = write_spec(tmp_path, [('label = "GroupDNet"', 'label = "GroupDNet"\ncheckpoint = "absent.pt"')])
    store = tmp_path / "s.sqlite"
    assert main(run_args(spec, store, "--dry-run")) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["#", "model", "dataset", "metrics", "key", "status"]
    assert lines[2].split()[:4] == ["0", "GroupDNet", "synthetic/test", "fid,params"] and lines[2].endswith("to run")
    assert any("checkpoint missing" in line and "absent.pt" in line for line in lines)


def test_tpu_through_the_real_entry_point(tmp_path: Path):
    """The issue's reproduction as a user types it: `smisbench run` with device = "tpu"."""
    spec, store = write_spec(tmp_path, [('device = "cpu"', 'device = "tpu"')]), tmp_path / "store" / "s.sqlite"
    tests = Path(__file__).parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tests.parent), str(tests)])}
    result = subprocess.run([sys.executable, "-m", "smisbench", "run", str(spec), "--store", str(store)],
                            capture_output=True, text=True, env=env, timeout=300)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 2 and lines[0].startswith("smisbench run: error: ") and "'tpu'" in lines[0]
    assert lines[1].strip().startswith("fix: ") and "Traceback" not in result.stdout + result.stderr
    assert not store.parent.exists()
