"""Where an inference's time goes: the convolutions (GFLOP, seconds, GFLOP/s) against everything else.

The issue's question for the CPU fast path is how close the convolutions run to this CPU's peak and how
much of the time is the memory-bound work around them; one profiled call answers both. The inference
copy runs most block convs as Winograd convs (:mod:`smisbench.models.winograd`): their time is the
whole of each ``winograd_conv3x3`` range (transforms and products), and their FLOPs are counted as the
direct conv's, so the GFLOP/s is the effective rate, comparable with the direct conv's and the peak.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from unittest import mock

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from smisbench.models import winograd

CONV_OPS = ("aten::mkldnn_convolution", "aten::_slow_conv2d_forward", "aten::thnn_conv2d", "aten::cudnn_convolution")


@dataclass(frozen=True)
class ProfileSplit:
    seconds: float
    conv_seconds: float  # direct conv kernels + Winograd conv ranges
    conv_gflop: float  # as direct convs
    other_gflop: float
    top_other_ops: dict[str, float]
    winograd_seconds: float = 0.0

    @property
    def conv_gflop_per_s(self) -> float:
        return self.conv_gflop / self.conv_seconds if self.conv_seconds else float("nan")

    @property
    def rest_seconds(self) -> float:
        return self.seconds - self.conv_seconds

    def summary(self) -> str:
        top = ", ".join(f"{name.removeprefix('aten::')} {s:.3f}" for name, s in self.top_other_ops.items())
        return (f"{self.seconds:.2f} s: convolutions {self.conv_gflop:.1f} GFLOP (as direct convs) in "
                f"{self.conv_seconds:.2f} s ({self.conv_gflop_per_s:.0f} GFLOP/s effective; "
                f"{self.winograd_seconds:.2f} s of it Winograd), the rest {self.rest_seconds:.2f} s "
                f"({100 * self.rest_seconds / self.seconds:.0f} %; {self.other_gflop:.1f} GFLOP) [{top}]")

    def as_dict(self) -> dict:
        return {**asdict(self), "conv_gflop_per_s": self.conv_gflop_per_s, "rest_seconds": self.rest_seconds}


def _inside(event, name: str) -> bool:
    parent = event.cpu_parent
    while parent is not None:
        if parent.name == name:
            return True
        parent = parent.cpu_parent
    return False


def profile_split(run: Callable[[], object], top: int = 6) -> ProfileSplit:
    """Profile one call of ``run`` (already warmed up): conv FLOPs counted by torch's FLOP counter with every
    conv direct, conv time as the self time of the backend convolution kernels plus the Winograd ranges;
    ``seconds`` is the wall time of the profiled call."""
    with torch.inference_mode(), FlopCounterMode(display=False) as counter, \
            mock.patch.dict(winograd.TILE_FOR_SIDE, clear=True):  # every conv direct: its FLOPs, counted once
        run()
    flops = counter.get_flop_counts().get("Global", {})
    conv = sum(v for op, v in flops.items() if "convolution" in str(op))
    other = sum(v for op, v in flops.items() if "convolution" not in str(op))
    with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        run()
        seconds = time.perf_counter() - start
    events = prof.events()
    wino = sum(e.cpu_time_total for e in events if e.name == winograd.PROFILE_RANGE) / 1e6
    self_seconds: dict[str, float] = {}
    for e in events:
        if e.name != winograd.PROFILE_RANGE and not _inside(e, winograd.PROFILE_RANGE):
            self_seconds[e.name] = self_seconds.get(e.name, 0.0) + e.self_cpu_time_total / 1e6
    conv_seconds = wino + sum(s for name, s in self_seconds.items() if name in CONV_OPS)
    others = sorted(((n, s) for n, s in self_seconds.items() if n not in CONV_OPS), key=lambda kv: -kv[1])
    return ProfileSplit(seconds, conv_seconds, conv / 1e9, other / 1e9, dict(others[:top]), wino)
