"""Winograd convolution for the inference copy's 3x3 convs on the CPU: fewer multiplications, same outputs.

A 3x3 conv computes each m x m output tile from an (m+2) x (m+2) input tile. Winograd's minimal filtering
(Lavin & Gray, 2016) transforms both tiles so that the conv becomes (m+2)^2 independent matrix products
over the channels, one per tile position; F(2x2,3x3) needs 16 products for 4 outputs (2.25x fewer
multiplications than the direct conv), F(4x4,3x3) 36 for 16 (4x fewer). On the 2-core CPU this suite
is measured on, oneDNN's direct conv runs these layers at 120-140 GFLOP/s, so the saving is real at the
resolutions where the tile transforms (memory-bound) stay small against the products: measured per layer
in ``benchmarks/test_bench_winograd.py`` and chosen per resolution in :data:`TILE_FOR_SIDE`.

Channels-last activations make the transforms cheap: every tile value is a strided slice whose channels
stay contiguous, and the products read them as (positions, tiles, channels) matrices without a copy.
The rows are processed in bands so the transformed tiles stay in cache and memory stays bounded at
large batches. Float32 on the CPU only: under autocast, on other devices or in other dtypes the conv is
the plain one (cuDNN picks its own algorithms).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# The transform matrices of F(m x m, 3x3): input transform B^T, filter transform G, output transform A^T,
# from the interpolation points 0, +-1 (m=2) and 0, 1, -1, 2, -1/2 (m=4), plus infinity. For m=4, -1/2 in
# place of the usual -2 makes the error 2-3x smaller, near the direct conv's (measured on these layers'
# shapes; on choosing the points: Barabasz et al., ACM Transactions on Mathematical Software, 2020).
# Every B^T and A^T entry is a short binary fraction, so the transforms of the input round only in the
# additions. tests/test_models_winograd.py checks that each set computes the 3x3 correlation exactly.
TRANSFORMS: dict[int, dict[str, list[list[float]]]] = {
    2: {"BT": [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]],
        "G": [[1, 0, 0], [1 / 2, 1 / 2, 1 / 2], [1 / 2, -1 / 2, 1 / 2], [0, 0, 1]],
        "AT": [[1, 1, 1, 0], [0, 1, -1, -1]]},
    4: {"BT": [[1, 1.5, -2, -1.5, 1, 0], [0, -1, -2.5, -0.5, 1, 0], [0, 1, 0.5, -2.5, 1, 0],
               [0, -0.5, -1, 0.5, 1, 0], [0, 2, -1, -2, 1, 0], [0, 1, 1.5, -2, -1.5, 1]],
        "G": [[1, 0, 0], [-1 / 3, -1 / 3, -1 / 3], [1 / 3, -1 / 3, 1 / 3], [1 / 15, 2 / 15, 4 / 15],
              [-16 / 15, 8 / 15, -4 / 15], [0, 0, 1]],
        "AT": [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -1 / 2, 0], [0, 1, 1, 4, 1 / 4, 0], [0, 1, -1, 8, -1 / 8, 1]]},
}

# Output tile size by the activation's shorter side (None: the direct conv), from the per-layer timings of
# benchmarks/test_bench_winograd.py and whole-image A/B runs; at 8x8 and below the direct conv was faster.
TILE_FOR_SIDE: dict[int, int | None] = {256: 4, 128: 4, 64: 4, 32: 4, 16: 2}
# Fewer input channels per group and the products are small against the transforms: at 160 per group
# (GroupDNet DeepFashion's 160->160 conv at 256x256, 320->320 in two groups at 128x128) F(4x4,3x3) gave
# 0.95-1.17x over three runs, not a reliable gain.
MIN_CHANNELS_PER_GROUP = 256
PROFILE_RANGE = "smisbench::winograd_conv3x3"  # the profiler range around each call (benchmarks/profile_split.py)
BAND_BYTES = 32 << 20  # transformed input tiles per band of tile rows: bounded memory, warm caches...
MIN_BAND_TILES = 256  # ...but never fewer tiles than this per band, or the products get too thin to run fast


def tile_size(h: int, w: int) -> int | None:
    """The output tile for an h x w activation, or None for the direct conv."""
    m = TILE_FOR_SIDE.get(min(h, w))
    return m if m is not None and h % m == 0 and w % m == 0 else None


def filter_transform(weight: torch.Tensor, groups: int, m: int) -> torch.Tensor:
    """(C_out, C_in/groups, 3, 3) -> (a*a, groups, C_in/groups, C_out/groups): G g G^T per filter, in float64
    and then rounded once, laid out as the right-hand matrices of the per-position products."""
    a = m + 2
    g = torch.tensor(TRANSFORMS[m]["G"], dtype=torch.float64)
    u = torch.einsum("ik,ockl,jl->ijoc", g, weight.detach().double(), g)
    out, per_in = weight.shape[:2]
    return u.reshape(a * a, groups, out // groups, per_in).transpose(2, 3).to(weight.dtype).contiguous()


def _combine(sources: list[torch.Tensor], coefficients: list[float], out: torch.Tensor) -> None:
    """out = sum of coefficient * source, skipping zeros, without temporaries."""
    first = True
    for c, s in zip(coefficients, sources):
        if c == 0:
            continue
        if first:
            out.copy_(s) if c == 1 else torch.mul(s, c, out=out)
            first = False
        else:
            out.add_(s, alpha=c)


def _band(xp: torch.Tensor, u: torch.Tensor, bias: torch.Tensor | None, m: int, out: torch.Tensor) -> None:
    """One band: ``xp`` (n, rows*m+2, w+2, c) padded channels-last input rows, ``out`` (n, rows*m, w, c_out)."""
    a, bt, at = m + 2, TRANSFORMS[m]["BT"], TRANSFORMS[m]["AT"]
    n, hp, wp, c = xp.shape
    groups = u.shape[1]
    rows, cols = (hp - 2) // m, (wp - 2) // m
    c_out = out.shape[-1]
    across = [xp[:, :, k:k + m * cols:m] for k in range(a)]  # tile column k of every tile
    half = xp.new_empty(a, n, hp, cols, c)
    for i in range(a):
        _combine(across, bt[i], half[i])
    v = xp.new_empty(a, a, n, rows, cols, c)
    for j in range(a):
        down = [half[j][:, k:k + m * rows:m] for k in range(a)]
        for i in range(a):
            _combine(down, bt[i], v[i, j])
    v = v.view(a * a, n * rows * cols, c)
    products = xp.new_empty(a * a, n * rows * cols, c_out)
    if groups == 1:
        torch.bmm(v, u[:, 0], out=products)
    else:
        per_in, per_out = c // groups, c_out // groups
        for k in range(groups):
            torch.bmm(v[:, :, k * per_in:(k + 1) * per_in], u[:, k], out=products[:, :, k * per_out:(k + 1) * per_out])
    products = products.view(a, a, n, rows, cols, c_out)
    half_out = xp.new_empty(m, a, n, rows, cols, c_out)
    for i in range(m):
        _combine(list(products), at[i], half_out[i])
    tiles = out.view(n, rows, m, cols, m, c_out)
    for i in range(m):
        for j in range(m):
            _combine(list(half_out[i]), at[j], tiles[:, :, i, :, j])
    if bias is not None:
        out.add_(bias)


def winograd_conv3x3(x: torch.Tensor, u: torch.Tensor, bias: torch.Tensor | None, m: int,
                     band_bytes: int = BAND_BYTES) -> torch.Tensor:
    """A 3x3, stride 1, padding 1 conv of ``x`` (n, c, h, w; h and w multiples of m) with filters transformed
    by :func:`filter_transform`; the result is channels-last (n, c_out, h, w). Processed in bands of whole
    items or of tile rows of one item, each holding at most ``band_bytes`` of transformed tiles."""
    with torch.profiler.record_function(PROFILE_RANGE):
        return _winograd_conv3x3(x, u, bias, m, band_bytes)


def _winograd_conv3x3(x: torch.Tensor, u: torch.Tensor, bias: torch.Tensor | None, m: int,
                      band_bytes: int) -> torch.Tensor:
    n, c, h, w = x.shape
    a, tile_rows = m + 2, h // m
    xp = x.new_empty(n, h + 2, w + 2, c)  # padded channels-last input: the border zeroed, the rest copied once
    for border in (xp[:, 0], xp[:, -1], xp[:, 1:-1, 0], xp[:, 1:-1, -1]):
        border.zero_()
    xp[:, 1:-1, 1:-1] = x.permute(0, 2, 3, 1)
    out = x.new_empty(n, h, w, u.shape[1] * u.shape[3])
    cols = w // m
    rows = max(band_bytes // (a * a * cols * c * x.element_size()), -(-MIN_BAND_TILES // cols))  # per band
    if rows >= tile_rows:
        items = rows // tile_rows
        for i in range(0, n, items):
            _band(xp[i:i + items], u, bias, m, out[i:i + items])
    else:
        for i in range(n):
            for r in range(0, tile_rows, rows):
                e = min(tile_rows, r + rows)
                _band(xp[i:i + 1, r * m:e * m + 2], u, bias, m, out[i:i + 1, r * m:e * m])
    return out.permute(0, 3, 1, 2)


class WinogradConv2d(nn.Conv2d):
    """A 3x3 conv (stride 1, padding 1, zeros) that runs as a Winograd conv where :func:`tile_size` says so
    and as the direct conv elsewhere; it holds the original conv's parameters, so its state_dict is the
    conv's. The transformed filters are made on first use (a layer meets one resolution) and kept."""

    @staticmethod
    def eligible(conv: nn.Module) -> bool:
        return (type(conv) is nn.Conv2d and conv.kernel_size == (3, 3) and conv.stride == (1, 1)
                and conv.padding == (1, 1) and conv.dilation == (1, 1) and conv.padding_mode == "zeros"
                and conv.in_channels // conv.groups >= MIN_CHANNELS_PER_GROUP)

    @classmethod
    def from_conv(cls, conv: nn.Conv2d) -> WinogradConv2d:
        new = cls(conv.in_channels, conv.out_channels, 3, padding=1, groups=conv.groups,
                  bias=conv.bias is not None, device="meta")
        new.weight, new.bias = conv.weight, conv.bias
        new.train(conv.training)
        return new

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._filters: dict[tuple, torch.Tensor] = {}

    def tile_for(self, x: torch.Tensor) -> int | None:
        """The Winograd tile for this input, or None for the direct conv (not float32 on the CPU, autocast)."""
        if x.device.type != "cpu" or x.dtype != torch.float32 or torch.is_autocast_enabled("cpu"):
            return None
        return tile_size(x.shape[-2], x.shape[-1])

    def filters(self, m: int) -> torch.Tensor:
        """The transformed filters for tile m, remade whenever the weight is another tensor or was written in
        place (its version counter; inference tensors have none, and cannot be written outside inference mode)."""
        w = self.weight
        key = (m, w.device, w.dtype, w.data_ptr(), None if w.is_inference() else w._version)
        if key not in self._filters:
            self._filters = {key: filter_transform(self.weight, self.groups, m)}
        return self._filters[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return conv_groups(self, x, 0, self.groups)


def conv_groups(conv: nn.Conv2d, x: torch.Tensor, g_lo: int, g_hi: int) -> torch.Tensor:
    """Output groups [g_lo, g_hi) of ``conv`` from ``x`` holding exactly those groups' input channels: the
    Winograd conv where the conv is a :class:`WinogradConv2d` and its tile rule allows, else the direct one."""
    per_out = conv.out_channels // conv.groups
    bias = None if conv.bias is None else conv.bias[g_lo * per_out:g_hi * per_out]
    m = conv.tile_for(x) if isinstance(conv, WinogradConv2d) else None
    if m is None:
        weight = conv.weight[g_lo * per_out:g_hi * per_out]
        return F.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation, g_hi - g_lo)
    return winograd_conv3x3(x, conv.filters(m)[:, g_lo:g_hi], bias, m)
