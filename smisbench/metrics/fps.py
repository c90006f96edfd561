"""Generation speed: warm-up, synchronisation, median over repeats, inference mode, every setting recorded."""

from __future__ import annotations

import copy
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Callable

import torch

from smisbench.errors import SmisbenchError

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64}


@dataclass
class FPSResult:
    fps: float  # images per second from the median batch time
    median_batch_seconds: float
    batch_size: int
    resolution: tuple[int, int]
    dtype: str
    threads: int
    device: str
    device_name: str
    warmup: int
    repeats: int
    batch_seconds: list[float]

    def to_dict(self) -> dict:
        return asdict(self)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_callable(fn: Callable[[], object], device: torch.device | str, warmup: int = 5, repeats: int = 20) -> list[float]:
    """Seconds per call of ``fn`` after ``warmup`` untimed calls, synchronising the device around each call."""
    if repeats < 1 or warmup < 0:
        raise SmisbenchError(f"invalid timing settings warmup={warmup}, repeats={repeats}", "use warmup >= 0, repeats >= 1")
    device = torch.device(device)
    with torch.inference_mode():
        for _ in range(warmup):
            fn()
        _sync(device)
        times = []
        for _ in range(repeats):
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            times.append(time.perf_counter() - start)
    return times


def measure_fps(
    model,
    label: torch.Tensor,
    batch_size: int = 1,
    warmup: int = 5,
    repeats: int = 20,
    dtype: str = "float32",
    device: torch.device | str | None = None,
    seed: int = 0,
) -> FPSResult:
    """Images per second of ``model.generate`` for one (H, W) label map repeated ``batch_size`` times.

    Codes are drawn once (seeded) outside the timed region, as the one-hot input is: only the
    generator's forward pass is timed. A non-float32 dtype runs a converted copy of the model.
    """
    from smisbench.provenance import device_description

    if dtype not in DTYPES:
        from smisbench.errors import UnknownNameError

        raise UnknownNameError("dtype", dtype, list(DTYPES))
    device = torch.device(device) if device is not None else next(model.parameters()).device
    net = model if dtype == "float32" else copy.deepcopy(model).to(DTYPES[dtype])
    net = net.to(device).eval()
    label = label.reshape(1, *label.shape[-2:])
    semantics = net.semantics(label).expand(batch_size, -1, -1, -1).to(device, DTYPES[dtype])
    z = net.sample_z(batch_size, torch.Generator().manual_seed(seed), device)
    z = None if z is None else z.to(DTYPES[dtype])
    times = time_callable(lambda: net.generate(semantics, z), device, warmup, repeats)
    median = statistics.median(times)
    return FPSResult(
        fps=batch_size / median, median_batch_seconds=median, batch_size=batch_size,
        resolution=tuple(label.shape[-2:]), dtype=dtype, threads=torch.get_num_threads(), device=str(device),
        device_name=device_description(device), warmup=warmup, repeats=repeats, batch_seconds=times,
    )
