"""The official learning-rate schedule: constant, then linear decay to zero over the last steps."""

from __future__ import annotations

import torch
from torch.optim.lr_scheduler import LambdaLR


class LinearDecay:
    """Factor 1 for ``total - decay`` steps, then ``(total - step) / decay`` down to 0.

    The official code lowers the rate once per epoch over ``niter_decay`` epochs; counting in
    steps gives the same line sampled more finely. A class (not a lambda) so that
    ``LambdaLR.state_dict`` saves it with the checkpoint.
    """

    def __init__(self, total_steps: int, decay_steps: int):
        self.total_steps = int(total_steps)
        self.decay_steps = int(decay_steps)

    def __call__(self, step: int) -> float:
        if self.decay_steps <= 0:
            return 1.0
        start = self.total_steps - self.decay_steps
        if step < start:
            return 1.0
        return max(0.0, (self.total_steps - step) / self.decay_steps)


def linear_decay(optimizer: torch.optim.Optimizer, total_steps: int, decay_steps: int) -> LambdaLR:
    return LambdaLR(optimizer, LinearDecay(total_steps, decay_steps))
