"""The generator an evaluation runs: the exact inference copy where a model has one, checked first.

A model with CG-Norms (``smisbench.models.inference.has_inference_copy``) is evaluated through its
inference copy (the same outputs to float rounding, about half the CPU time). Before the copy
generates anything that is scored, it and the model as defined generate the first batch of the
evaluation (same label maps, same codes) and, for a model with per-class codes when one of the
evaluation's metrics redraws classes (``Metric.redraws_classes``), two redraws of one class's code on
the first map (the batches mCSD/mOCD generate, which GroupDNet's copy runs on a path of its own); the
largest absolute difference of the images must be at most
``protocol.fast_path_tolerance``. Under sharded evaluation every rank checks on its own
device and the largest difference of all ranks decides, so all ranks take the same path.

A mismatch falls back to the model as defined, with a note: the numbers then are right, only
slower, and the note plus ``fast_path.max_abs_diff`` in the provenance show what to fix (an error
would stop a benchmark over an optimisation). ``protocol.fast_path = false`` opts out. The path
taken is ``generator_path`` in the provenance: ``"inference-copy"`` or ``"as-defined"``.

16-bit generators are checked in float32 (a float32 twin of the model against the copy made from
it), because their own rounding is far above any useful tolerance; the copy is then cast back.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Callable

import torch

from smisbench.metrics import sharding

AS_DEFINED = "as-defined"
INFERENCE_COPY = "inference-copy"
GENERATOR_PATHS = (INFERENCE_COPY, AS_DEFINED)

# (network, first batch) -> (semantics, codes) of the first batch, made with that network
Inputs = Callable[[Any], tuple[torch.Tensor, "torch.Tensor | None"]]


@dataclass
class GeneratorChoice:
    """What the evaluation generates with, and why."""

    model: Any
    path: str
    reason: str
    tolerance: float | None = None
    max_abs_diff: float | None = None
    checked_items: int = 0
    first_output: torch.Tensor | None = None  # the copy's images of the checked batch (exactly what it would make)

    def provenance(self) -> dict[str, Any]:
        return {"generator_path": self.path,
                "fast_path": {"reason": self.reason, "tolerance": self.tolerance, "max_abs_diff": self.max_abs_diff,
                              "checked_items": self.checked_items}}


def max_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest |a - b|; NaN where both are NaN counts as equal, NaN on one side only as infinitely far."""
    a, b = a.double(), b.double()
    diff = (a - b).abs()
    both = a.isnan() & b.isnan()
    diff = torch.where(both, torch.zeros_like(diff), diff)
    diff = torch.nan_to_num(diff, nan=math.inf)
    return float(diff.max()) if diff.numel() else 0.0


def _half(dtype: torch.dtype) -> bool:
    return dtype in (torch.float16, torch.bfloat16)


def _copy(model: Any) -> Any:
    from smisbench.models.inference import inference_copy

    param = next(model.parameters())
    return inference_copy(model).to(device=param.device, dtype=param.dtype)


def _redraw_batch(model: Any, semantics: torch.Tensor, z: torch.Tensor | None) -> tuple | None:
    """Two images of the first label map that differ in one class's code only (how mCSD/mOCD and the
    locality check generate, and what GroupDNet's copy runs on its shared-code path), or None when the
    model has no per-class codes."""
    latent = getattr(model, "latent", None)
    if z is None or latent is None or not latent.per_class:
        return None
    pair = z[:1].expand(2, *z.shape[1:]).contiguous()
    return semantics[:1].expand(2, *semantics.shape[1:]), model.redraw(pair, [0], torch.Generator().manual_seed(0))


@torch.inference_mode()
def _check(model: Any, inputs: Inputs, redraws: bool) -> tuple[Any, float, torch.Tensor | None, bool]:
    """(the copy in the model's dtype, max |copy - model| on the first batch and, with ``redraws``, on one
    class's redraws of its first map, the copy's first-batch images when exact to reuse, whether the
    redraws were compared)."""
    dtype = next(model.parameters()).dtype
    reference = copy.deepcopy(model).float() if _half(dtype) else model
    fast = _copy(reference)
    semantics, z = inputs(reference)
    expected = reference.generate(semantics, z).float()
    got = fast.generate(semantics, z).float()
    diff = max_abs_diff(got, expected)
    pair = _redraw_batch(reference, semantics, z) if redraws else None
    if pair is not None:
        diff = max(diff, max_abs_diff(fast.generate(*pair).float(), reference.generate(*pair).float()))
    if _half(dtype):
        del reference
        return fast.to(dtype), diff, None, pair is not None
    return fast, diff, got, pair is not None


def choose(model: Any, enabled: bool, tolerance: float, inputs: Inputs | None, count: int,
           redraws: bool = True) -> GeneratorChoice:
    """The generator to evaluate with (see the module docstring).

    ``inputs`` makes the first batch's network input (``count`` label maps); None when no metric
    generates anything, in which case the model as defined is kept and nothing is checked. ``redraws``:
    some metric generates one class's redraws, so the check compares such a pair too (per-class models).
    """
    from smisbench.models.inference import has_inference_copy

    if not enabled:
        return GeneratorChoice(model, AS_DEFINED, "fast_path = false in the protocol")
    if not has_inference_copy(model):
        return GeneratorChoice(model, AS_DEFINED, "no inference copy for this model (it has no CG-Norm to fold)")
    if inputs is None or count == 0:
        return GeneratorChoice(model, AS_DEFINED, "no metric generates images")
    try:
        fast, diff, first, redrawn = _check(model, inputs, redraws)
        problem = None
    except Exception as err:  # an exotic model the copy cannot handle: evaluate it as defined, say so
        fast, diff, first, redrawn, problem = None, math.inf, None, False, f"{type(err).__name__}: {err}"
    problems = sharding.gather_objects(problem)
    diff = sharding.all_max(diff)
    problem = next((p for p in problems if p is not None), None)
    if problem is not None:
        return GeneratorChoice(model, AS_DEFINED, f"the inference copy could not be made or run ({problem})",
                               tolerance, None, count)
    if not diff <= tolerance:
        return GeneratorChoice(model, AS_DEFINED,
                               f"the inference copy's images differ from the model's by {diff:.3g} on the first "
                               f"batch ({count} label maps), above fast_path_tolerance {tolerance:g}: generated "
                               "with the model as defined", tolerance, diff, count)
    pair = " and on one class's redraws of its first map" if redrawn else ""
    return GeneratorChoice(fast, INFERENCE_COPY, f"checked on the first batch ({count} label maps){pair}", tolerance,
                           diff, count, first)
