"""The speed benchmark's profile split counts the convolutions' FLOPs and time, and only theirs."""

from __future__ import annotations

import torch

from benchmarks.profile_split import profile_split


def test_split_counts_conv_flops_exactly_and_keeps_the_rest_apart():
    conv = torch.nn.Conv2d(8, 16, 3, padding=1).eval()
    x = torch.randn(2, 8, 32, 32)
    weight = torch.randn(64, 64)

    def run():
        y = conv(x)
        return y.relu_() + (weight @ weight).sum()

    split = profile_split(run)
    expected_conv = 2 * 2 * 16 * 32 * 32 * 8 * 9 / 1e9  # 2 * batch * out * H * W * in * taps
    assert abs(split.conv_gflop - expected_conv) < 1e-9
    assert abs(split.other_gflop - 2 * 64**3 / 1e9) < 1e-9  # the matmul, counted outside the convs
    assert 0 < split.conv_seconds <= split.seconds
    assert split.rest_seconds == split.seconds - split.conv_seconds
    assert "convolutions" in split.summary() and split.as_dict()["conv_gflop_per_s"] > 0
