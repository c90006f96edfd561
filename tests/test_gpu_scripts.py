"""The prepared GPU check scripts work before any GPU sees them: gpu_fps.py on the CPU, gpu_checks.sh's logic."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHECKS = REPO / "scripts" / "gpu_checks.sh"


def _gpu_fps():
    spec = importlib.util.spec_from_file_location("gpu_fps", REPO / "scripts" / "gpu_fps.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_fps_runs_on_the_cpu_and_writes_its_record(tmp_path, capsys):
    out = tmp_path / "fps.json"
    code = _gpu_fps().main(["--device", "cpu", "--dataset", "synthetic", "--repeats", "1", "--warmup", "0",
                            "--out", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    assert {"script", "argv", "environment", "torch", "cuda", "settings", "models",
            "ratio_groupdnet_over_vspade"} <= set(result)
    assert result["cuda"] is None and result["environment"]["device"] == "cpu"
    settings = result["settings"]
    assert settings["resolution"] == [64, 64] and settings["batch_size"] == 1 and settings["dtype"] == "float32"
    assert settings["warmup"] == 0 and settings["repeats"] == 1
    for name in ("groupdnet", "vspade"):
        record = result["models"][name]
        for path in ("as_defined", "inference_copy"):
            assert record[path]["fps"] > 0 and record[path]["repeats"] == 1 and record[path]["resolution"] == [64, 64]
        assert record["copy_within_tolerance"] is True
        assert record["copy_max_abs_diff"] <= record["fast_path_tolerance"] == 1e-4
        assert 0 <= record["output_saturated_fraction"] <= 1 and record["parameters_G_E"] > 0
    ratio = result["ratio_groupdnet_over_vspade"]
    assert ratio["paper_fps"] == {"GroupDNet": 12.2, "VSPADE": 20.4}
    assert ratio["paper"] == pytest.approx(12.2 / 20.4)
    assert ratio["as_defined"] == pytest.approx(result["models"]["groupdnet"]["as_defined"]["fps"]
                                                / result["models"]["vspade"]["as_defined"]["fps"])
    assert ratio["inference_copy"] > 0 and "differ" in ratio["hardware_note"]
    printed = capsys.readouterr().out
    assert "GroupDNet/VSPADE" in printed and "(hardware differs)" in printed


def test_gpu_fps_refuses_a_size_the_networks_are_not_built_for(tmp_path, capsys):
    code = _gpu_fps().main(["--device", "cpu", "--dataset", "synthetic", "--size", "32", "--out",
                            str(tmp_path / "x.json")])
    assert code == 2 and not (tmp_path / "x.json").exists()
    err = capsys.readouterr().err
    assert "error: --size 32 is not the synthetic config's height 64" in err and "fix:" in err


def test_gpu_checks_script_parses_and_is_executable():
    assert os.access(CHECKS, os.X_OK)
    done = subprocess.run(["bash", "-n", str(CHECKS)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("python", ["true", "false"])
def test_gpu_checks_runs_every_step_and_reports_failures(tmp_path, python):
    """With a stand-in interpreter (`true`: every step passes, `false`: every step fails) the script's own logic runs."""
    if shutil.which("timeout") is None:
        pytest.skip("coreutils' timeout is not installed here")
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "PYTHON": python}
    done = subprocess.run(["bash", str(CHECKS)], capture_output=True, text=True, env=env, timeout=120)
    log = (out / "gpu_checks.log").read_text()
    for step in ("versions", "cuda-tests", "fps"):
        assert f"== {step} (limit" in log
    assert "--junitxml" in log and str(out / "junit_cuda.xml") in log and str(out / "gpu_fps.json") in log
    if python == "true":
        assert done.returncode == 0, done.stdout + done.stderr
        assert "all GPU checks passed" in log
    else:
        assert done.returncode == 1
        assert "FAILED: versions (exit 1) cuda-tests (exit 1) fps (exit 1)" in log
