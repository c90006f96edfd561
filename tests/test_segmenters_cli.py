"""``smisbench segment`` and ``smisbench segmenters`` end to end, on real sample files."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from smisbench.cli import main
from smisbench.segmenters.label_conventions import get_label_convention


def test_segment_scores_precomputed_predictions(samples, tmp_path, capsys):
    root = samples / "ade20k_sceneparsing" / "sampleData"
    out = tmp_path / "scores"
    code = main(["segment", "--predictions", "--images", str(root / "predictions"), "--labels",
                 str(root / "annotations"), "--label-convention", "ade20k_sceneparsing",
                 "--absent-class-rule", "sceneparsing", "--out", str(out), "--no-progress"])
    assert code == 0
    assert "mIoU: 10.00  pixel accuracy: 100.00" in capsys.readouterr().out
    scores = json.loads((out / "scores.json").read_text())
    assert scores["summary"]["mIoU"] == pytest.approx(0.1) and scores["images"] == 3
    table = pd.read_csv(out / "per_class.csv")
    assert len(table) == 150 and table["iou"].fillna(0).sum() == pytest.approx(15.0)


def test_segment_with_a_native_segmenter_end_to_end(samples, tmp_path):
    from smisbench.segmenters.registry import build_network
    from smisbench.segmenters.testing import randomize_, save_released_layout

    ckpt = save_released_layout("drn_d_105_cityscapes", randomize_(build_network("drn_d_105_cityscapes"), 5),
                                tmp_path / "ckpt")["weights"]
    folder = samples / "pix2pixHD_cityscapes" / "datasets" / "cityscapes"
    images, labels = tmp_path / "generated", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    convention = get_label_convention("cityscapes_labelids")
    expected_pixels = 0
    for path in sorted((folder / "train_img").glob("*_leftImg8bit.png"))[:2]:
        # stand-in "generated" images at a GAN's output size; labels stay at full resolution
        Image.open(path).convert("RGB").resize((256, 128), Image.BICUBIC).save(images / path.name)
        label_name = path.name.replace("_leftImg8bit", "_gtFine_labelIds")
        shutil.copy(folder / "train_label" / label_name, labels / label_name)
        small = np.asarray(Image.open(labels / label_name).resize((256, 128), Image.NEAREST))
        expected_pixels += int((convention.convert(small) != 255).sum())
    out = tmp_path / "out"
    with pytest.warns(UserWarning, match="not in the table"):
        code = main(["segment", "--images", str(images), "--labels", str(labels), "--protocol", "cityscapes-drn105",
                     "--checkpoint", str(ckpt), "--out", str(out), "--no-progress"])
    assert code == 0
    scores = json.loads((out / "scores.json").read_text())
    assert scores["images"] == 2
    assert scores["summary"]["scored_pixels"] == expected_pixels  # labels met the predictions at 128x256
    assert scores["protocol"]["common_size"] == "generated"
    assert scores["segmenter"]["checkpoints"][0]["status"] == "unpinned"
    confusion = json.loads((out / "confusion.json").read_text())
    assert np.asarray(confusion["matrix"]).sum() == expected_pixels


def test_segment_refuses_images_without_labels(samples, tmp_path, capsys):
    root = samples / "ade20k_sceneparsing" / "sampleData"
    labels = tmp_path / "labels"
    labels.mkdir()
    shutil.copy(root / "annotations" / "ADE_val_00000001.png", labels)
    code = main(["segment", "--predictions", "--images", str(root / "predictions"), "--labels", str(labels),
                 "--label-convention", "ade20k_sceneparsing", "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert "2 of 3 images have no label map" in err and "fix:" in err


def test_segment_without_checkpoint_says_where_to_get_it(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    code = main(["segment", "--images", str(tmp_path / "a"), "--labels", str(tmp_path / "a"),
                 "--segmenter", "csail_upernet101_ade20k"])
    assert code == 2
    assert "encoder_epoch_50.pth from http://sceneparsing.csail.mit.edu" in capsys.readouterr().err


def test_segmenters_lists_names_checkpoints_and_protocols(capsys):
    assert main(["segmenters", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    names = {s["name"] for s in listing["segmenters"]}
    assert {"csail_upernet101_ade20k", "drn_d_105_cityscapes", "graphonomy_cihp_deepfashion8",
            "mmseg_upernet_r101_ade20k", "mmseg_upernet_r101_cityscapes"} <= names
    protocols = {p["name"]: p for p in listing["protocols"]}
    assert protocols["ade20k-upernet101"]["absent_class_rule"] == "sceneparsing"


def test_segment_refuses_a_bare_sha256_for_a_two_file_segmenter(tmp_path, capsys):
    """CSAIL's UperNet has an encoder and a decoder file: a bare pin cannot say which (it was dropped silently)."""
    (tmp_path / "a").mkdir()
    code = main(["segment", "--images", str(tmp_path / "a"), "--labels", str(tmp_path / "a"),
                 "--segmenter", "csail_upernet101_ade20k", "--sha256", "ab" * 32])
    assert code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "encoder, decoder" in err
    assert "fix: pass one per file as --sha256 encoder=HEX --sha256 decoder=HEX" in err


def test_segment_refuses_a_sha256_for_an_unknown_role(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    code = main(["segment", "--images", str(tmp_path / "a"), "--labels", str(tmp_path / "a"),
                 "--segmenter", "csail_upernet101_ade20k", "--sha256", "encoder=ab", "--sha256", "weights=cd"])
    assert code == 2
    err = capsys.readouterr().err
    assert "no checkpoint role 'weights'" in err and "its roles are: encoder, decoder" in err


def test_sha256_pins_per_role_and_bare_for_one_file_segmenters():
    from smisbench.segmenters.cli import _sha256_pins

    assert _sha256_pins(["encoder=AA", "decoder=bb"], "csail", ("encoder", "decoder")) == {"encoder": "AA", "decoder": "bb"}
    assert _sha256_pins(["cafe"], "drn", ("weights",)) == {"weights": "cafe"}
    assert _sha256_pins([], "drn", ("weights",)) == {}
