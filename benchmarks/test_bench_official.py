"""Side by side with the official SMIS code: same weights, same label map and z, DeepFashion 256x256, batch 1.

Needs a local checkout of Seanseattle/SMIS (and its import-time dependency ``dill``), named by
``SMISBENCH_OFFICIAL_SMIS=/path/to/SMIS``; skipped otherwise. The official network is built from its own
classes on the CPU (its test script calls ``.cuda()``), given our generator's state_dict with strict
loading, and its BatchNorm statistics are first calibrated on real batch statistics so activations
stay O(1) and the comparison is not between two saturated images. Asserts that our training layout gives
the official output bit for bit and the inference copy agrees to float rounding, then times all three.
"""

from __future__ import annotations

import argparse
import os
import sys

import pytest
import torch

from benchmarks.inputs import bench_label
from smisbench.models.inference import inference_copy
from smisbench.models.registry import build_model

CHECKOUT = os.environ.get("SMISBENCH_OFFICIAL_SMIS")
_PREPARED: dict = {}


def _official_generator_class():
    if not CHECKOUT:
        pytest.skip("set SMISBENCH_OFFICIAL_SMIS to a checkout of github.com/Seanseattle/SMIS to compare with it")
    sys.path.insert(0, CHECKOUT)
    try:
        from models.networks.generator import DeepFashionGenerator
    except ImportError as error:
        pytest.skip(f"the official code does not import here ({error}); it needs e.g. `pip install dill`")
    return DeepFashionGenerator


def prepared():
    if not _PREPARED:
        official_cls = _official_generator_class()
        torch.manual_seed(0)
        ours = build_model("groupdnet", "deepfashion")
        label, source = bench_label("deepfashion", ours.dataset.size, ours.dataset.label_nc)
        semantics = ours.semantics(label)
        for module in ours.netG.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.reset_running_stats()
                module.momentum = None  # cumulative average: the running stats become this batch's statistics
        ours.netG.train()
        with torch.no_grad():
            ours.generate(semantics.expand(2, -1, -1, -1), ours.sample_z(2, torch.Generator().manual_seed(1)))
        ours.eval()
        options = argparse.Namespace(
            ngf=160, semantic_nc=8, label_nc=8, crop_size=256, aspect_ratio=1.0, num_upsampling_layers="more",
            use_vae=True, norm_G="spectralspadesyncbatch3x3", dataset_mode="deepfashion", no_instance=True,
            contain_dontcare_label=False, gpu_ids=[])
        official = official_cls(options).eval()
        official.load_state_dict(ours.netG.state_dict(), strict=True)
        z = ours.sample_z(1, torch.Generator().manual_seed(0))
        _PREPARED.update(official=official, ours=ours, fast=inference_copy(ours), semantics=semantics, z=z,
                         source=source)
        with torch.inference_mode():
            _PREPARED["reference"] = official(semantics, z)
    return _PREPARED


def _runner(which: str, p: dict):
    if which == "official":
        return lambda: p["official"](p["semantics"], p["z"])
    network = p["ours"] if which == "training_layout" else p["fast"]
    return lambda: network.generate(p["semantics"], p["z"])


@pytest.mark.parametrize("which", ["official", "training_layout", "inference_copy"])
def test_deepfashion_generator_against_the_official_code(benchmark, which):
    p = prepared()
    run = _runner(which, p)
    with torch.inference_mode():
        out = benchmark.pedantic(run, rounds=3, warmup_rounds=1, iterations=1)
    reference = p["reference"]
    assert 0.005 < reference.std() and reference.abs().max() < 0.99  # neither flat nor saturated
    difference = (out - reference).abs().max().item()
    if which == "inference_copy":
        assert difference < 1e-5
    else:
        assert difference == 0.0
    benchmark.extra_info.update(images_per_s=1 / benchmark.stats.stats.median, max_abs_difference=difference,
                                threads=torch.get_num_threads(), label=p["source"], checkout=CHECKOUT)
