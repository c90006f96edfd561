"""What every training objective returns, and the one helper they all use to run D inside G's loss.

It sits beside the models because the model-specific objectives (``objectives_baselines``) live there,
and the trainer's default objective (``smisbench.training.objective``) imports models, not the reverse.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Iterator

import torch
from torch import nn


@dataclass
class LossResult:
    """A loss to back-propagate, its named terms (detached, for logging) and the generated images."""

    total: torch.Tensor
    terms: dict[str, torch.Tensor]
    fakes: dict[str, torch.Tensor] = field(default_factory=dict)


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Build graphs through ``module`` without making its parameters leaves of them (no D grads from G's loss)."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
