"""``smisbench datasets``: listing, checking a tree, exporting the synthetic set."""

from __future__ import annotations

import numpy as np
from PIL import Image

from smisbench.cli import main
from smisbench.data.cli import parse_options


def test_list_names_every_reader(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in ("synthetic", "deepfashion", "cityscapes", "ade20k", "custom"):
        assert name in out


def test_check_reports_the_bad_files(tmp_path, capsys):
    for i, top in enumerate((3, 9)):
        (tmp_path / "images").mkdir(exist_ok=True)
        (tmp_path / "labels").mkdir(exist_ok=True)
        Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(tmp_path / "images" / f"f{i}.png")
        Image.fromarray(np.full((8, 8), top, dtype=np.uint8)).save(tmp_path / "labels" / f"f{i}.png")
    code = main(["datasets", "check", "custom", "--root", str(tmp_path), "--option", "label_nc=5",
                 "--option", "size=8"])
    out = capsys.readouterr().out
    assert code == 1 and "2 items checked, 1 unusable" in out and "f1.png" in out


def test_unknown_dataset_is_a_clean_error(capsys):
    assert main(["datasets", "check", "coco", "--root", "."]) == 2
    assert "unknown dataset 'coco'" in capsys.readouterr().err


def test_export_synthetic(tmp_path, capsys):
    assert main(["datasets", "export-synthetic", str(tmp_path), "--split", "val", "--length", "3", "--size", "16"]) == 0
    assert sorted(p.name for p in (tmp_path / "labels").iterdir()) == [
        "synthetic_val_000000.png", "synthetic_val_000001.png", "synthetic_val_000002.png"]
    assert Image.open(tmp_path / "images" / "synthetic_val_000001.png").size == (16, 16)


def test_parse_options_reads_json_values():
    assert parse_options(["size=[32,64]", "config=deepfashion", "length=5", "flip=false"]) == {
        "size": (32, 64), "config": "deepfashion", "length": 5, "flip": False}
