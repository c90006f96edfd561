"""An inference copy of a generator: same outputs (to float rounding), less work per image.

Training-time structure that inference does not need is folded away: spectral norm's
``weight_orig / sigma`` is computed once (with the stored ``u``/``v``, exactly as eval mode does each
call); CG-Norm's ``mlp_gamma`` and ``mlp_beta`` become one grouped conv that also absorbs the eval-mode
BatchNorm, so ``x * scale + shift`` is the whole norm; that conv is evaluated only at label boundaries,
as a sum of nine rows of a per-window table (a per-label constant elsewhere, see :class:`LabelAnalysis`);
and activations stay channels-last, the layout oneDNN's CPU convolutions run fastest in. The copy is
for eval mode only: BatchNorm statistics are baked in. GroupDNet's decoder also gets a forward that runs
the channels a batch's codes share only once (:mod:`smisbench.models.inference_shared`).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import remove_spectral_norm
from torch.nn.utils.spectral_norm import SpectralNorm

from smisbench.host_memory import keep_freed_memory
from smisbench.models.groupdnet import GroupDNetGenerator
from smisbench.models.inference_shared import SharedCodeGroupDNetGenerator
from smisbench.models.layers import CGBlock, CGNorm
from smisbench.models.winograd import WinogradConv2d


def bake_spectral_norm(module: nn.Module) -> int:
    """Replace every spectral-norm hook by its current normalised weight; returns how many were baked."""
    baked = 0
    for sub in module.modules():
        if any(isinstance(hook, SpectralNorm) for hook in sub._forward_pre_hooks.values()):
            remove_spectral_norm(sub)
            baked += 1
    return baked


class FusedGammaBeta(nn.Module):
    """``mlp_gamma`` and ``mlp_beta`` of one CG-Norm as a single grouped conv.

    Output channels are group-major, ``[scale_g, shift_g]`` per group g, so the modulation is one
    ``addcmul`` over a free 5-D view. The gamma bias carries the ``+ 1`` of ``x * (1 + gamma)``; after
    :meth:`fold_batch_norm` the conv also carries an eval-mode BatchNorm's ``(x - mean) / std``, so
    ``x * scale + shift`` replaces ``norm(x) * (1 + gamma) + beta`` and the norm pass disappears.
    """

    def __init__(self, gamma: nn.Conv2d, beta: nn.Conv2d):
        super().__init__()
        groups, out = gamma.groups, gamma.out_channels
        per = out // groups
        self.conv = nn.Conv2d(gamma.in_channels, 2 * out, gamma.kernel_size, padding=gamma.padding, groups=groups)
        self.groups, self.per = groups, per
        self._set(gamma.weight, gamma.bias + 1, beta.weight, beta.bias)

    def _set(self, w_scale, b_scale, w_shift, b_shift) -> None:
        groups, per = self.groups, self.per
        tail = w_scale.shape[1:]
        weight = torch.stack([w_scale.reshape(groups, per, *tail), w_shift.reshape(groups, per, *tail)], dim=1)
        bias = torch.stack([b_scale.reshape(groups, per), b_shift.reshape(groups, per)], dim=1)
        self.conv.weight.data.copy_(weight.reshape(2 * groups * per, *tail))
        self.conv.bias.data.copy_(bias.reshape(2 * groups * per))

    def parts(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        w = self.conv.weight.view(self.groups, 2, self.per, *self.conv.weight.shape[1:])
        b = self.conv.bias.view(self.groups, 2, self.per)
        flat = (self.groups * self.per, *self.conv.weight.shape[1:])
        return w[:, 0].reshape(flat), b[:, 0].reshape(-1), w[:, 1].reshape(flat), b[:, 1].reshape(-1)

    @torch.no_grad()
    def fold_batch_norm(self, norm: nn.modules.batchnorm._BatchNorm) -> None:
        """Absorb an eval-mode, affine-free BatchNorm: scale' = scale / std, shift' = shift - mean * scale'."""
        inv = torch.rsqrt(norm.running_var.double() + norm.eps)
        mean = norm.running_mean.double()
        w_scale, b_scale, w_shift, b_shift = (t.double() for t in self.parts())
        view = (-1,) + (1,) * (w_scale.dim() - 1)
        w_scale, b_scale = w_scale * inv.view(view), b_scale * inv
        w_shift, b_shift = w_shift - w_scale * mean.view(view), b_shift - b_scale * mean
        self._set(*(t.float() for t in (w_scale, b_scale, w_shift, b_shift)))

    def modulate(self, x: torch.Tensor, both: torch.Tensor, lo: int = 0) -> torch.Tensor:
        """``x * scale + shift`` from the fused output, in channels-last rows; ``x`` holds channels
        ``[lo, lo + x.shape[1])`` of the norm's input, and ``both`` may have batch 1 (one map for all).

        With channels-last inputs and a range on group borders every reshape here is a view: scale and
        shift are read in place. Another range takes a copy of that range's scale and shift.
        """
        b, n, h, w = x.shape
        rows = both.permute(0, 2, 3, 1).reshape(both.shape[0], h, w, self.groups, 2, self.per)
        if lo % self.per == 0 and n % self.per == 0:
            rows = rows[:, :, :, lo // self.per:(lo + n) // self.per]
            x = x.permute(0, 2, 3, 1).reshape(b, h, w, n // self.per, self.per)
            out = torch.addcmul(rows[..., 1, :], x, rows[..., 0, :])
        else:
            scale, shift = (rows[..., k, :].reshape(both.shape[0], h, w, -1)[..., lo:lo + n] for k in (0, 1))
            out = torch.addcmul(shift, x.permute(0, 2, 3, 1), scale)
        return out.reshape(b, h, w, n).permute(0, 3, 1, 2)


def foldable(norm: nn.Module) -> bool:
    """An affine-free BatchNorm with running statistics: in eval mode it is a per-channel affine map."""
    return (isinstance(norm, nn.modules.batchnorm._BatchNorm) and not norm.affine
            and norm.track_running_stats and norm.running_var is not None)


class LabelAnalysis:
    """Per-resolution facts about the label input, computed once per forward and shared by all CG-Norms.

    A CG-Norm's gamma/beta at a pixel depend only on the label inside the 5x5 window around it (two
    stacked 3x3 convs). Where that window holds one label pattern and lies inside the image, gamma/beta
    equal a per-pattern constant; only the remaining "boundary" pixels need more. There, the second conv
    is linear in the hidden activations, and those depend only on the 3x3 label window at each tap: so
    ``gamma(p) = bias + sum_t W_t h(window(p + t))`` is a sum of nine rows of a small per-layer table
    indexed by the distinct 3x3 windows of the map (``window_ids``), with a zero row off the image.

    Identical label maps in a batch (mCSD/mOCD and LPIPS diversity generate many codes for one map)
    are analysed once and the facts repeated per item (``dedupe``): the same numbers, computed once.
    """

    dedupe = True

    def __init__(self) -> None:
        self._label: torch.Tensor | None = None
        self._version = -1
        self._entries: dict[tuple[int, int], dict] = {}
        self._owner: torch.Tensor | None = None  # item -> its distinct map
        self._distinct: list[int] = []  # first item of each distinct map

    def _refresh(self, label: torch.Tensor) -> None:
        # Keyed by the tensor object itself (held, so its memory cannot be reused by another map) and its
        # version: a data pointer alone can come back for a different map once the first is freed.
        # Inference tensors (made under torch.inference_mode) keep no version counter: identity alone.
        version = 0 if label.is_inference() else label._version
        if label is not self._label or version != self._version:
            self._label, self._version, self._entries = label, version, {}
            self._distinct, self._owner = distinct_maps(label) if self.dedupe else (list(range(label.shape[0])), None)

    def at(self, label: torch.Tensor, size: tuple[int, int]) -> dict:
        """The facts for every item of the batch (repeated maps share one analysis)."""
        self._refresh(label)
        if size not in self._entries:
            if len(self._distinct) == label.shape[0]:
                self._entries[size] = self._analyse(F.interpolate(label, size=size, mode="nearest"))
            else:
                self._entries[size] = _repeat(self._distinct_at(label, size), self._owner)
        return self._entries[size]

    def single_map_at(self, label: torch.Tensor, size: tuple[int, int]) -> dict | None:
        """The facts of the batch's one map when every item has the same map (how mCSD/mOCD and LPIPS
        diversity generate), else None: a CG-Norm then computes its scale and shift once for the batch."""
        self._refresh(label)
        if len(self._distinct) != 1 or label.shape[0] == 1:
            return None
        return self._distinct_at(label, size)

    def _distinct_at(self, label: torch.Tensor, size: tuple[int, int]) -> dict:
        """The analysis of the batch's distinct maps only, shared by :meth:`at` and :meth:`single_map_at`."""
        key = ("distinct", *size)
        if key not in self._entries:
            self._entries[key] = self._analyse(F.interpolate(label[self._distinct], size=size, mode="nearest"))
        return self._entries[key]

    @staticmethod
    def _analyse(label: torch.Tensor) -> dict:
        b, c, h, w = label.shape
        pixels = label.permute(0, 2, 3, 1).reshape(-1, c)
        patterns, inverse = torch.unique(pixels, dim=0, return_inverse=True)
        keys = inverse.view(b, 1, h, w).float()
        spread = F.max_pool2d(keys, 5, 1, 2) + F.max_pool2d(-keys, 5, 1, 2)
        boundary = spread[:, 0] != 0
        boundary[:, :2] = boundary[:, -2:] = True
        boundary[:, :, :2] = boundary[:, :, -2:] = True
        flat = boundary.reshape(-1).nonzero().squeeze(1)
        info = {"label": label, "patterns": patterns, "inverse": inverse, "boundary": flat,
                "fraction": flat.numel() / (b * h * w)}
        info.update(LabelAnalysis._windows(inverse.view(b, h, w), patterns.shape[0], flat))
        # each distinct window as a (C, 3, 3) label patch (zeros off the image), shared by every CG-Norm here
        padded_patterns = torch.cat([patterns, patterns.new_zeros(1, c)])
        u = info["windows"].shape[0]
        info["window_patches"] = padded_patterns[info["windows"]].permute(0, 2, 1).reshape(u, c, 3, 3)
        return info

    @staticmethod
    def _windows(ids: torch.Tensor, count: int, flat: torch.Tensor) -> dict:
        """Distinct 3x3 windows of pattern ids (``count`` = off the image) and, per boundary pixel, the
        window id at each of its nine taps (``window_count`` = off the image)."""
        b, h, w = ids.shape
        padded = F.pad(ids, (1, 1, 1, 1), value=count)
        taps = torch.stack([padded[:, dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)], dim=-1)
        taps = taps.reshape(-1, 9)
        if (count + 1) ** 9 < 2**62:  # one int64 key per window: a 1-D unique, much cheaper than rows
            powers = (count + 1) ** torch.arange(9, dtype=torch.int64)
            _, first, window_of = _unique_rows_by_key((taps * powers).sum(1))
            windows = taps[first]
        else:
            windows, window_of = torch.unique(taps, dim=0, return_inverse=True)
        u = windows.shape[0]
        grid = F.pad(window_of.view(b, h, w), (1, 1, 1, 1), value=u)  # the zero row off the image
        bi, rest = flat // (h * w), flat % (h * w)
        y, x = rest // w, rest % w
        dy = torch.arange(3).repeat_interleave(3)
        dx = torch.arange(3).repeat(3)
        at_taps = grid[bi[:, None], y[:, None] + dy, x[:, None] + dx]  # (Nb, 9)
        bag = at_taps * 9 + torch.arange(9)  # the table's row for (window, tap)
        return {"windows": windows, "window_bags": bag}


def distinct_maps(label: torch.Tensor) -> tuple[list[int], torch.Tensor]:
    """(first item of each distinct map in the batch, which distinct map each item is)."""
    b = label.shape[0]
    if b > 1 and label.stride(0) == 0:  # one map expanded over the batch: nothing to compare
        return [0], torch.zeros(b, dtype=torch.int64)
    # one pass for a fingerprint per map; only maps with equal fingerprints are compared in full
    flat = label.reshape(b, -1)
    weights = torch.linspace(1.0, 2.0, flat.shape[1], dtype=flat.dtype, device=flat.device)
    prints = (flat @ weights).tolist() if flat.is_floating_point() else flat.sum(1).tolist()
    firsts: list[int] = []
    owner = []
    for i in range(b):
        same = next((k for k, first in enumerate(firsts)
                     if prints[i] == prints[first] and torch.equal(label[i], label[first])), None)
        if same is None:
            same = len(firsts)
            firsts.append(i)
        owner.append(same)
    return firsts, torch.tensor(owner, dtype=torch.int64)


def _repeat(info: dict, owner: torch.Tensor) -> dict:
    """The analysis of the distinct maps as the analysis of the batch: item i gets that of ``owner[i]``.

    Every fact is a per-item block (pixels, boundary pixels and their bags, item-major in that order),
    so repeating blocks reproduces exactly what analysing the whole batch gives; patterns and windows
    are sets of the same maps (sorted the same way) and stay as they are.
    """
    small = info["label"]
    u, c, h, w = small.shape
    hw, b = h * w, owner.numel()
    label = small.expand(b, c, h, w) if u == 1 else small.index_select(0, owner)
    inverse = info["inverse"].view(u, hw).index_select(0, owner).reshape(-1)
    flat, bags = info["boundary"], info["window_bags"]
    counts = torch.bincount(flat // hw, minlength=u)
    starts = torch.cumsum(counts, 0) - counts
    rows = torch.cat([torch.arange(int(starts[k]), int(starts[k] + counts[k])) for k in owner.tolist()])
    offsets = (torch.arange(b) * hw - owner * hw).repeat_interleave(counts[owner])
    boundary = flat[rows] + offsets
    return {**info, "label": label, "inverse": inverse, "boundary": boundary, "window_bags": bags[rows],
            "fraction": boundary.numel() / (b * hw)}


def _unique_rows_by_key(key: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(distinct keys, index of each one's first occurrence, id of every element)."""
    values, inverse = torch.unique(key, return_inverse=True)
    first = torch.full((values.numel(),), key.numel(), dtype=torch.int64)
    first.scatter_reduce_(0, inverse, torch.arange(key.numel()), reduce="amin")
    return values, first, inverse


class FastCGNorm(nn.Module):
    """CG-Norm for inference: BatchNorm folded into fused gamma/beta, per-pattern constants in the
    interior and a nine-row table sum at label boundaries (see :class:`LabelAnalysis`)."""

    dense_above = 0.5  # distinct windows per pixel above which the plain convolution is cheaper

    def __init__(self, norm: CGNorm, analysis: LabelAnalysis):
        super().__init__()
        self.mlp_shared = norm.mlp_shared
        self.gamma_beta = FusedGammaBeta(norm.mlp_gamma, norm.mlp_beta)
        self.param_free_norm = None if foldable(norm.param_free_norm) else norm.param_free_norm
        if self.param_free_norm is None:
            self.gamma_beta.fold_batch_norm(norm.param_free_norm)
        self.analysis = analysis
        self._tap_cache: torch.Tensor | None = None

    def _dense(self, label: torch.Tensor) -> torch.Tensor:
        return self.gamma_beta.conv(self.mlp_shared(label))

    def _tap_weight(self) -> torch.Tensor:
        """The second conv's weight as (G, Kg, 9 * O/G), columns ordered (tap, output): one matmul per group."""
        if self._tap_cache is None:
            conv = self.gamma_beta.conv
            groups = conv.groups
            w = conv.weight.reshape(groups, conv.out_channels // groups, -1, 9)  # (G, O/G, Kg, 9)
            self._tap_cache = w.permute(0, 2, 3, 1).reshape(groups, w.shape[2], -1).contiguous()
        return self._tap_cache

    def _tap_table(self, info: dict, dtype: torch.dtype) -> torch.Tensor:
        """Rows ``u * 9 + t``: the second conv's tap t applied to window u's hidden vector (no bias);
        window ``U`` (off the image) is all zeros."""
        patches = info["window_patches"].to(dtype)  # (U, C, 3, 3)
        u = patches.shape[0]
        hidden = self.mlp_shared(patches)[:, :, 1, 1]  # (U, K): the centre sees the whole window
        weight = self._tap_weight().to(hidden.dtype)  # under autocast the hidden rows may be bfloat16
        groups, k_per, cols = weight.shape
        table = hidden.new_empty(u + 1, 9, groups, cols // 9)
        table[u].zero_()
        if groups == 1:
            torch.mm(hidden, weight[0], out=table[:u].view(u, cols))
        else:  # one matmul per (group, tap), each written in place into its strided block of the table
            per = cols // 9
            parts = hidden.view(u, groups, k_per)
            for g in range(groups):
                for t in range(9):
                    torch.mm(parts[:, g], weight[g, :, t * per:(t + 1) * per], out=table[:u, t, g])
        return table.view((u + 1) * 9, -1)

    def _sparse(self, info: dict) -> torch.Tensor:
        conv = self.gamma_beta.conv
        label, patterns = info["label"], info["patterns"]
        b, _, h, w = label.shape
        # per-pattern constants: the same convs on 5x5 patches of one pattern, read at the centre
        patches = patterns.to(label.dtype)[:, :, None, None].expand(-1, -1, 5, 5)
        table = self._dense(patches)[:, :, 2, 2]  # (P, 2N)
        out = table.index_select(0, info["inverse"])  # (B*H*W, 2N): channels-last rows
        flat = info["boundary"]
        if flat.numel():
            sums = F.embedding_bag(info["window_bags"], self._tap_table(info, table.dtype), mode="sum")
            out.index_copy_(0, flat, sums.add_(conv.bias).to(out.dtype))
        return out.view(b, h, w, -1).permute(0, 3, 1, 2)

    def forward(self, x: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        if self.training and self.param_free_norm is None:
            raise RuntimeError("this inference copy has its BatchNorm statistics baked in and runs in eval mode "
                               "only; train the original model, then take a new inference_copy() of it")
        if self.param_free_norm is not None:
            x = self.param_free_norm(x)
        b, _, h, w = x.shape
        # one map for the whole batch: scale and shift once (batch 1), broadcast over the items
        info = self.analysis.single_map_at(label, (h, w)) or self.analysis.at(label, (h, w))
        return self.gamma_beta.modulate(x, self._scale_shift(info, b))

    def single_map_scale_shift(self, label: torch.Tensor, size: tuple[int, int], batch: int) -> torch.Tensor:
        """The fused scale/shift (batch 1) of a batch of ``batch`` items that all have ``label``'s one map."""
        single = self.analysis.single_map_at(label, size)
        if single is None:
            raise ValueError("single_map_scale_shift needs a batch of one label map")
        return self._scale_shift(single, batch)

    def _scale_shift(self, info: dict, batch: int) -> torch.Tensor:
        """Fused scale/shift for ``info``'s maps; the dense/sparse choice counts the whole ``batch``'s pixels
        (as when each item is analysed), so sharing one map's result never changes which path runs."""
        _, _, h, w = info["label"].shape
        if info["windows"].shape[0] > self.dense_above * batch * h * w:
            return self._dense(info["label"])
        return self._sparse(info)


class FastCGBlock(nn.Module):
    """:class:`CGBlock` for inference: the same convs and norms, the activation and the residual sum done in
    place on tensors the block itself just made, so the tail around the convs allocates nothing."""

    def __init__(self, block: CGBlock):
        super().__init__()
        self.learned_shortcut = block.learned_shortcut
        self.conv_0, self.conv_1, self.norm_0, self.norm_1 = block.conv_0, block.conv_1, block.norm_0, block.norm_1
        if self.learned_shortcut:
            self.conv_s, self.norm_s = block.conv_s, block.norm_s

    def forward(self, x: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        shortcut = self.conv_s(self.norm_s(x, label)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu_(self.norm_0(x, label), 0.2))
        dx = self.conv_1(F.leaky_relu_(self.norm_1(dx, label), 0.2))
        return dx.add_(shortcut)


def _share_codes(module: nn.Module) -> int:
    """GroupDNet decoders whose blocks were all swapped and whose norms all folded get the forward that
    shares a batch's common code channels (:mod:`smisbench.models.inference_shared`); returns how many."""
    shared = 0
    for sub in module.modules():
        if type(sub) is not GroupDNetGenerator:  # exactly: a variant may define another forward
            continue
        blocks = [getattr(sub, spec.name) for spec in sub.config.blocks]
        norms = [m for block in blocks for m in block.modules() if isinstance(m, FastCGNorm)]
        convs = [m for m in sub.modules() if isinstance(m, nn.Conv2d)]
        if (all(type(block) is FastCGBlock for block in blocks) and all(n.param_free_norm is None for n in norms)
                and all(c.padding_mode == "zeros" for c in convs)):
            sub.__class__ = SharedCodeGroupDNetGenerator  # same modules and state: only the forward changes
            shared += 1
    return shared


def _swap_norms(module: nn.Module, analysis: LabelAnalysis) -> int:
    """CG-Norms -> :class:`FastCGNorm` (their blocks -> :class:`FastCGBlock`); returns the norms swapped."""
    swapped = 0
    for name, child in module.named_children():
        swapped += _swap_norms(child, analysis)
        if isinstance(child, CGNorm):
            setattr(module, name, FastCGNorm(child, analysis))
            swapped += 1
        elif type(child) is CGBlock:  # exactly: a subclass may define another forward
            setattr(module, name, FastCGBlock(child))
    return swapped


def _swap_winograd(module: nn.Module) -> int:
    """The residual blocks' 3x3 convs -> :class:`WinogradConv2d` (Winograd on the CPU where it pays, the same
    conv elsewhere); returns how many."""
    swapped = 0
    for block in module.modules():
        if type(block) is FastCGBlock:
            for name in ("conv_0", "conv_1"):
                if WinogradConv2d.eligible(getattr(block, name)):
                    setattr(block, name, WinogradConv2d.from_conv(getattr(block, name)))
                    swapped += 1
    return swapped


def _detach_spectral_weights(model: nn.Module) -> None:
    """After a forward with autograd on, spectral norm leaves ``weight`` as a graph node, which cannot be
    deep-copied; every forward recomputes it from ``weight_orig``, so a detached value changes nothing."""
    for sub in model.modules():
        for hook in sub._forward_pre_hooks.values():
            if isinstance(hook, SpectralNorm) and not getattr(sub, hook.name).is_leaf:
                setattr(sub, hook.name, getattr(sub, hook.name).detach())


def has_inference_copy(model: nn.Module) -> bool:
    """Whether an inference copy is worth making: the model has CG-Norms to fold (GroupDNet, VSPADE, SPADE and
    the other CG-Norm families). Other models would gain only the baked spectral norm and the layout."""
    return any(isinstance(m, CGNorm) for m in model.modules())


@torch.no_grad()
def inference_copy(model: nn.Module, channels_last: bool = True) -> nn.Module:
    """A deep copy of ``model`` in eval mode with the folds above; the original keeps its checkpoint layout.

    Also switches the process to reusing freed CPU memory (:mod:`smisbench.host_memory`): without it
    the memory-bound work around the convolutions is dominated by page faults.
    """
    keep_freed_memory()
    _detach_spectral_weights(model)
    fast = copy.deepcopy(model).eval()
    bake_spectral_norm(fast)
    _swap_norms(fast, LabelAnalysis())
    _swap_winograd(fast)
    _share_codes(fast)
    if channels_last:
        fast = fast.to(memory_format=torch.channels_last)
    for p in fast.parameters():
        p.requires_grad_(False)
    return fast.eval()  # the swapped-in norms too
