"""Bad image and label files given to ``lpips``, ``fid``, ``segment`` and ``sample``: exit 2, one
``error:`` line naming the file plus a ``fix:`` line, never a traceback; 16-bit and mixed-size inputs
give the right answer instead of a wrong one or a crash.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import SAMPLES
from conftest_weights import provisioned_weights  # noqa: F401  (fixture)
from smisbench.cli import main

COCO = SAMPLES / "spade_coco_stuff" / "datasets" / "coco_stuff"


def refused(code: int, capsys, *words: str) -> str:
    """Assert the documented failure shape and return stderr."""
    captured = capsys.readouterr()
    err = captured.err
    assert code == 2, err
    assert "Traceback" not in err + captured.out
    lines = [line for line in err.splitlines() if line.strip()]
    assert sum("error:" in line for line in lines) == 1 and "error:" in lines[0], err
    assert len(lines) == 2 and lines[1].strip().startswith("fix: "), err
    for word in words:
        assert word in err, err
    return err


def _rgb(path: Path, seed: int, size: tuple[int, int] = (32, 40)) -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)
    return path


def _label(path: Path, values: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values.astype(np.uint8)).save(path)
    return path


def _truncated(path: Path, source: Path) -> Path:
    data = source.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _bad_files(tmp_path: Path) -> dict[str, Path]:
    """One file of each unreadable kind, named after what is wrong with it."""
    good = _label(tmp_path / "good.png", np.arange(32 * 40).reshape(32, 40) % 6)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "text.png").write_text("not an image\n")
    (bad / "empty.png").write_bytes(b"")
    return {"missing": bad / "absent.png", "truncated": _truncated(bad / "truncated.png", good),
            "not an image": bad / "text.png", "empty": bad / "empty.png", "folder": bad}


WHAT_IS_SAID = {"missing": "does not exist", "truncated": "truncated", "not an image": "not an image file",
                "empty": "empty", "folder": "is a folder"}


# ----------------------------------------------------------------------------- lpips
@pytest.mark.parametrize("kind", list(WHAT_IS_SAID))
def test_lpips_refuses_unreadable_images(tmp_path, capsys, kind):
    image = _bad_files(tmp_path)[kind]
    code = main(["lpips", str(_rgb(tmp_path / "a.png", 0)), str(image), "--weights-dir", str(tmp_path / "none")])
    refused(code, capsys, WHAT_IS_SAID[kind], str(image))


@pytest.mark.weights
def test_lpips_of_a_sixteen_bit_png_is_its_value_not_white(provisioned_weights, tmp_path, capsys):
    Image.fromarray(np.full((64, 64, 3), 255, dtype=np.uint8)).save(tmp_path / "white.png")
    Image.fromarray(np.full((64, 64, 3), 128, dtype=np.uint8)).save(tmp_path / "grey8.png")
    Image.fromarray(np.full((64, 64), 128 * 256, dtype=np.uint16)).save(tmp_path / "grey16.png")
    values = []
    for pair in (("white.png", "grey16.png"), ("grey8.png", "grey16.png")):
        assert main(["lpips", *(str(tmp_path / p) for p in pair), "--weights-dir", str(provisioned_weights)]) == 0
        values.append(float(capsys.readouterr().out.strip().splitlines()[-1]))
    assert values[0] > 0.1  # was 0.000000: the 16-bit image was read as all white
    assert values[1] == 0.0


# ----------------------------------------------------------------------------- fid
def _folder(path: Path, count: int, size: tuple[int, int] = (32, 40), seed: int = 0) -> Path:
    for i in range(count):
        _rgb(path / f"{i}.png", seed + i, size)
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_fid_refuses_empty_single_and_missing_folders(tmp_path, capsys):
    good = _folder(tmp_path / "good", 3)
    for folder, words in ((_folder(tmp_path / "empty", 0), "no image files"),
                          (_folder(tmp_path / "one", 1), "only 1 image file"),
                          (tmp_path / "absent", "does not exist"),
                          (good / "0.png", "not a folder")):
        code = main(["fid", str(good), str(folder), "--weights-dir", str(tmp_path / "none")])
        refused(code, capsys, words, str(folder))


def test_fid_refuses_a_batch_size_of_zero(tmp_path, capsys):
    a, b = _folder(tmp_path / "a", 2), _folder(tmp_path / "b", 2)
    refused(main(["fid", str(a), str(b), "--batch-size", "0", "--weights-dir", str(tmp_path)]), capsys, "batch size")


@pytest.mark.parametrize("kind", ["not an image", "empty"])
def test_fid_refuses_a_folder_holding_a_non_image_before_computing(tmp_path, capsys, kind):
    folder = _folder(tmp_path / "b", 3)
    shutil.copy(_bad_files(tmp_path)[kind], folder / "x.png")
    code = main(["fid", str(_folder(tmp_path / "a", 3)), str(folder), "--weights-dir", str(tmp_path / "none")])
    refused(code, capsys, WHAT_IS_SAID[kind], "x.png")  # found from the headers: no weights were needed


@pytest.mark.weights
def test_fid_refuses_a_truncated_image(provisioned_weights, tmp_path, capsys):
    folder = _folder(tmp_path / "a", 3)
    _truncated(folder / "0.png", _rgb(tmp_path / "whole.png", 9))
    code = main(["fid", str(folder), str(_folder(tmp_path / "b", 3)), "--weights-dir", str(provisioned_weights)])
    refused(code, capsys, "truncated", "0.png")


def test_fid_brings_images_of_different_sizes_to_one_size(tmp_path):
    from smisbench.metrics.fid import image_folders

    a = _folder(tmp_path / "a", 2, (426, 640))
    _rgb(a / "2.png", 7, (425, 640))
    b = _folder(tmp_path / "b", 2, (100, 120))
    (b / "notes.txt").write_text("not an image")
    set_a, set_b, notes = image_folders(a, b)
    shapes = {tuple(set_a[i].shape) for i in range(3)} | {tuple(set_b[i].shape) for i in range(2)}
    assert shapes == {(3, 426, 640)}
    assert set_a[0].dtype == torch.uint8
    assert any("notes.txt" in note for note in notes)
    assert any("resized 1 of 3 in" in note and "2 of 2 in" in note and "426x640" in note
               and "bicubic-antialias" in note and "0.png" in note for note in notes), notes
    same = np.asarray(Image.open(a / "0.png").convert("RGB"))
    assert np.array_equal(set_a[0].permute(1, 2, 0).numpy(), same)  # an image of the target size is untouched
    _, sized, notes = image_folders(a, b, size=(64, 80), resize_filter="bilinear-antialias")
    assert tuple(sized[0].shape) == (3, 64, 80) and "bilinear-antialias" in notes[-1]


def test_fid_reads_the_real_mixed_size_coco_photos(tmp_path):
    from smisbench.metrics.fid import image_folders

    if not COCO.exists():
        pytest.skip(f"{COCO} is absent: the shared data folder ../shared is not beside this checkout")
    sizes = {Image.open(p).size for p in (COCO / "val_img").iterdir()}
    assert len(sizes) > 1  # real photos: 640x426, 640x425, ...
    set_a, set_b, notes = image_folders(COCO / "val_img", COCO / "train_img")
    target = (3, *set_a.size)
    assert all(tuple(s[i].shape) == target for s in (set_a, set_b) for i in range(len(s)))
    assert any("resized" in note for note in notes)


@pytest.mark.weights
@pytest.mark.slow  # a 2048x2048 eigen-decomposition in torch-fidelity's FID
def test_fid_cli_scores_the_real_mixed_size_coco_folders(provisioned_weights, capsys):
    if not COCO.exists():
        pytest.skip(f"{COCO} is absent: the shared data folder ../shared is not beside this checkout")
    code = main(["fid", str(COCO / "val_img"), str(COCO / "train_img"), "--weights-dir", str(provisioned_weights)])
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 0  # was: RuntimeError "stack expects each tensor to be equal size"
    assert any(line.startswith("note: resized") and "bicubic-antialias" in line for line in out)
    assert float(out[-1]) > 0


# ----------------------------------------------------------------------------- segment
def _prediction_folders(tmp_path: Path, prediction: np.ndarray) -> tuple[Path, Path]:
    truth = np.arange(24 * 30).reshape(24, 30) % 8
    _label(tmp_path / "labels" / "a.png", truth)
    _label(tmp_path / "preds" / "a.png", prediction)
    return tmp_path / "preds", tmp_path / "labels"


def _segment(preds: Path, labels: Path) -> int:
    return main(["segment", "--predictions", "--images", str(preds), "--labels", str(labels),
                 "--label-convention", "deepfashion8", "--no-progress"])


@pytest.mark.parametrize("kind", ["truncated", "not an image", "empty"])
@pytest.mark.parametrize("side", ["labels", "preds"])
def test_segment_refuses_unreadable_label_maps(tmp_path, capsys, kind, side):
    preds, labels = _prediction_folders(tmp_path, np.zeros((24, 30)))
    folder = labels if side == "labels" else preds
    shutil.copy(_bad_files(tmp_path)[kind], folder / "a.png")
    refused(_segment(preds, labels), capsys, WHAT_IS_SAID[kind], str(folder / "a.png"))


def test_segment_reports_a_smaller_prediction_as_a_size_mismatch(tmp_path, capsys):
    preds, labels = _prediction_folders(tmp_path, np.zeros((12, 15)))
    err = refused(_segment(preds, labels), capsys, "15x12", "30x24")
    assert "ignored value" not in err


def test_segment_refuses_a_colour_label_map(tmp_path, capsys):
    preds, labels = _prediction_folders(tmp_path, np.zeros((24, 30)))
    _rgb(labels / "a.png", 3, (24, 30))
    refused(_segment(preds, labels), capsys, "colour image", "mode L")


# ----------------------------------------------------------------------------- sample
def _sample(tmp_path: Path, label: Path, *extra: str) -> int:
    return main(["sample", "--model", "groupdnet", "--dataset", "synthetic", "--label", str(label), "--device", "cpu",
                 "--out", str(tmp_path / "grid.png"), *extra])


@pytest.mark.parametrize("kind", list(WHAT_IS_SAID))
def test_sample_refuses_unreadable_label_maps(tmp_path, capsys, kind):
    label = _bad_files(tmp_path)[kind]
    refused(_sample(tmp_path, label), capsys, WHAT_IS_SAID[kind], str(label))
    assert not (tmp_path / "grid.png").exists()


def test_sample_refuses_colour_and_out_of_range_label_maps(tmp_path, capsys):
    refused(_sample(tmp_path, _rgb(tmp_path / "colour.png", 1)), capsys, "colour image")
    values = np.zeros((64, 64))
    values[10, 10] = 9  # one pixel, which a nearest-neighbour resize to 32x32 would drop
    refused(_sample(tmp_path, _label(tmp_path / "nine.png", values)), capsys, "[9]", "0..5")


def test_sample_refuses_no_samples_and_unknown_classes(tmp_path, capsys):
    label = _label(tmp_path / "label.png", np.arange(32 * 32).reshape(32, 32) % 6)
    refused(_sample(tmp_path, label, "-n", "0"), capsys, "0 samples")
    refused(_sample(tmp_path, label, "--classes", "99"), capsys, "class 99", "0..5")
    assert not (tmp_path / "grid.png").exists()


def test_sample_of_a_readable_label_map_notes_the_resize(tmp_path, capsys):
    label = _label(tmp_path / "label.png", np.arange(48 * 40).reshape(48, 40) % 6)
    assert _sample(tmp_path, label, "-n", "1", "--classes", "2") == 0
    out = capsys.readouterr().out
    assert "note: label map" in out and "40x48" in out and "resized (nearest)" in out
    assert (tmp_path / "grid.png").exists()


# ----------------------------------------------------------------------------- datasets
def test_datasets_read_sixteen_bit_photos_and_list_truncated_label_maps(tmp_path, capsys):
    from smisbench.data.registry import build_dataset

    root = tmp_path / "custom"
    grey = np.full((16, 16), 200, dtype=np.uint8)
    (root / "images").mkdir(parents=True)
    Image.fromarray(grey.astype(np.uint16) * 257).save(root / "images" / "a.png")  # 16-bit, the same grey
    Image.fromarray(np.dstack([grey] * 3)).save(root / "images" / "b.png")
    for name in ("a", "b"):
        _label(root / "labels" / f"{name}.png", np.arange(256).reshape(16, 16) % 6)
    dataset = build_dataset("custom", root, "val", config="deepfashion", size=16)
    assert torch.equal(dataset[0]["image"], dataset[1]["image"])  # was: the 16-bit photo read as white
    _truncated(root / "labels" / "b.png", root / "labels" / "a.png")
    code = main(["datasets", "check", "custom", "--root", str(root), "--split", "val",
                 "--option", "config=deepfashion", "--option", "size=16"])
    out = capsys.readouterr().out
    assert code == 1 and "1 unusable" in out and "b.png" in out and "truncated" in out
