"""The Winograd convolution of the inference copy gives the direct conv's outputs to float rounding."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from smisbench.models import winograd
from smisbench.models.winograd import WinogradConv2d, conv_groups, filter_transform, tile_size, winograd_conv3x3


def _conv(c_in: int, c_out: int, groups: int, bias: bool = True, seed: int = 0) -> nn.Conv2d:
    torch.manual_seed(seed)
    conv = nn.Conv2d(c_in, c_out, 3, padding=1, groups=groups, bias=bias)
    nn.init.normal_(conv.weight, 0, (9 * c_in / groups) ** -0.5)
    if bias:
        nn.init.normal_(conv.bias, 0, 0.5)
    return conv


def _input(n: int, c: int, h: int, w: int, seed: int = 1) -> torch.Tensor:
    x = torch.randn(n, c, h, w, generator=torch.Generator().manual_seed(seed))
    return x.contiguous(memory_format=torch.channels_last)


def _errors(conv: nn.Conv2d, x: torch.Tensor, got: torch.Tensor) -> tuple[float, float]:
    """(|winograd - exact|, |direct float32 - exact|), exact being the float64 conv."""
    exact = F.conv2d(x.double(), conv.weight.double(), None if conv.bias is None else conv.bias.double(),
                     padding=1, groups=conv.groups)
    direct = conv(x).double()
    return float((got.double() - exact).abs().max()), float((direct - exact).abs().max())


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize(("n", "c_in", "c_out", "groups", "h", "w", "bias"), [
    (1, 16, 8, 1, 8, 8, True),
    (3, 24, 12, 2, 16, 8, False),   # a batch, groups, a rectangle, no bias
    (2, 64, 64, 4, 32, 32, True),
])
def test_winograd_equals_the_exact_conv_as_closely_as_the_direct_conv(m, n, c_in, c_out, groups, h, w, bias):
    conv = _conv(c_in, c_out, groups, bias)
    x = _input(n, c_in, h, w)
    with torch.no_grad():
        got = winograd_conv3x3(x, filter_transform(conv.weight, groups, m), conv.bias, m)
        assert got.shape == (n, c_out, h, w) and got.is_contiguous(memory_format=torch.channels_last)
        err, direct_err = _errors(conv, x, got)
    # F(4x4,3x3) rounds a few times more than the direct conv (its transforms hold 8s and 15ths), F(2x2) no more
    assert err <= (6 if m == 4 else 2) * direct_err + 1e-6, (err, direct_err)
    assert err < 1e-4


@pytest.mark.parametrize("m", sorted(winograd.TRANSFORMS))
def test_each_transform_set_computes_the_3x3_correlation_exactly(m):
    """A^T [(G g) * (B^T d)] equals the correlation of an (m+2)-tap input d with a 3-tap filter g, in float64:
    the matrices are right, whatever rounding the float32 conv adds."""
    t = {k: torch.tensor(v, dtype=torch.float64) for k, v in winograd.TRANSFORMS[m].items()}
    assert t["BT"].shape == (m + 2, m + 2) and t["G"].shape == (m + 2, 3) and t["AT"].shape == (m, m + 2)
    generator = torch.Generator().manual_seed(m)
    for _ in range(5):
        d = torch.randn(m + 2, dtype=torch.float64, generator=generator)
        g = torch.randn(3, dtype=torch.float64, generator=generator)
        expected = torch.stack([d[i:i + 3] @ g for i in range(m)])
        torch.testing.assert_close(t["AT"] @ ((t["G"] @ g) * (t["BT"] @ d)), expected, atol=1e-12, rtol=0)


@pytest.mark.parametrize("band_bytes", [1, 60_000, 1 << 40])
def test_bands_of_tile_rows_or_of_items_give_the_same_conv(band_bytes, monkeypatch):
    """Tiny budgets split every item into bands of rows, large ones put several items in one band; the
    minimum band is lowered so a 16x16 input really is cut."""
    monkeypatch.setattr(winograd, "MIN_BAND_TILES", 1)
    conv = _conv(32, 16, 2)
    x = _input(3, 32, 16, 16)
    calls: list[tuple[int, int]] = []
    original = winograd._band
    monkeypatch.setattr(winograd, "_band", lambda xp, *a: (calls.append(tuple(xp.shape[:2])), original(xp, *a))[1])
    with torch.no_grad():
        u = filter_transform(conv.weight, 2, 4)
        got = winograd_conv3x3(x, u, conv.bias, 4, band_bytes)
        torch.testing.assert_close(got, conv(x), atol=1e-5, rtol=1e-5)
    if band_bytes == 1:
        assert calls == [(1, 6)] * 12  # one tile row (4 image rows + 2 halo) at a time, each item
    elif band_bytes == 60_000:
        assert calls == [(1, 14), (1, 6)] * 3  # three tile rows, then the last one, per item
    else:
        assert calls == [(3, 18)]  # the whole batch in one band


def test_the_minimum_band_keeps_the_products_wide(monkeypatch):
    conv = _conv(32, 16, 1)
    x = _input(1, 32, 16, 16)
    calls: list[int] = []
    original = winograd._band
    monkeypatch.setattr(winograd, "_band", lambda xp, *a: (calls.append(xp.shape[1]), original(xp, *a))[1])
    with torch.no_grad():
        winograd_conv3x3(x, filter_transform(conv.weight, 1, 4), conv.bias, 4, band_bytes=1)
    assert calls == [18]  # 16 tiles of 4x4 < MIN_BAND_TILES: one band despite the budget of one byte


def test_tile_size_follows_the_table():
    assert tile_size(64, 64) == 4 and tile_size(16, 16) == 2
    assert tile_size(64, 128) == 4  # the shorter side picks
    assert tile_size(8, 8) is None and tile_size(12, 12) is None  # too small, not in the table
    assert tile_size(30, 32) is None  # the shorter side is in no row of the table


def test_winograd_conv_holds_the_conv_parameters_and_state():
    conv = _conv(128, 64, 1)
    fast = WinogradConv2d.from_conv(conv)
    assert fast.weight is conv.weight and fast.bias is conv.bias
    assert list(fast.state_dict()) == list(conv.state_dict())
    x = _input(2, 128, 16, 16)
    with torch.no_grad():
        got, direct = fast(x), conv(x)
    assert not torch.equal(got, direct)  # the Winograd path ran...
    torch.testing.assert_close(got, direct, atol=2e-5, rtol=1e-5)  # ...to the direct conv's rounding


def test_filters_follow_weights_written_in_place():
    conv = _conv(256, 32, 1)
    fast = WinogradConv2d.from_conv(conv)
    x = _input(1, 256, 16, 16)
    with torch.no_grad():
        before = fast(x)
        conv.weight.mul_(2)  # the same tensor, new values (as load_state_dict writes them)
        after = fast(x)
    torch.testing.assert_close(after - fast.bias.view(1, -1, 1, 1), 2 * (before - fast.bias.view(1, -1, 1, 1)),
                               atol=5e-5, rtol=1e-5)


@pytest.mark.parametrize("case", ["float64", "odd size", "too small", "bfloat16 autocast"])
def test_winograd_conv_falls_back_to_the_direct_conv(case):
    conv = _conv(128, 64, 1)
    fast = WinogradConv2d.from_conv(conv)
    x = _input(1, 128, {"odd size": 12, "too small": 4}.get(case, 16), 16)
    with torch.no_grad():
        if case == "float64":
            fast, conv, x = fast.double(), conv.double(), x.double()
        if case == "bfloat16 autocast":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                assert torch.equal(fast(x), conv(x))
            return
        assert torch.equal(fast(x), conv(x))  # bit for bit: the direct conv itself


def test_conv_groups_gives_those_groups_outputs():
    conv = WinogradConv2d.from_conv(_conv(512, 256, 4))  # 128 input channels per group
    x = _input(2, 512, 16, 16)
    with torch.no_grad():
        full = conv(x)
        part = conv_groups(conv, x[:, 128:384], 1, 3)
        plain = conv_groups(_conv(512, 256, 4), x[:, 128:384], 1, 3)  # an nn.Conv2d: the direct conv's groups
    torch.testing.assert_close(part, full[:, 64:192], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(plain, full[:, 64:192], atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize(("conv", "ok"), [
    (nn.Conv2d(256, 64, 3, padding=1), True),
    (nn.Conv2d(512, 64, 3, padding=1, groups=2), True),
    (nn.Conv2d(512, 64, 3, padding=1, groups=4), False),  # 128 input channels per group
    (nn.Conv2d(256, 64, 1), False),
    (nn.Conv2d(256, 64, 3, padding=1, stride=2), False),
    (nn.Conv2d(256, 64, 3, padding=2, dilation=2), False),
    (nn.Conv2d(256, 64, 3, padding=1, padding_mode="reflect"), False),
])
def test_only_plain_3x3_convs_with_wide_groups_are_eligible(conv, ok):
    assert WinogradConv2d.eligible(conv) is ok
