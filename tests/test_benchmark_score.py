"""``smisbench score``: a model from a file, a plugin or the registry, one JSON object, stored as a run."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from smisbench.cli import main
from smisbench.errors import SmisbenchError

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "smis_plugin_example" / "smis_plugin_example" / "models.py"
TINY = """\
name = "tiny"
description = "two label maps, 4 samples, 3 pairs"
metrics = ["mcsd_mocd", "lpips_diversity"]
[protocol]
n = 4
m = 3
diversity_maps = 2
batch_size = 8
mask_mode = "image"   # the paper's masking, whatever the default is
"""


def _example_installed() -> bool:
    try:
        importlib.metadata.distribution("smis-plugin-example")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


needs_example = pytest.mark.skipif(not _example_installed(), reason="examples/smis_plugin_example is not installed "
                                   "(tox installs it; by hand: pip install -e examples/smis_plugin_example)")


@pytest.fixture
def tiny(tmp_path, provisioned_weights, monkeypatch) -> Path:
    monkeypatch.setenv("SMISBENCH_WEIGHTS_DIR", str(provisioned_weights))
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


def _score(capsys, model: str, preset: Path, *extra: str) -> tuple[int, str, str]:
    code = main(["score", "--model", model, "--dataset", "synthetic", "--preset", str(preset), "--device", "cpu",
                 *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _json(capsys, model: str, preset: Path, *extra: str) -> dict:
    code, out, err = _score(capsys, model, preset, "--json", "--no-progress", *extra)
    assert code == 0, err
    return json.loads(out)  # the whole of stdout is one JSON object


ROUTES = [
    pytest.param(f"{EXAMPLE}:build_per_class", "per_class", id="file-per-class"),
    pytest.param(f"{EXAMPLE}:build_global", "global", id="file-global"),
    pytest.param("example-per-class", "per_class", id="entry-point-per-class", marks=needs_example),
    pytest.param("example-global", "global", id="entry-point-global", marks=needs_example),
]


@pytest.mark.parametrize("model, codes", ROUTES)
def test_per_class_model_gets_mocd_zero_and_global_model_mocd_above_mcsd(capsys, tiny, model, codes):
    result = _json(capsys, model, tiny, "--metrics", "mcsd,mocd,lpips,params")
    values = result["values"]
    assert set(values) == {"mcsd", "mocd", "lpips", "params"}
    if codes == "per_class":
        assert values["mocd"] == 0.0 and values["mcsd"] > 0.01
    else:
        assert values["mocd"] > values["mcsd"] > 0.01
    assert values["lpips"] > 0 and values["params"] == 6 * 8 * 3 + 6 * 3
    assert result["protocol"]["mask_mode"] == "image" and result["protocol"]["n"] == 4
    assert result["preset"] == "tiny" and result["store"] is None
    assert result["provenance"]["codes_kind"] == codes and "lpips-alex-linear" in json.dumps(result["provenance"])


def test_file_and_entry_point_routes_agree_and_bars_are_silenced(capsys, tiny):
    code, out, err = _score(capsys, f"{EXAMPLE}:build_per_class", tiny, "--no-progress")
    assert code == 0 and "%|" not in err  # no progress bar at all
    assert "mOCD         0.0000" in out and "(preset tiny)" in out
    if _example_installed():
        code, by_name, _ = _score(capsys, "example-per-class", tiny, "--no-progress")
        assert by_name.splitlines()[1:] == out.splitlines()[1:]  # the same numbers


def test_a_stored_score_is_a_run_that_runs_compare_and_report_see(capsys, tiny, tmp_path):
    store = tmp_path / "results.sqlite"
    first = _json(capsys, f"{EXAMPLE}:build_global", tiny, "--store", str(store), "--label", "Mine")
    assert first["store"]["run_id"] == 1 and first["store"]["reused"] is False
    again = _json(capsys, f"{EXAMPLE}:build_global", tiny, "--store", str(store), "--label", "Mine")
    assert again["store"]["run_id"] == 2 and again["store"]["reused"] is True
    assert again["values"] == first["values"]
    assert main(["runs", "--store", str(store)]) == 0
    runs = capsys.readouterr().out
    assert runs.count("score  score  finished") == 2
    assert main(["compare", "1", "2", "--store", str(store)]) == 0
    assert "Mine" in capsys.readouterr().out
    assert main(["report", "--store", str(store), "--out", str(tmp_path / "report"), "--table", "score"]) == 0
    capsys.readouterr()
    assert "| Mine |" in (tmp_path / "report" / "report.md").read_text()


def test_the_stored_spec_reruns_with_smisbench_run(capsys, tiny, tmp_path):
    from smisbench.benchmark.store import Store

    store = tmp_path / "s.sqlite"
    _json(capsys, f"{EXAMPLE}:build_per_class", tiny, "--store", str(store))
    with Store(store, readonly=True) as s:
        text = s.run(1)["spec_text"]
    spec = tmp_path / "score.toml"
    spec.write_text(text)
    assert main(["run", str(spec), "--store", str(store), "--no-progress"]) == 0
    assert "0 computed, 1 reused" in capsys.readouterr().out  # the same cell: reused, not recomputed


def test_a_stored_score_is_keyed_by_the_model_code_so_an_edited_file_is_scored_again(capsys, tiny, tmp_path):
    """score goes through the runner's identify step: the cell key holds the code and weights it evaluates."""
    from smisbench.benchmark.store import Store

    model_file = tmp_path / "mine.py"
    model_file.write_text(EXAMPLE.read_text())
    store = tmp_path / "s.sqlite"
    first = _json(capsys, f"{model_file}:build_per_class", tiny, "--store", str(store), "--metrics", "params")
    with Store(store, readonly=True) as s:
        identity = s.cell(first["store"]["cell_id"])["provenance"]["cell_identity"]["model"]
    assert {"weights_sha256", "code_sha256"} <= set(identity)
    model_file.write_text(EXAMPLE.read_text() + "\n# edited: the same weights, other code\n")
    again = _json(capsys, f"{model_file}:build_per_class", tiny, "--store", str(store), "--metrics", "params")
    assert again["store"]["reused"] is False and again["store"]["cell_key"] != first["store"]["cell_key"]


def test_a_checkpoint_loads_into_the_module(capsys, tiny, tmp_path):
    sys.path.insert(0, str(EXAMPLE.parent.parent))
    try:
        from smis_plugin_example.models import ClassPainter
    finally:
        sys.path.pop(0)
    module = ClassPainter(6)
    torch.nn.init.zeros_(module.weight)  # every code gives the same colour: nothing changes when redrawn
    checkpoint = tmp_path / "painter.pth"
    torch.save(module.state_dict(), checkpoint)
    result = _json(capsys, f"{EXAMPLE}:build_per_class", tiny, "--metrics", "mcsd", "--checkpoint", str(checkpoint))
    assert result["values"]["mcsd"] == 0.0 and result["values"]["mocd"] == 0.0
    assert result["provenance"]["model_weights"]["files"]["G"]["file"] == str(checkpoint)


BAD = '''
import torch
from torch import nn


class Painter(nn.Module):
    codes = "per_class"
    code_shape = (2,)

    def __init__(self, kind, classes=6):
        super().__init__()
        self.kind, self.classes = kind, classes
        self.w = nn.Parameter(torch.ones(1))

    def forward(self, onehot, codes):
        out = torch.tanh(onehot[:, :3] * self.w)
        if self.kind == "shape":
            return out[:, :, ::2]
        if self.kind == "range":
            return out * 127.5 + 127.5
        if self.kind == "dtype":
            return ((out + 1) * 127.5).to(torch.uint8)
        return out

    def sample_codes(self, batch, generator):
        if self.kind == "codes":
            return torch.randn(batch, 2, generator=generator)  # wrong: per-class codes are B x C x 2
        return torch.randn(batch, self.classes, 2, generator=generator)

    def redraw(self, codes, class_index, generator):
        return codes


def shape(config):
    return Painter("shape")


def range_(config):
    return Painter("range")


def dtype(config):
    return Painter("dtype")


def codes(config):
    return Painter("codes")


def raising(config):
    raise ValueError("weights file missing")
'''


@pytest.mark.parametrize("factory, problem, fix", [
    ("absent", "has no 'absent'", "define absent there"),
    ("raising", "raised ValueError: weights file missing", "FACTORY(config)"),
    ("shape", ", 3, 32, 64) for a one-hot input of shape", "label map's size"),
    ("range_", "outside [-1, 1]", "torch.tanh"),
    ("dtype", "returned dtype torch.uint8", "x.float() / 127.5 - 1"),
    ("codes", "gave codes of shape (1, 2)", "B x 6 x 2"),
])
def test_bad_contracts_give_one_error_line_with_the_fix(capsys, tiny, tmp_path, factory, problem, fix):
    bad = tmp_path / "bad_models.py"
    bad.write_text(BAD)
    code, out, err = _score(capsys, f"{bad}:{factory}", tiny, "--metrics", "mcsd", "--no-progress")
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 2, err
    assert lines[0].startswith("smisbench score: error: ") and problem in lines[0]
    assert lines[1].startswith("  fix: ") and fix in lines[1]


def test_json_stdout_is_exactly_one_object_in_a_real_process(tiny, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "smisbench", "score", "--model", f"{EXAMPLE}:build_per_class", "--dataset", "synthetic",
         "--metrics", "mcsd", "--preset", str(tiny), "--device", "cpu", "--json",
         "--store", str(tmp_path / "s.sqlite")],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["values"]["mocd"] == 0.0 and result["store"]["cell_id"] == 1
    assert "run 1: spec score" in done.stderr  # the runner's log went to stderr


def test_metrics_and_presets():
    from smisbench.benchmark.score import metric_names_of
    from smisbench.metrics.presets import get_preset
    from smisbench.metrics.protocol import EvalProtocol

    assert metric_names_of(["mcsd", "mocd", "lpips", "fid", "params"]) == ("mcsd_mocd", "lpips_diversity", "fid",
                                                                             "params")
    with pytest.raises(SmisbenchError, match="unknown metric 'ssim'"):
        metric_names_of(["ssim"])
    paper = get_preset("groupdnet2020").eval_protocol()  # the paper's numbers where EvalProtocol has a default
    assert (paper.n, paper.m, paper.mask_mode, paper.lpips_net) == (100, 19, "image", "alex")
    assert paper.preset == "groupdnet2020" and paper.fid_resize == "legacy_pytorch"  # pytorch-fid, not legacy_tf
    assert get_preset("groupdnet2020").eval_protocol("cityscapes").image_size == (256, 512)
    assert EvalProtocol().preset is None
    assert get_preset(None).name == "groupdnet2020"
    with pytest.raises(SmisbenchError, match="unknown preset 'cvpr'") as err:
        get_preset("cvpr")
    assert "groupdnet2020" in err.value.fix


@pytest.mark.parametrize("text, problem", [
    ("[protocol]\nnn = 4\n", "protocol.nn is not a protocol field"),
    ("[protocol]\nn = \"4\"\n", "protocol.n must be an integer"),
    ("[protocol]\ndevice = \"cuda\"\n", "protocol.device is not a protocol field"),
    ("[protocol]\nbatch_size = 0\n", "protocol.batch_size must be at least 1"),
    ("metric = [\"fid\"]\n", "'metric' is not a preset key"),
    ("[protocol\n", "is not valid TOML"),
])
def test_bad_preset_files_are_refused(tmp_path, text, problem):
    from smisbench.metrics.presets import get_preset

    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(SmisbenchError, match=problem.replace("[", r"\[").replace("(", r"\(")):
        get_preset(str(path))


def test_score_refuses_unknown_names_and_missing_folders_before_any_work(capsys, tmp_path):
    assert main(["score", "--model", "nope", "--dataset", "synthetic"]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err
    assert main(["score", "--model", "groupdnet", "--dataset", "deepfashion"]) == 2
    assert "--root /path/to/deepfashion" in capsys.readouterr().err
    assert main(["score", "--model", "groupdnet", "--dataset", "synthetic", "--checkpoint",
                 str(tmp_path / "none.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_the_readme_example_is_the_file_and_runs(provisioned_weights):
    """README "Score your own model" shows examples/score_your_own_model.py whole, and it runs as shown."""
    script = REPO / "examples" / "score_your_own_model.py"
    readme = (REPO / "README.md").read_text()
    body = script.read_text().split('"""', 2)[2].strip()
    assert body in readme
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1",
           "SMISBENCH_WEIGHTS_DIR": str(provisioned_weights)}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() in readme and "'mocd': 0.0" in done.stdout


def test_get_dataset_config_knows_synthetic_without_importing_it_first():
    """Before: `get_dataset_config("synthetic")` said unknown dataset unless smisbench.data.synthetic was imported."""
    code = "from smisbench.datasets_config import get_dataset_config; print(get_dataset_config('synthetic').label_nc)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0 and done.stdout.strip() == "6", done.stderr


def test_out_keeps_score_json_and_the_smis_grid(capsys, tiny, tmp_path):
    out = tmp_path / "out"
    result = _json(capsys, f"{EXAMPLE}:build_per_class", tiny, "--metrics", "mcsd", "--out", str(out))
    assert json.loads((out / "score.json").read_text()) == result
    (grid,) = result["provenance"]["artifacts"]
    assert grid["kind"] == "smis_grid" and Path(grid["path"]).is_file()


@needs_example
def test_plugin_models_sample_by_name(capsys, tmp_path):
    import numpy as np
    from PIL import Image

    from smisbench.data.synthetic import SyntheticSMIS

    label = tmp_path / "label.png"
    Image.fromarray(SyntheticSMIS("test", length=1)[0]["label"].numpy().astype(np.uint8)).save(label)
    assert main(["sample", "--model", "example-per-class", "--dataset", "synthetic", "--label", str(label), "-n", "2",
                 "--out", str(tmp_path / "grid.png"), "--device", "cpu"]) == 0
    assert (tmp_path / "grid.png").is_file()


def test_seeds_give_the_mean_std_and_interval_of_the_single_seed_scores(capsys, tiny, tmp_path):
    """--seeds K scores K times with seeds s, s+1, ...; each value is the mean of the single-seed scores,
    with their sample std and bootstrap interval; stored, it is one run of K cells that reruns reuse."""
    import statistics

    model = f"{EXAMPLE}:build_global"
    singles = [_json(capsys, model, tiny, "--metrics", "mcsd,mocd,lpips", "--seed", str(s))["values"] for s in (5, 6)]
    assert singles[0]["mcsd"] != singles[1]["mcsd"]  # other codes drawn: the seeds differ
    both = _json(capsys, model, tiny, "--metrics", "mcsd,mocd,lpips", "--seed", "5", "--seeds", "2")
    assert both["seeds"] == [5, 6]
    for key in ("mcsd", "mocd", "lpips"):
        per_seed = [v[key] for v in singles]
        spread = both["spread"][key]
        assert spread["values"] == pytest.approx(per_seed, rel=1e-6)
        assert both["values"][key] == pytest.approx(statistics.mean(per_seed), rel=1e-6)
        assert spread["std"] == pytest.approx(statistics.stdev(per_seed), rel=1e-5)
        assert spread["low"] <= both["values"][key] <= spread["high"]
    listed = _json(capsys, model, tiny, "--metrics", "mcsd", "--seeds", "5,6")
    assert listed["seeds"] == [5, 6] and listed["values"]["mcsd"] == pytest.approx(both["values"]["mcsd"], rel=1e-6)

    store = tmp_path / "seeds.sqlite"
    stored = _json(capsys, model, tiny, "--metrics", "mcsd", "--seeds", "5,6", "--store", str(store))
    assert len(stored["store"]["cell_ids"]) == 2 and stored["values"]["mcsd"] == pytest.approx(
        both["values"]["mcsd"], rel=1e-6)
    assert _json(capsys, model, tiny, "--metrics", "mcsd", "--seeds", "5,6", "--store", str(store))["store"]["reused"]
    code, out, _ = _score(capsys, model, tiny, "--metrics", "mcsd", "--seeds", "5,6", "--no-progress")
    assert code == 0 and "2 seeds (5, 6)" in out and " ± " in out and "95% interval" in out


def test_bad_seeds_are_one_error_line(capsys, tiny):
    code, _, err = _score(capsys, f"{EXAMPLE}:build_global", tiny, "--seeds", "0")
    assert code == 2 and "error: --seeds 0" in err and "fix:" in err and "Traceback" not in err
