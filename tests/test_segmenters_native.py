"""The paper's segmenters, rebuilt natively: released key layouts, strict loading, inference at real sizes.

The released files cannot be downloaded here, so each network is built with random weights
(BN statistics included), saved under the released file name(s) in the released key layout and
loaded back through the real loader, which checks every key and shape.
"""

from __future__ import annotations

import argparse
import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from smisbench.errors import WeightsError
from smisbench.io import sha256_file
from smisbench.segmenters.registry import build_network, get_spec, load_segmenter
from smisbench.segmenters.testing import randomize_, save_released_layout

NATIVE = ("csail_upernet101_ade20k", "drn_d_105_cityscapes", "graphonomy_cihp_deepfashion8")
# (listing files, parameter counts) from ../shared/spec (protocol.md's table)
LISTINGS = {
    "csail_upernet101_ade20k": {"encoder": ("csail_upernet101_ade20k_encoder.txt", 42_623_936),
                                "decoder": ("csail_upernet101_ade20k_decoder.txt", 40_590_486)},
    "drn_d_105_cityscapes": {None: ("drn_d_105_cityscapes.txt", 54_302_915)},
    "graphonomy_cihp_deepfashion8": {None: ("graphonomy_cihp_inference.txt", 41_390_528)},
}
# generated-image sizes of the suite's datasets (DatasetConfig): what the segmenters see in a normal run
DATASET_SIZE = {"csail_upernet101_ade20k": (256, 256), "drn_d_105_cityscapes": (256, 512),
                "graphonomy_cihp_deepfashion8": (256, 256)}


def _read_listing(path: Path) -> list[tuple[str, tuple[int, ...]]]:
    rows = []
    for line in path.read_text().splitlines():
        name, shape = line.split(" ", 1)
        rows.append((name, tuple(int(v) for v in shape.strip("()").split(",") if v.strip())))
    return rows


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """{name: (random network, {role: path})}, built lazily and shared by the tests of this module."""
    cache: dict[str, tuple[torch.nn.Module, dict[str, Path]]] = {}

    def get(name: str):
        if name not in cache:
            network = randomize_(build_network(name), seed=len(cache) + 1).eval()
            folder = tmp_path_factory.mktemp(name)
            cache[name] = (network, save_released_layout(name, network, folder))
        return cache[name]

    return get


@pytest.fixture(scope="module")
def loaded(released):
    cache = {}

    def get(name: str):
        if name not in cache:
            with pytest.warns(UserWarning, match="not in the table of released files"):
                cache[name] = load_segmenter(name, released(name)[1], multi_scale=False)
        return cache[name]

    return get


@pytest.mark.parametrize("name", NATIVE)
def test_key_layout_and_parameter_count_match_the_released_files(name, official_keys):
    network = build_network(name)
    for role, (listing, params) in LISTINGS[name].items():
        module = getattr(network, role) if role else network
        ours = [(k, tuple(v.shape)) for k, v in module.state_dict().items()]
        assert ours == _read_listing(official_keys / listing)
        assert sum(p.numel() for p in module.parameters()) == params


@pytest.mark.parametrize("name", NATIVE)
def test_released_layout_round_trip_through_the_strict_loader(name, released, loaded):
    network, paths = released(name)
    assert set(paths) == set(get_spec(name).roles)
    segmenter = loaded(name)
    ours = segmenter.network.state_dict()
    for key, value in network.state_dict().items():
        assert torch.equal(ours[key], value), key
    records = segmenter.provenance["checkpoints"]
    assert {r["role"] for r in records} == set(paths)
    for record in records:
        assert record["sha256"] == sha256_file(record["path"])
        assert record["status"] == "unpinned" and record["warnings"]


@pytest.mark.parametrize("name", NATIVE)
def test_single_scale_prediction_at_the_dataset_resolution(name, loaded):
    segmenter = loaded(name)
    h, w = DATASET_SIZE[name]
    image = torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    scores = segmenter.scores(image)  # one forward pass (per scale) at the size a normal run uses
    assert scores.shape == (len(getattr(segmenter, "native_classes", segmenter.classes)), h, w)
    assert torch.isfinite(scores).all()
    prediction = segmenter.to_eval_classes(scores.argmax(0))
    assert prediction.dtype == torch.int64
    assert 0 <= int(prediction.min()) and int(prediction.max()) < segmenter.num_classes


def test_graphonomy_flip_averaging_is_mirror_equivariant(loaded):
    """With flip + left/right swap averaging, the parse of a mirrored image is the mirrored, swapped parse."""
    from smisbench.segmenters.graphonomy import flip_channel_order

    segmenter = loaded("graphonomy_cihp_deepfashion8")
    image = torch.randint(0, 256, (3, 64, 48), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    direct = segmenter.scores(image)
    mirrored = segmenter.scores(image.flip(-1).contiguous())
    torch.testing.assert_close(mirrored, direct[flip_channel_order(20)].flip(-1), rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------------------- documented errors
def test_sha256_mismatch_with_a_pinned_file_names_the_file_and_the_fix(released):
    name = "graphonomy_cihp_deepfashion8"
    spec = get_spec(name)
    path = released(name)[1]["weights"]
    entry = spec.checkpoints[0]
    pinned = dataclasses.replace(spec, checkpoints=(dataclasses.replace(entry, sha256="ab" * 32),))
    with pytest.raises(WeightsError) as err:
        pinned.load(pinned, {"weights": path})
    message = str(err.value)
    assert str(path) in message and "ab" * 32 in message and "download it again" in message
    with pytest.raises(WeightsError, match="was required"):
        load_segmenter(name, [str(path)], expected_sha256={"weights": "0123abcd"})


def test_matching_pin_loads_without_warning(released):
    name = "drn_d_105_cityscapes"
    path = released(name)[1]["weights"]
    spec = get_spec(name)
    pinned = dataclasses.replace(
        spec, checkpoints=(dataclasses.replace(spec.checkpoints[0], sha256=sha256_file(path)),))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        segmenter = pinned.load(pinned, {"weights": path})
    assert segmenter.provenance["checkpoints"][0]["status"] == "pinned"


def _resave(state: dict, path: Path) -> Path:
    torch.save(state, path)
    return path


def test_missing_unexpected_and_misshaped_keys_are_refused(released, tmp_path):
    name = "graphonomy_cihp_deepfashion8"
    state = torch.load(released(name)[1]["weights"], weights_only=True)
    without = dict(state)
    del without["semantic.bias"]
    with pytest.raises(WeightsError, match=r"1 missing: semantic.bias"):
        load_segmenter(name, [str(_resave(without, tmp_path / "a.pth"))])
    extra = dict(state, **{"aux_head.weight": torch.zeros(3)})
    with pytest.raises(WeightsError, match=r"1 unexpected: aux_head.weight"):
        load_segmenter(name, [str(_resave(extra, tmp_path / "b.pth"))])
    more_classes = dict(state, **{"semantic.weight": torch.zeros(21, 256, 1, 1), "semantic.bias": torch.zeros(21)})
    misshaped = r"2 mis-shaped: semantic.weight \(21, 256, 1, 1\) \(expected \(20, 256, 1, 1\)\)"
    with pytest.raises(WeightsError, match=misshaped):
        load_segmenter(name, [str(_resave(more_classes, tmp_path / "c.pth"))])


def test_swapped_encoder_and_decoder_files_are_refused(released):
    paths = released("csail_upernet101_ade20k")[1]
    with pytest.raises(WeightsError, match="encoder file .* does not fit the network"):
        load_segmenter("csail_upernet101_ade20k", {"encoder": paths["decoder"], "decoder": paths["encoder"]})


def test_unreadable_missing_and_pickled_object_files(tmp_path, released):
    name = "drn_d_105_cityscapes"
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"this is an HTML error page, not a checkpoint")
    with pytest.raises(WeightsError, match="not a readable PyTorch checkpoint"):
        load_segmenter(name, [str(broken)])
    with pytest.raises(WeightsError, match="drn-d-105_ms_cityscapes.pth from http://dl.yf.io"):
        load_segmenter(name, [str(tmp_path / "absent.pth")])
    state = torch.load(released(name)[1]["weights"], weights_only=True)
    with_args = tmp_path / "with_args.pth"
    torch.save({"state_dict": state, "args": argparse.Namespace(arch="drn_d_105")}, with_args)
    with pytest.raises(WeightsError, match="(?s)argparse.Namespace.*--allow-global"):
        load_segmenter(name, [str(with_args)])
    segmenter = load_segmenter(name, [str(with_args)], allowed_globals=["argparse.Namespace"])
    assert torch.equal(segmenter.network.seg.weight, state["seg.weight"])
    with pytest.raises(Exception, match="Namespace"):  # the allowance was scoped to that load
        torch.load(with_args, weights_only=True)


def test_graphonomy_legacy_key_names_and_zero_prefea_warning(released, tmp_path):
    name = "graphonomy_cihp_deepfashion8"
    state = torch.load(released(name)[1]["weights"], weights_only=True)
    legacy = {}
    for key, value in state.items():  # DataParallel prefix and the pre-transfer names of the source graph
        key = key.replace("source_featuremap_2_graph", "featuremap_2_graph").replace("source_graph", "graph")
        legacy["module." + key] = value
    segmenter = load_segmenter(name, [str(_resave(legacy, tmp_path / "legacy.pth"))])
    assert torch.equal(segmenter.network.source_graph_conv3.weight, state["source_graph_conv3.weight"])
    zero = dict(state, **{"target_featuremap_2_graph.pre_fea": torch.zeros(256, 20)})
    with pytest.warns(UserWarning, match="all-zero target_featuremap_2_graph.pre_fea"):
        segmenter = load_segmenter(name, [str(_resave(zero, tmp_path / "zero.pth"))])
    assert any("all-zero" in w for w in segmenter.provenance["checkpoints"][0]["warnings"])


def test_drn_upsampling_kernel_is_the_fixed_bilinear_one():
    from smisbench.segmenters.drn import bilinear_upsampling_kernel

    kernel = bilinear_upsampling_kernel(16)
    up = build_network("drn_d_105_cityscapes").up.weight
    assert all(torch.equal(up[c, 0], kernel) for c in range(19))
    # x8 transposed convolution of a constant map is constant away from the borders
    out = torch.nn.functional.conv_transpose2d(torch.ones(1, 1, 6, 6), kernel[None, None], stride=8, padding=4)
    assert out.shape[-1] == 48 and torch.allclose(out[0, 0, 8:40, 8:40], torch.ones(32, 32))


# ----------------------------------------------------------------------------------- slow: original test modes
@pytest.mark.slow
def test_csail_multi_scale_on_a_real_ade20k_image(samples, released):
    name = "csail_upernet101_ade20k"
    with pytest.warns(UserWarning):
        segmenter = load_segmenter(name, released(name)[1], multi_scale=True)
    image = Image.open(samples / "ade20k_sceneparsing/sampleData/images/ADE_val_00000001.jpg").convert("RGB")
    prediction = segmenter.predict(image)
    assert prediction.shape == (image.height, image.width)
    assert int(prediction.max()) < 150


@pytest.mark.slow
def test_drn_full_resolution_on_a_real_cityscapes_image(samples, released):
    name = "drn_d_105_cityscapes"
    with pytest.warns(UserWarning):
        segmenter = load_segmenter(name, released(name)[1], multi_scale=False)
    folder = samples / "pix2pixHD_cityscapes/datasets/cityscapes/train_img"
    image = Image.open(sorted(folder.glob("*.png"))[0]).convert("RGB")
    assert image.size == (2048, 1024)
    prediction = segmenter.predict(image)
    assert prediction.shape == (1024, 2048) and int(prediction.max()) < 19


@pytest.mark.slow
def test_graphonomy_multi_scale_with_flips_on_a_real_cihp_image(samples, released):
    name = "graphonomy_cihp_deepfashion8"
    with pytest.warns(UserWarning):
        segmenter = load_segmenter(name, released(name)[1], multi_scale=True)
    image = Image.open(samples / "cihp_pgn/datasets/CIHP/images/0002190.jpg").convert("RGB")
    prediction = segmenter.predict(image)
    assert prediction.shape == (image.height, image.width)
    assert set(np.unique(prediction.numpy())) <= set(range(8))
