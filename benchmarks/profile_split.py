"""Where an inference's time goes: the convolutions (GFLOP, seconds, GFLOP/s) against everything else.

The issue's question for the CPU fast path is how close the convolutions run to this CPU's peak and how
much of the time is the memory-bound work around them; one profiled call answers both.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

CONV_OPS = ("aten::mkldnn_convolution", "aten::_slow_conv2d_forward", "aten::thnn_conv2d", "aten::cudnn_convolution")


@dataclass(frozen=True)
class ProfileSplit:
    seconds: float
    conv_seconds: float
    conv_gflop: float
    other_gflop: float
    top_other_ops: dict[str, float]

    @property
    def conv_gflop_per_s(self) -> float:
        return self.conv_gflop / self.conv_seconds if self.conv_seconds else float("nan")

    @property
    def rest_seconds(self) -> float:
        return self.seconds - self.conv_seconds

    def summary(self) -> str:
        top = ", ".join(f"{name.removeprefix('aten::')} {s:.3f}" for name, s in self.top_other_ops.items())
        return (f"{self.seconds:.2f} s: convolutions {self.conv_gflop:.1f} GFLOP in {self.conv_seconds:.2f} s "
                f"({self.conv_gflop_per_s:.0f} GFLOP/s), the rest {self.rest_seconds:.2f} s "
                f"({100 * self.rest_seconds / self.seconds:.0f} %; {self.other_gflop:.1f} GFLOP) [{top}]")

    def as_dict(self) -> dict:
        return {**asdict(self), "conv_gflop_per_s": self.conv_gflop_per_s, "rest_seconds": self.rest_seconds}


def profile_split(run: Callable[[], object], top: int = 6) -> ProfileSplit:
    """Profile one call of ``run`` (already warmed up): conv FLOPs counted by torch's FLOP counter, conv time
    as the self time of the backend convolution kernels; ``seconds`` is the wall time of the profiled call."""
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        run()
    flops = counter.get_flop_counts().get("Global", {})
    conv = sum(v for op, v in flops.items() if "convolution" in str(op))
    other = sum(v for op, v in flops.items() if "convolution" not in str(op))
    with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        run()
        seconds = time.perf_counter() - start
    self_seconds = {e.key: e.self_cpu_time_total / 1e6 for e in prof.key_averages()}
    conv_seconds = sum(s for name, s in self_seconds.items() if name in CONV_OPS)
    others = sorted(((n, s) for n, s in self_seconds.items() if n not in CONV_OPS), key=lambda kv: -kv[1])
    return ProfileSplit(seconds, conv_seconds, conv / 1e9, other / 1e9, dict(others[:top]))
