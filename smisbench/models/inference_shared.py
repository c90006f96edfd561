"""A grouped decoder on a batch whose codes differ only in some channels: the common part runs once.

mCSD/mOCD redraw one class's code at a time, so every image of a set has the same label map and the
same code for every other class. In GroupDNet's decoder a grouped conv's output group depends on its
own input group alone, and CG-Norm, the activation and the upsampling act per channel, so until the
groups merge, the channels fed by the unchanged classes are equal for every item of the batch. This
forward computes item 0 in full at batch 1 and, for the whole batch, only the channel range that can
differ (:class:`ChannelSplit`), widening that range as the groups merge; the full batch is assembled
just before the first block that mixes every channel. The convolutions are the model's own, on the same
numbers, so the images equal the plain forward's to float rounding; on the official DeepFashion decoder
a class's set needs about a third fewer FLOPs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from smisbench.models.groupdnet import GroupDNetGenerator, upsample_x2
from smisbench.models.winograd import conv_groups


@dataclass(frozen=True)
class ChannelSplit:
    """Activations of a batch that are equal across items outside channels ``[lo, hi)``: item 0 with
    every channel (``one``, batch 1) and every item's ``[lo, hi)`` (``vary``), both channels-last."""

    one: torch.Tensor
    vary: torch.Tensor
    lo: int
    hi: int

    @property
    def batch(self) -> int:
        return self.vary.shape[0]

    def apply(self, op: Callable[[torch.Tensor], torch.Tensor]) -> ChannelSplit:
        """A per-channel or spatial op (activation, upsampling) on both parts."""
        return ChannelSplit(op(self.one), op(self.vary), self.lo, self.hi)

    def widen(self, lo: int, hi: int) -> ChannelSplit:
        """The same activations with every item's channels ``[lo, hi)`` (a superset of the current range)."""
        if (lo, hi) == (self.lo, self.hi):
            return self
        b, _, h, w = self.vary.shape
        out = torch.empty((b, hi - lo, h, w), dtype=self.vary.dtype, device=self.vary.device,
                          memory_format=torch.channels_last)
        out[:, : self.lo - lo].copy_(self.one[:, lo : self.lo])  # broadcast over the batch
        out[:, self.lo - lo : self.hi - lo].copy_(self.vary)
        out[:, self.hi - lo :].copy_(self.one[:, self.hi : hi])
        return ChannelSplit(self.one, out, lo, hi)

    def full(self) -> torch.Tensor:
        """The whole batch as one tensor."""
        return self.widen(0, self.one.shape[1]).vary


def varying_channels(z: torch.Tensor) -> tuple[int, int] | None:
    """The smallest channel range outside which every item's code equals item 0's, or None when no
    channel varies or every one does (nothing to share)."""
    varies = (z != z[:1]).flatten(2).any(2).any(0).nonzero().flatten()
    if varies.numel() == 0:
        return None
    lo, hi = int(varies[0]), int(varies[-1]) + 1
    return None if (lo, hi) == (0, z.shape[1]) else (lo, hi)


def _group_range(conv: nn.Conv2d, lo: int, hi: int) -> tuple[int, int]:
    per_in = conv.in_channels // conv.groups
    return lo // per_in, -(-hi // per_in)


def mixes_every_channel(conv: nn.Conv2d, x: ChannelSplit) -> bool:
    """Whether ``conv`` makes every output channel depend on the varying range (nothing left to share)."""
    return _group_range(conv, x.lo, x.hi) == (0, conv.groups)


def conv_split(conv: nn.Conv2d, x: ChannelSplit) -> ChannelSplit:
    """``conv`` on item 0 in full, and on every item for the groups the varying range reaches."""
    g_lo, g_hi = _group_range(conv, x.lo, x.hi)
    per_in, per_out = conv.in_channels // conv.groups, conv.out_channels // conv.groups
    wide = x.widen(g_lo * per_in, g_hi * per_in)
    return ChannelSplit(conv(x.one), conv_groups(conv, wide.vary, g_lo, g_hi), g_lo * per_out, g_hi * per_out)


def norm_split(norm: nn.Module, x: ChannelSplit, label: torch.Tensor) -> ChannelSplit:
    """A folded CG-Norm (``FastCGNorm``): one scale/shift for the batch's single map, both parts modulated."""
    both = norm.single_map_scale_shift(label, tuple(x.one.shape[2:]), x.batch)
    modulate = norm.gamma_beta.modulate
    return ChannelSplit(modulate(x.one, both), modulate(x.vary, both, x.lo), x.lo, x.hi)


def block_split(block: nn.Module, x: ChannelSplit, label: torch.Tensor) -> ChannelSplit:
    """A ``FastCGBlock`` on split activations: the same convs, norms, activation and residual sum."""

    def act(t: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu_(t, 0.2)  # in place: the norm just made it

    shortcut = conv_split(block.conv_s, norm_split(block.norm_s, x, label)) if block.learned_shortcut else x
    dx = conv_split(block.conv_0, norm_split(block.norm_0, x, label).apply(act))
    dx = conv_split(block.conv_1, norm_split(block.norm_1, dx, label).apply(act))
    lo, hi = min(dx.lo, shortcut.lo), max(dx.hi, shortcut.hi)
    dx, shortcut = dx.widen(lo, hi), shortcut.widen(lo, hi)
    return ChannelSplit(dx.one.add_(shortcut.one), dx.vary.add_(shortcut.vary), lo, hi)


class SharedCodeGroupDNetGenerator(GroupDNetGenerator):
    """GroupDNet's decoder in an inference copy: a batch of one label map whose codes differ in a few
    channels (a class's redraws) shares the rest (see the module docstring); any other batch runs the
    plain forward. Set only by ``inference_copy`` on a decoder whose blocks are all ``FastCGBlock``s with
    folded norms, the structure this forward assumes."""

    share_codes = True  # off: always the plain forward (tests compare the two)

    def features(self, semantics: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        label = self.label_input(semantics)
        shared = self._shared_codes(label, z)
        if shared is None:
            return self.run_blocks(self.fc(z), label)
        x = conv_split(self.fc, shared)
        for index, spec in enumerate(self.config.blocks):
            block = getattr(self, spec.name)
            if mixes_every_channel(block.conv_0, x):  # nothing left to share: the plain blocks from here
                return self.run_blocks(x.full(), label, start=index)
            x = block_split(block, x.apply(upsample_x2) if spec.upsample else x, label)
        return x.full()

    def _shared_codes(self, label: torch.Tensor, z: torch.Tensor) -> ChannelSplit | None:
        """The codes as a :class:`ChannelSplit` when the batch has one label map and its codes differ in
        part of the channels only, else None."""
        if not self.share_codes or z.shape[0] < 2 or torch.is_grad_enabled():
            return None
        span = varying_channels(z)
        analysis = getattr(self, self.config.blocks[0].name).norm_0.analysis
        if span is None or analysis.single_map_at(label, tuple(z.shape[2:])) is None:
            return None
        return ChannelSplit(z[:1], z[:, span[0]:span[1]], *span)
