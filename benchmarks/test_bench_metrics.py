"""Metric throughput on this machine: FID feature extraction (images/s) and mCSD/mOCD for one
DeepFashion-sized label map with the paper's n=100, m=19.

The provisioned weights are used where the store verifies; otherwise random weights of the
same architecture stand in (throughput does not depend on the values) and ``extra_info`` says so.
``test_bench_mcsd_mocd_metric_cost`` isolates the metric's own cost (code sampling, pairs, LPIPS
maps, masking) with a generator that costs nothing; the GroupDNet case adds the real generator.
"""

from __future__ import annotations

import math
import statistics

import pytest
import torch

from benchmarks.inputs import bench_label
from smisbench.datasets_config import get_dataset_config
from smisbench.metrics.smis_diversity import DiversitySettings, SMISDiversity
from smisbench.models.base import CodesKind, LatentLayout, SMISModel

FID_BATCH = 16


def _store_ok() -> bool:
    from smisbench.weights import verify

    return all(s.state == "ok" for s in verify())


def _inception(tmp_path_factory):
    from smisbench.metrics.fid import load_inception

    if _store_ok():
        return load_inception(), "provisioned weights"
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    original = FeatureExtractorInceptionV3.load_state_dict
    FeatureExtractorInceptionV3.load_state_dict = lambda self, state, strict=True: None
    try:
        empty = tmp_path_factory.mktemp("inception") / "empty.pth"
        torch.save({}, empty)
        module = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(empty))
    finally:
        FeatureExtractorInceptionV3.load_state_dict = original
    path = empty.parent / "random.pth"
    torch.save(module.state_dict(), path)
    return load_inception(weights_path=path), "random weights (store not installed)"


def _lpips():
    from smisbench.metrics.lpips_metric import LPIPSMetric, new_lpips

    if _store_ok():
        return LPIPSMetric.load("alex"), "provisioned weights"
    model = new_lpips("alex")
    backbone = {f"features.{k.split('.')[2]}.{k.split('.')[3]}": v for k, v in model.state_dict().items()
                if k.startswith("net.")}
    linear = {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate((64, 192, 384, 256, 256))}
    return LPIPSMetric.from_state_dicts(backbone, linear), "random weights (store not installed)"


def test_bench_fid_feature_extraction(benchmark, tmp_path_factory):
    """Inception pool3 features of 256x256 images (torch-fidelity resizes them to 299 like TF1)."""
    from smisbench.metrics.fid import extract_features

    extractor, weights = _inception(tmp_path_factory)
    images = torch.randint(0, 256, (FID_BATCH, 3, 256, 256), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    benchmark.pedantic(extract_features, args=(extractor, images, FID_BATCH), rounds=3, iterations=1, warmup_rounds=1)
    median = statistics.median(benchmark.stats.stats.data)
    benchmark.extra_info.update({
        "images_per_second": FID_BATCH / median, "batch": FID_BATCH, "resolution": [256, 256],
        "threads": torch.get_num_threads(), "weights": weights,
    })


class _FreeGenerator(SMISModel):
    """GroupDNet's DeepFashion code layout with a generator that costs nothing (isolates the metric's work)."""

    codes_kind = CodesKind.PER_CLASS

    def __init__(self):
        super().__init__(get_dataset_config("deepfashion"))
        self.latent = LatentLayout((8, 8, 16), (64, 4, 4), True)
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.netG = self._paint

    def _paint(self, semantics, z):
        codes = self.class_view(z).mean(dim=(2, 3))  # (B, C)
        colour = torch.tanh(torch.stack([codes, codes.roll(1, 1), codes.roll(2, 1)], dim=2))  # (B, C, 3)
        return torch.einsum("bchw,bck->bkhw", semantics[:, :8], colour)


def _score(model, lpips, label):
    scorer = SMISDiversity(model, lpips, DiversitySettings(n=100, m=19, batch_size=16))
    scorer.add_label_map(label[0])
    return scorer


def test_bench_mcsd_mocd_metric_cost(benchmark):
    """n=100, m=19 on one 256x256 DeepFashion label map: everything but the generator."""
    lpips, weights = _lpips()
    label, source = bench_label("deepfashion", (256, 256), 8)
    model = _FreeGenerator().eval()
    scorer = benchmark.pedantic(_score, args=(model, lpips, label), rounds=2, iterations=1, warmup_rounds=0)
    seconds = statistics.median(benchmark.stats.stats.data)
    benchmark.extra_info.update({
        "images_scored": scorer.images_generated, "classes": len(scorer.result().per_class_csd),
        "images_per_second": scorer.images_generated / seconds, "label_map": source, "lpips_weights": weights,
        "threads": torch.get_num_threads(),
    })


def test_bench_mcsd_mocd_groupdnet_deepfashion(benchmark):
    """The full computation for GroupDNet (official DeepFashion configuration, random weights), n=100, m=19.

    Generates only the images that appear in a pair (at most 2m per class; identical numbers to
    generating all n). On the 2-core CPU this takes tens of minutes: the generator dominates.
    """
    from smisbench.models.registry import build_model, model_names

    if "groupdnet" not in model_names():
        pytest.skip("GroupDNet is not registered")
    torch.manual_seed(0)
    model = build_model("groupdnet", "deepfashion").eval()
    try:
        from smisbench.models.inference import inference_copy

        model, fast = inference_copy(model), "inference_copy"
    except ImportError:
        fast = "plain model"
    lpips, weights = _lpips()
    label, source = bench_label("deepfashion", (256, 256), 8)
    scorer = benchmark.pedantic(_score, args=(model, lpips, label), rounds=1, iterations=1, warmup_rounds=0)
    seconds = benchmark.stats.stats.data[0]
    result = scorer.result()
    benchmark.extra_info.update({
        "seconds_per_label_map": seconds, "images_generated": result.images_generated,
        "generator_calls": result.generator_calls, "classes": len(result.per_class_csd),
        "images_per_second": result.images_generated / seconds, "model": fast, "label_map": source,
        "lpips_weights": weights, "threads": torch.get_num_threads(),
        "mcsd_random_weights": result.mcsd, "mocd_random_weights": result.mocd,
    })
    assert math.isfinite(result.mcsd)
