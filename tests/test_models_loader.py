"""The one model loader: bundles, official files and folders, belonging, safe loading, CLI commands, API."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from smisbench.cli import main
from smisbench.errors import SmisbenchError, WeightsError
from smisbench.models.checkpoints import save_bundle
from smisbench.models.loader import check_checkpoint, load_model
from smisbench.models.registry import build_model, model_config

torch.set_num_threads(1)


def bundle_of(tmp_path: Path, name: str, dataset: str = "synthetic") -> Path:
    model = build_model(name, dataset)
    path = tmp_path / f"{name}-{dataset}.pt"
    save_bundle(path, model, model_config(name, dataset))
    return path


def label_png(tmp_path: Path) -> Path:
    label = np.zeros((64, 64), dtype=np.uint8)
    label[8:30, 8:30], label[34:60, 30:60] = 1, 2
    path = tmp_path / "label.png"
    Image.fromarray(label).save(path)
    return path


class Evil:
    """A pickle that would create a file when unpickled without the weights-only unpickler."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


# ----- sample --weights respects --model/--dataset -----

@pytest.mark.parametrize("model, dataset", [("spade", "deepfashion"), ("vspade", "synthetic"), ("groupdnet", "deepfashion")])
def test_sample_refuses_a_bundle_of_another_model_or_dataset(tmp_path, capsys, model, dataset):
    bundle = bundle_of(tmp_path, "groupdnet")
    out = tmp_path / "grid.png"
    code = main(["sample", "--model", model, "--dataset", dataset, "--weights", str(bundle),
                 "--label", str(label_png(tmp_path)), "-n", "1", "--out", str(out)])
    assert code == 2 and not out.exists()
    err = capsys.readouterr().err
    assert f"is a groupdnet/synthetic bundle, not {model}/{dataset}" in err and "fix:" in err


def test_sample_takes_its_own_bundle_and_an_official_release_folder(tmp_path):
    source = build_model("groupdnet", "synthetic")
    release = tmp_path / "checkpoints" / "synthetic_smis"
    release.mkdir(parents=True)
    torch.save({f"module.{k}": v for k, v in source.netG.state_dict().items()}, release / "latest_net_G.pth")
    torch.save(source.netE.state_dict(), release / "latest_net_E.pth")
    for weights in (bundle_of(tmp_path, "groupdnet"), release):
        out = tmp_path / f"{weights.name}.png"
        assert main(["sample", "--model", "groupdnet", "--dataset", "synthetic", "--weights", str(weights),
                     "--label", str(label_png(tmp_path)), "--classes", "1", "-n", "1", "--out", str(out)]) == 0
        assert out.is_file()


# ----- load_model: every source, strict, with the first keys that do not fit -----

def test_load_model_reads_every_source_kind(tmp_path):
    source = build_model("groupdnet", "synthetic")
    release = tmp_path / "release"
    release.mkdir()
    torch.save({f"module.{k}": v for k, v in source.netG.state_dict().items()}, release / "latest_net_G.pth")
    torch.save(source.netE.state_dict(), release / "latest_net_E.pth")
    save_bundle(tmp_path / "b.pt", source, source.config)
    expected = source.state_dict()
    for where in (release, tmp_path / "b.pt"):
        loaded = load_model(where, "groupdnet", "synthetic")
        assert all(torch.equal(loaded.model.state_dict()[k], v) for k, v in expected.items())
    folder = load_model(release, "groupdnet", "synthetic")
    assert folder.checkpoint.format == "official parts" and set(folder.files) == {"G", "E"}
    assert folder.reports[0].stripped_prefix == "module." and not folder.notes
    g_only = load_model(release / "latest_net_G.pth", "groupdnet", "synthetic")
    assert set(g_only.files) == {"G"} and "encoder keeps random weights" in g_only.notes[0]
    assert load_model(tmp_path / "b.pt").model.model_name == "groupdnet"  # a bundle says what it is
    with pytest.raises(WeightsError, match="not a smisbench model bundle"):
        load_model(release)  # an official file does not: model and dataset are needed
    with pytest.raises(WeightsError, match="holds the encoder but no generator"):
        load_model(release / "latest_net_E.pth", "groupdnet", "synthetic")


def test_a_file_of_another_model_names_its_first_misfits_on_one_line(tmp_path):
    torch.save(build_model("vspade", "synthetic").netG.state_dict(), tmp_path / "latest_net_G.pth")
    with pytest.raises(WeightsError) as err:
        load_model(tmp_path / "latest_net_G.pth", "groupdnet", "synthetic")
    problem = err.value.problem
    assert "\n" not in problem and "does not fit groupdnet/synthetic part G" in problem
    assert "missing keys" in problem or "unexpected keys" in problem or "mis-shaped keys" in problem
    assert "(+" in problem  # the first few named, the count of the rest given
    assert "--model/--dataset" in err.value.fix


def test_harness_style_bundle_of_another_dataset_is_refused(tmp_path):
    bundle = bundle_of(tmp_path, "groupdnet")
    with pytest.raises(WeightsError, match="is a groupdnet/synthetic bundle, not groupdnet/deepfashion"):
        load_model(bundle, "groupdnet", "deepfashion")


def test_malicious_pickle_is_refused_without_running_it(tmp_path, capsys):
    marker = tmp_path / "ran"
    release = tmp_path / "release"
    release.mkdir()
    torch.save({"conv.weight": torch.zeros(1), "payload": Evil(marker)}, release / "latest_net_G.pth")
    with pytest.raises(WeightsError) as err:
        load_model(release, "groupdnet", "synthetic")
    text = str(err.value)
    assert "holds pickled Python code" in text and "safe loading refuses" in text
    assert "official release" in text and "weights_only" not in text
    assert not marker.exists()
    code = main(["import-checkpoint", str(release), "--model", "groupdnet", "--dataset", "synthetic",
                 "--out", str(tmp_path / "x.pt")])
    stderr = capsys.readouterr().err
    assert code == 2 and "holds pickled Python code" in stderr and "weights_only" not in stderr
    assert not marker.exists() and not (tmp_path / "x.pt").exists()


def test_corrupt_file_message_never_suggests_unsafe_loading(tmp_path):
    path = tmp_path / "latest_net_G.pth"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot read checkpoint") as err:
        load_model(path, "groupdnet", "synthetic")
    assert "weights_only" not in str(err.value)


# ----- config read off the file, in every command -----

def test_inspect_and_import_read_the_local_enhancer_layout_off_the_file(tmp_path, capsys):
    source = build_model("pix2pixhd", "synthetic", n_local_enhancers=1)
    torch.save({f"module.{k}": v for k, v in source.netG.state_dict().items()}, tmp_path / "latest_net_G.pth")
    assert main(["inspect-checkpoint", str(tmp_path / "latest_net_G.pth"), "--model", "pix2pixhd",
                 "--dataset", "synthetic"]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "n_local_enhancers=1" in out
    report, inferred = check_checkpoint(tmp_path, "pix2pixhd", "synthetic")  # the folder works the same
    assert report.fits and inferred["n_local_enhancers"] == 1


def test_inspect_checks_a_bundle_against_the_requested_model(tmp_path, capsys):
    bundle = bundle_of(tmp_path, "groupdnet")
    assert main(["inspect-checkpoint", str(bundle), "--model", "groupdnet", "--dataset", "synthetic"]) == 0
    assert "OK" in capsys.readouterr().out
    assert main(["inspect-checkpoint", str(bundle), "--model", "vspade", "--dataset", "synthetic"]) == 2
    assert "is a groupdnet/synthetic bundle" in capsys.readouterr().err


def test_label2city_1024p_listing_fits_with_the_config_read_off_it(tmp_path, official_keys):
    """Shape-only (meta tensors, no memory): the official key layout and the config the loader infers."""
    from smisbench.models import pix2pixhd

    listing = {}
    for line in (official_keys / "pix2pixhd_label2city_1024p_G.txt").read_text().splitlines():
        name, shape = line.split(" ", 1)
        listing[name] = tuple(int(s) for s in shape.strip("()").split(",") if s.strip())
    release = tmp_path / "label2city_1024p"
    release.mkdir()
    torch.save({k: torch.empty(s, device="meta") for k, s in listing.items()}, release / "latest_net_G.pth")
    assert os.path.getsize(release / "latest_net_G.pth") < 1 << 20
    report, inferred = check_checkpoint(release, "pix2pixhd", "cityscapes")
    assert report.fits and len(listing) == 74
    assert {k: inferred[k] for k in pix2pixhd.LABEL2CITY_1024P} == pix2pixhd.LABEL2CITY_1024P
    report, _ = check_checkpoint(release, "pix2pixhd", "cityscapes", overrides={"n_local_enhancers": 0})
    assert not report.fits  # an explicit override wins, and then the file does not fit


# ----- the Python API -----

def test_python_api_is_the_same_loader(tmp_path):
    import smisbench.models as models

    assert models.load_model is load_model
    loaded = models.load_model(bundle_of(tmp_path, "vspade"), "vspade", "synthetic")
    assert loaded.model.model_name == "vspade" and len(loaded.info["sha256"]) == 64
    with pytest.raises(SmisbenchError):
        models.load_model(tmp_path / "absent.pt", "vspade", "synthetic")
