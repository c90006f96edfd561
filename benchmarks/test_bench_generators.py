"""Generator inference speed (images/s) at the real resolutions, float32 and bfloat16, batch 1 and 8.

The issue's target: GroupDNet DeepFashion >= 0.7 image/s float32 batch 1 on the 2-core CPU (the issue
quotes ~0.49 for the official code; ``test_bench_official.py`` measures the official code itself, given a
checkout). ``extra_info`` records threads, GFLOP per image and the label-map source.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.inputs import bench_label
from smisbench.models.inference import inference_copy
from smisbench.models.registry import build_model

CASES = [
    ("groupdnet", "deepfashion"),
    ("groupdnet", "cityscapes"),
    ("groupdnet", "ade20k"),
    ("vspade", "deepfashion"),
]
_MODELS: dict = {}


def prepared(name: str, dataset: str):
    if (name, dataset) not in _MODELS:
        torch.manual_seed(0)
        model = build_model(name, dataset).eval()
        label, source = bench_label(dataset, model.dataset.size, model.dataset.label_nc)
        semantics = model.semantics(label)
        z = model.sample_z(1, torch.Generator().manual_seed(0))
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model.generate(semantics, z)
        _MODELS[(name, dataset)] = (model, inference_copy(model), semantics, z, counter.get_total_flops() / 1e9, source)
    return _MODELS[(name, dataset)]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("batch", [1, 8])
@pytest.mark.parametrize("name,dataset", CASES, ids=lambda v: v)
def test_generator_images_per_second(benchmark, name, dataset, batch, dtype):
    model, fast, semantics, z, gflop, source = prepared(name, dataset)
    semantics = semantics.expand(batch, -1, -1, -1)
    z = z.expand(batch, *z.shape[1:])
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bfloat16")

    def run():
        with torch.inference_mode(), autocast:
            return fast.generate(semantics, z)

    out = benchmark.pedantic(run, rounds=3 if batch == 1 else 1, warmup_rounds=1, iterations=1)
    assert out.shape[0] == batch and torch.isfinite(out.float()).all()
    median = benchmark.stats.stats.median
    benchmark.extra_info.update(
        images_per_s=batch / median, gflop_per_image=round(gflop, 1), threads=torch.get_num_threads(),
        dtype=dtype, batch=batch, resolution=list(model.dataset.size), label=source, path="inference_copy",
    )


def test_groupdnet_deepfashion_training_layout_for_reference(benchmark):
    """The same network run as trained (spectral-norm hooks, separate gamma/beta, dense CG-Norm): the baseline."""
    model, _, semantics, z, gflop, source = prepared("groupdnet", "deepfashion")

    def run():
        with torch.inference_mode():
            return model.generate(semantics, z)

    benchmark.pedantic(run, rounds=3, warmup_rounds=1, iterations=1)
    benchmark.extra_info.update(images_per_s=1 / benchmark.stats.stats.median, gflop_per_image=round(gflop, 1),
                                threads=torch.get_num_threads(), label=source, path="training layout")
