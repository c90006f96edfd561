"""Scoring from files: ``export-samples`` + ``score-samples`` give the in-memory route's numbers.

Toy models with known answers (conftest_weights) are registered for the synthetic dataset and
driven through the command line. LPIPS is the random-weight stand-in (the known answers do not
depend on its weights), patched in where the suite loads it; one test repeats the key case with
the provisioned AlexNet.

Tolerance. A PNG stores ``to_uint8(x)``, which moves each pixel by at most 1/255 (0.2 % of the
[-1, 1] range). The file route is therefore compared twice: with a model whose own outputs are
rounded the same way, where both routes score the very same pixels and must agree to float
rounding (1e-6), and with the plain model, where they may differ by the PNG rounding alone; 0.2 %
relative (the per-pixel bound's share of the range) is allowed there, and 0.04 % was measured.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest_weights import (  # noqa: F401  (fixtures)
    FakeInception,
    ToyDeterministicModel,
    ToyGlobalModel,
    ToyPerClassModel,
    lpips_alex,
    provisioned_weights,
    random_lpips,
)
from smisbench.cli import main
from smisbench.datasets_config import get_dataset_config
from smisbench.imaging import from_uint8, to_uint8
from smisbench.metrics.protocol import EvalProtocol

SYNTHETIC = get_dataset_config("synthetic")
MAPS, N, M = 4, 6, 5
ROUNDING_REL = 2e-3


class RoundedPerClass(ToyPerClassModel):
    """The per-class toy whose outputs are already PNG pixels (what the file route reads back)."""

    model_name = "toy-per-class-rounded"

    def _net(self, semantics, z):
        return from_uint8(to_uint8(super()._net(semantics, z)))


TOYS = {cls.model_name: cls for cls in (ToyPerClassModel, ToyGlobalModel, ToyDeterministicModel, RoundedPerClass)}


@pytest.fixture
def toys():
    """The toy models registered for the synthetic dataset (removed again afterwards)."""
    from smisbench.models.base import ModelEntry
    from smisbench.models.registry import register
    from smisbench.registry import MODELS

    for name, cls in TOYS.items():
        register(ModelEntry(name, "test toy", cls.codes_kind, lambda: {"synthetic": SYNTHETIC}, cls))
    yield TOYS
    for name in TOYS:
        MODELS.unregister(name)


@pytest.fixture
def lpips(monkeypatch):
    """The random-weight LPIPS wherever the suite loads LPIPS."""
    from smisbench.metrics.lpips_metric import LPIPSMetric

    metric = random_lpips()
    monkeypatch.setattr(LPIPSMetric, "load", classmethod(lambda cls, *args, **kwargs: metric))
    return metric


def export(out: Path, model: str, *extra: str) -> Path:
    assert main(["export-samples", "--model", model, "--dataset", "synthetic", "--out", str(out),
                 "--maps", str(MAPS), "--n", str(N), "--no-progress", *extra]) == 0
    return out


def score_json(folder: Path, capsys, *extra: str) -> dict:
    capsys.readouterr()
    code = main(["score-samples", str(folder), "--dataset", "synthetic", "--protocol", f"m={M}", "--json",
                 "--no-progress", *extra])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def in_memory(model_name: str, metrics=("mcsd_mocd", "lpips_diversity")) -> dict[str, float]:
    from smisbench.data.registry import build_dataset
    from smisbench.metrics.evaluate import evaluate
    from smisbench.models.registry import build_model

    torch.manual_seed(0)  # export-samples builds the model under the protocol seed
    model = build_model(model_name, "synthetic")
    result = evaluate(model, build_dataset("synthetic", None, "test"), SYNTHETIC, list(metrics),
                      EvalProtocol(n=N, m=M, diversity_maps=MAPS), "cpu", progress=False)
    return result.values


@pytest.fixture
def per_class_folder(tmp_path, toys, lpips):
    return export(tmp_path / "per_class", "toy-per-class")


def test_exported_images_are_the_in_memory_images(per_class_folder):
    """A class set's PNGs are to_uint8 of the images the in-memory route generates from the same codes."""
    from smisbench.data.registry import build_dataset
    from smisbench.metrics.smis_diversity import DiversitySettings, SetGenerator
    from smisbench.models.registry import build_model

    torch.manual_seed(0)
    generator = SetGenerator(build_model("toy-per-class", "synthetic"), None, DiversitySettings(n=N, m=M))
    label = build_dataset("synthetic", None, "test")[1]["label"]
    c = int(torch.unique(label)[-1])
    images = generator.generate(generator.semantics(label, None), generator.codes(generator.base(1), c, 1))
    files = sorted((per_class_folder / "0001" / f"class_{c:03d}").glob("*.png"))
    assert len(files) == N
    stored = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])
    assert np.array_equal(stored, to_uint8(images).permute(0, 2, 3, 1).numpy())
    written = np.asarray(Image.open(per_class_folder / "0001" / "label.png"))
    assert np.array_equal(written, label.numpy())


def test_file_route_equals_in_memory_route_per_class_model(per_class_folder, tmp_path, capsys):
    files = score_json(per_class_folder, capsys)
    values = files["values"]
    # class c's pixels only: mOCD is 0 (exactly here; 1e-6 allows float rounding that varies with a batch)
    assert values["mocd"] == pytest.approx(0.0, abs=1e-6) and values["mcsd"] > 1e-3
    assert files["provenance"]["model_origin"] == "samples" and files["protocol"]["n"] == N

    memory = in_memory("toy-per-class")
    assert memory["mocd"] == pytest.approx(0.0, abs=1e-6)
    for key in ("mcsd", "lpips"):
        assert values[key] == pytest.approx(memory[key], rel=ROUNDING_REL)

    rounded = score_json(export(tmp_path / "rounded", "toy-per-class-rounded"), capsys)["values"]
    exact = in_memory("toy-per-class-rounded")
    for key in ("mcsd", "mocd", "lpips"):
        assert rounded[key] == pytest.approx(exact[key], abs=1e-6)


def test_global_code_model_scores_mocd_above_mcsd_by_both_routes(tmp_path, toys, lpips, capsys):
    values = score_json(export(tmp_path / "global", "toy-global"), capsys)["values"]
    memory = in_memory("toy-global")
    assert values["mocd"] > values["mcsd"] > 1e-3 and memory["mocd"] > memory["mcsd"]
    for key in ("mcsd", "mocd", "lpips"):
        assert values[key] == pytest.approx(memory[key], rel=ROUNDING_REL)


def test_deterministic_model_needs_no_class_sets_and_scores_zero(tmp_path, toys, lpips, capsys):
    folder = export(tmp_path / "none", "toy-none")
    assert not list(folder.glob("*/class_*")) and len(list((folder / "0000" / "global").glob("*.png"))) == 1
    result = score_json(folder, capsys, "--metrics", "mcsd_mocd", "lpips")
    assert result["values"] == {"mcsd": 0.0, "mocd": 0.0, "lpips": 0.0}
    assert any("deterministic model" in note for note in result["notes"])
    _manifest(folder, n=1)  # a deterministic model's own folder need not name a set size
    assert score_json(folder, capsys, "--metrics", "mcsd_mocd")["values"] == {"mcsd": 0.0, "mocd": 0.0}


@pytest.mark.weights
def test_known_answers_with_the_provisioned_alexnet(tmp_path, toys, provisioned_weights, capsys):
    values = score_json(export(tmp_path / "alex", "toy-per-class"), capsys, "--metrics", "mcsd_mocd")["values"]
    memory = in_memory("toy-per-class", ["mcsd_mocd"])
    assert values["mocd"] == pytest.approx(0.0, abs=1e-6)
    assert values["mcsd"] == pytest.approx(memory["mcsd"], rel=ROUNDING_REL)


# ----------------------------------------------------------------------------- folders that cannot be scored
def _error(capsys, folder: Path, *extra: str) -> str:
    capsys.readouterr()
    assert main(["score-samples", str(folder), "--dataset", "synthetic", "--no-progress", *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "error:" in err[0] and err[1].strip().startswith("fix:"), err
    return err[0]


def _copy(folder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(folder, tmp_path / "broken"))


def _manifest(folder: Path, **changes) -> None:
    path = folder / "manifest.json"
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def test_missing_or_empty_folders_and_manifests_are_named(per_class_folder, tmp_path, capsys):
    assert "does not exist" in _error(capsys, tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    assert "is empty" in _error(capsys, tmp_path / "empty")
    broken = _copy(per_class_folder, tmp_path)
    (broken / "manifest.json").unlink()
    assert "has no manifest.json" in _error(capsys, broken)
    (broken / "manifest.json").write_text("{")
    assert "not readable JSON" in _error(capsys, broken)
    (broken / "manifest.json").write_text(json.dumps({"format": "smisbench-samples", "version": 1}))
    assert "lacks 'dataset'" in _error(capsys, broken)


def test_missing_classes_maps_and_samples_are_listed(per_class_folder, tmp_path, capsys):
    broken = _copy(per_class_folder, tmp_path)
    shutil.rmtree(broken / "0002")
    first_class = sorted((broken / "0001").glob("class_*"))[0]
    shutil.rmtree(first_class)
    (broken / "0003" / "global" / "004.png").unlink()
    line = _error(capsys, broken)
    assert "incomplete: 3 problem(s)" in line and "map 0002 is missing" in line
    assert f"0001/{first_class.name} is missing (class {int(first_class.name[6:])} is in its label map)" in line
    assert "0003/global lacks 1 of its k=6 samples (004.png)" in line


def test_wrong_image_size_is_named(per_class_folder, tmp_path, capsys):
    broken = _copy(per_class_folder, tmp_path)
    target = sorted((broken / "0000").glob("class_*"))[0] / "001.png"
    Image.new("RGB", (32, 32)).save(target)
    line = _error(capsys, broken, "--protocol", "m=15", "--metrics", "mcsd_mocd")  # m = all pairs: every file read
    assert f"{target} is 32x32 (height x width), the folder's samples are 64x64" in line


def test_label_maps_that_do_not_fit_the_dataset(per_class_folder, tmp_path, capsys):
    broken = _copy(per_class_folder, tmp_path)
    label = np.asarray(Image.open(broken / "0001" / "label.png")).copy()
    label[0, 0] = 9  # the synthetic set has ids 0..5
    Image.fromarray(label).save(broken / "0001" / "label.png")
    assert "label values [9] are outside the synthetic range 0..5" in _error(capsys, broken)

    broken = Path(shutil.copytree(per_class_folder, tmp_path / "swapped"))
    for name in ("label.png",):
        a, b = broken / "0000" / name, broken / "0001" / name
        a_bytes = a.read_bytes()
        a.write_bytes(b.read_bytes())
        b.write_bytes(a_bytes)
    for sub in ("0000", "0001"):  # give the swapped maps the class folders their labels ask for
        present = set(np.unique(np.asarray(Image.open(broken / sub / "label.png"))).tolist())
        for c in range(6):
            folder = broken / sub / f"class_{c:03d}"
            if c in present and not folder.exists():
                shutil.copytree(broken / sub / "global", folder)
            elif c not in present and folder.exists():
                shutil.rmtree(folder)
    line = _error(capsys, broken)
    assert "2 label maps of" in line and "are not those of synthetic/test (first: 0000, 0001)" in line

    _manifest(broken, dataset="deepfashion")
    assert "holds samples of dataset 'deepfashion', not 'synthetic'" in _error(capsys, broken)


def test_metrics_of_the_model_itself_are_refused(per_class_folder, capsys):
    assert "fps cannot be computed from samples" in _error(capsys, per_class_folder, "--metrics", "fps")


def test_exporting_into_a_used_folder_is_refused(per_class_folder, capsys):
    capsys.readouterr()
    assert main(["export-samples", "--model", "toy-per-class", "--dataset", "synthetic", "--out",
                 str(per_class_folder), "--no-progress"]) == 2
    assert "already exists and is not an empty folder" in capsys.readouterr().err


# ----------------------------------------------------------------------------- FID and segmentation from files
@pytest.fixture
def fake_inception(monkeypatch):
    from smisbench.metrics import fid

    monkeypatch.setattr(fid, "load_inception", lambda *args, **kwargs: FakeInception())


def test_fid_and_segmentation_read_the_first_global_sample_of_each_map(per_class_folder, fake_inception, capsys,
                                                                       monkeypatch, tmp_path):
    """FID, mIoU and accuracy from files equal the same metric objects fed with those PNGs in memory."""
    from smisbench.data.registry import build_dataset
    from smisbench.metrics.base import EvalContext
    from smisbench.metrics.registry import get_metric

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    protocol = ["--protocol", 'segmenter="synthetic-fcn"', "--protocol", "segmenter_train_steps=0"]
    result = score_json(per_class_folder, capsys, "--metrics", "fid,miou,accuracy", *protocol)
    assert set(result["values"]) == {"fid", "miou", "accuracy"} and result["protocol"]["fid_samples"] == MAPS
    assert any(note.startswith(f"fid: {MAPS} generated images") for note in result["notes"])

    dataset = build_dataset("synthetic", None, "test")
    p = EvalProtocol(**result["protocol"])
    ctx = EvalContext(None, dataset, SYNTHETIC, p, torch.device("cpu"))
    objects = [get_metric(name)(ctx) for name in ("fid", "miou")]
    batch = {"label": torch.stack([dataset[i]["label"] for i in range(MAPS)]),
             "image": torch.stack([dataset[i]["image"] for i in range(MAPS)])}
    pixels = [np.asarray(Image.open(per_class_folder / f"{i:04d}" / "global" / "000.png")) for i in range(MAPS)]
    generated = from_uint8(torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2))
    for metric in objects:
        metric.on_batch(ctx, batch, 0, generated)
    expected = {**objects[0].finish(ctx), **objects[1].finish(ctx)}
    for key in ("fid", "miou", "accuracy"):
        assert result["values"][key] == pytest.approx(expected[key], abs=1e-9)
    assert math.isfinite(result["values"]["fid"])
