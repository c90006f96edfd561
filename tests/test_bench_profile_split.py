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


def test_split_counts_a_winograd_conv_as_a_convolution():
    """The Winograd conv's time (transforms and products) is convolution time, its FLOPs the direct conv's."""
    from smisbench.models.winograd import WinogradConv2d

    conv = WinogradConv2d.from_conv(torch.nn.Conv2d(256, 32, 3, padding=1).eval())
    x = torch.randn(1, 256, 16, 16).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        conv(x)  # warm: the filters are transformed on first use
    split = profile_split(lambda: conv(x))
    assert abs(split.conv_gflop - 2 * 32 * 16 * 16 * 256 * 9 / 1e9) < 1e-9  # as the direct conv
    assert split.other_gflop == 0  # the Winograd products are not counted a second time
    assert 0 < split.winograd_seconds <= split.conv_seconds <= split.seconds
    assert "bmm" not in split.top_other_ops and "aten::bmm" not in split.top_other_ops


def test_paired_ratio_alternates_and_takes_the_median_of_per_round_ratios():
    """With a fake clock: the baseline costs 6 units and the candidate 2, except one slow round of each."""
    from benchmarks.paired_timing import paired_ratio, timer

    now, order, contexts = [0.0], [], []
    costs = {"baseline": iter([6, 6, 12, 6, 6]), "candidate": iter([2, 2, 2, 4, 2])}

    def step(name):
        order.append(name)
        now[0] += next(costs[name])

    class Context:
        def __enter__(self):
            contexts.append("in")

        def __exit__(self, *exc):
            contexts.append("out")

    def clock():
        return now[0]

    result = paired_ratio(timer(lambda: step("baseline"), Context, clock), timer(lambda: step("candidate"), clock=clock),
                          rounds=5)
    assert order == ["baseline", "candidate"] * 5
    assert contexts == ["in", "out"] * 5
    assert result.ratios == (3.0, 3.0, 6.0, 1.5, 3.0) and result.median == 3.0
    assert "3.00x" in result.summary() and "1.50-6.00" in result.summary()
