"""Per layer, the direct conv against the Winograd conv of the inference copy (``smisbench.models.winograd``).

The shapes are GroupDNet DeepFashion's residual-block 3x3 convs (batch 1, channels-last, float32), the
layers that hold most of an image's time, each run directly and as F(2x2,3x3) and F(4x4,3x3) Winograd
convs; ``extra_info`` records GFLOP (of the direct conv), which path the copy's rule picks for the layer
and the largest difference from the float64 conv. ``TILE_FOR_SIDE`` and ``MIN_CHANNELS_PER_GROUP`` were
chosen from these timings.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from smisbench.models.winograd import WinogradConv2d, filter_transform, winograd_conv3x3

# (input channels, side, output channels, groups) of GroupDNet DeepFashion's block convs
SHAPES = [(320, 256, 160, 1), (160, 256, 160, 1), (640, 128, 320, 2), (320, 128, 320, 2), (1280, 64, 640, 2),
          (640, 64, 640, 2), (2560, 32, 1280, 4), (1280, 32, 1280, 4), (2560, 16, 2560, 4), (2560, 8, 2560, 4)]


@pytest.mark.parametrize("path", ["direct", "F2", "F4"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}to{s[2]}_{s[1]}px_g{s[3]}")
def test_block_conv_seconds(benchmark, shape, path):
    c_in, side, c_out, groups = shape
    torch.manual_seed(0)
    x = torch.randn(1, c_in, side, side).contiguous(memory_format=torch.channels_last)
    weight = (torch.randn(c_out, c_in // groups, 3, 3) * (9 * c_in / groups) ** -0.5).contiguous(
        memory_format=torch.channels_last)
    bias = torch.randn(c_out)
    m = {"direct": 0, "F2": 2, "F4": 4}[path]
    filters = filter_transform(weight, groups, m) if m else None
    run = (lambda: F.conv2d(x, weight, bias, padding=1, groups=groups)) if path == "direct" else (
        lambda: winograd_conv3x3(x, filters, bias, m))
    with torch.inference_mode():
        exact = F.conv2d(x.double(), weight.double(), bias.double(), padding=1, groups=groups)
        error = float((run().double() - exact).abs().max())
        benchmark.pedantic(run, rounds=5, warmup_rounds=1)
    gflop = 2 * side * side * c_out * (c_in // groups) * 9 / 1e9
    conv = torch.nn.Conv2d(c_in, c_out, 3, padding=1, groups=groups, device="meta")
    chosen = WinogradConv2d.from_conv(conv).tile_for(x) if WinogradConv2d.eligible(conv) else None  # the copy's rule
    benchmark.extra_info.update(gflop=gflop, copy_uses={None: "direct", 2: "F2", 4: "F4"}[chosen],
                                max_abs_error_vs_float64=error, threads=torch.get_num_threads())
    assert error < 1e-3  # a wrong transform is off by O(1)
