"""`smisbench zoo train` end to end on tiny settings: checkpoint + manifest (command, losses, sha256), resuming an
up-to-date entry is a no-op, the segmenter's manifest holds its real-image mIoU, and a retraining reproduces the
manifest's first-step losses."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import pytest

from smisbench.io import sha256_file
from smisbench.zoo import train
from smisbench.zoo.definition import load_zoo, settings_for
from smisbench.zoo.store import checkpoint_path, load_zoo_model, read_manifest, manifest_path

ZOO = load_zoo()
TINY_DATA = {"length": 8}


def tiny(ident: str, steps: int = 3, **changes):
    settings = settings_for(ZOO, ident)
    return dataclasses.replace(settings, steps=steps, batch_size=2, dataset_options=TINY_DATA, **changes)


def test_read_losses_and_loss_record(tmp_path: Path):
    csv = tmp_path / "losses.csv"
    csv.write_text("step,epoch,lr_G,lr_D,G_GAN,D_real,sec_per_step\n1,0,0.1,0.4,2.0,1.0,3\n2,0,0.1,0.4,4.0,,3\n"
                   "3,0,0.1,0.4,6.0,3.0,3\n")
    rows = train.read_losses(csv)
    assert rows[0] == {"step": 1.0, "G_GAN": 2.0, "D_real": 1.0} and "D_real" not in rows[1]
    record = train.loss_record(rows, first=2, window=2)
    assert record["first_steps"] == rows[:2] and record["final"] == {"G_GAN": 5.0, "D_real": 3.0}


def test_zoo_train_writes_checkpoint_and_manifest_then_is_up_to_date(tmp_path: Path):
    out, work = tmp_path / "zoo", tmp_path / "work"
    plan = tiny("dscgan")
    stream = io.StringIO()
    (outcome,) = train.run(ZOO, [plan], out, work, "smisbench zoo train --models dscgan", lambda: None,
                           progress=False, stream=stream)
    manifest = read_manifest(manifest_path(out, "dscgan"))
    assert outcome.status == "trained" and manifest["steps"] == 3 and manifest["train"] == plan.to_dict()
    assert manifest["file"]["sha256"] == sha256_file(checkpoint_path(out, "dscgan"))
    assert "float16" in manifest["file"]["storage"] and 0 <= manifest["float16_check"]["max_abs"] <= 2
    assert manifest["command"]["train"].startswith("smisbench train dscgan --dataset synthetic --dataset-option")
    assert [r["step"] for r in manifest["losses"]["first_steps"]] == [1.0, 2.0, 3.0]
    assert set(manifest["losses"]["final"]) >= {"G_GAN", "D_real"}
    assert manifest["parameters"]["G+E"] == 490419 and manifest["environment"]["device"] == "cpu"
    assert manifest["wall_time_s"] > 0 and manifest["steps_per_s"] > 0 and manifest["step_s_median"] > 0
    model, _ = load_zoo_model("dscgan", out)
    assert model.model_name == "dscgan"
    (again,) = train.run(ZOO, [plan], out, work, "x", lambda: None, progress=False, stream=stream)
    assert again.status == "up to date"


def test_segmenter_manifest_records_its_real_test_image_scores(tmp_path: Path):
    from smisbench.zoo.cli import default_protocol

    plan = tiny("synthetic-fcn", steps=2)
    (outcome,) = train.run(ZOO, [plan], tmp_path, tmp_path / "work", "x", default_protocol, progress=False,
                           stream=io.StringIO())
    scores = outcome.manifest["real_test_images"]
    assert 0 <= scores["miou"] <= 1 and 0 <= scores["accuracy"] <= 1 and scores["images"] == TINY_DATA["length"]
    assert outcome.manifest["file"]["sha256"] == sha256_file(checkpoint_path(tmp_path, "synthetic-fcn"))


@pytest.mark.slow
def test_retraining_reproduces_the_manifest_first_step_losses(tmp_path: Path):
    """On a shipped manifest when there is one (the zoo's GroupDNet), else on one written here."""
    from smisbench.zoo.cli import REPRODUCE_TOLERANCE
    from smisbench.zoo.store import shipped_dir

    shipped = manifest_path(shipped_dir(), "groupdnet")
    if shipped.is_file():
        manifest = read_manifest(shipped)
    else:
        (outcome,) = train.run(ZOO, [tiny("groupdnet", steps=6)], tmp_path / "zoo", tmp_path / "work", "x",
                               lambda: None, progress=False, stream=io.StringIO())
        manifest = outcome.manifest
    result = train.reproduce_first_steps(manifest, tmp_path / "again", steps=5)
    assert result["steps"] == 5 and len(result["now"]) == 5
    assert result["max_rel_diff"] <= REPRODUCE_TOLERANCE, result


def test_a_scaled_run_never_writes_into_the_shipped_folder(capsys):
    from smisbench.cli import main

    assert main(["zoo", "train", "--models", "dscgan", "--steps-scale", "0.01"]) == 2
    assert "pass --out DIR" in capsys.readouterr().err


def test_manifests_record_the_commit_the_training_started_from(tmp_path: Path, monkeypatch):
    """A commit made in the checkout while a long `zoo train` runs did not train its weights: every manifest
    of the run names the commit taken before the first training."""
    import smisbench.provenance as provenance

    calls = []

    def moving_head(start=None):  # HEAD moves on after every look
        calls.append(start)
        return f"{len(calls):040d}"

    monkeypatch.setattr(provenance, "git_commit", moving_head)
    plans = [tiny("dscgan", steps=1), tiny("bicyclegan", steps=1)]
    outcomes = train.run(ZOO, plans, tmp_path / "zoo", tmp_path / "work", "x", lambda: None, progress=False,
                         stream=io.StringIO())
    assert [o.manifest["environment"]["git_commit"] for o in outcomes] == [f"{1:040d}", f"{1:040d}"]
    assert len(calls) > 1  # the checkout was looked at again later, and moved
