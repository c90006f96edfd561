"""Generating the protocol's sets of images for a model: base codes, set codes, batched generation.

The in-memory scorers (:mod:`smisbench.metrics.smis_diversity`) and ``smisbench export-samples`` both
generate with :class:`SetGenerator`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from smisbench.metrics.diversity_draws import (
    DiversitySettings, base_code, needed_images, sampling_kind, set_codes, set_pairs,
)
from smisbench.metrics.lpips_metric import LPIPSMetric
from smisbench.models.base import SMISModel


@dataclass
class _Job:
    """The images of one set (a class's redraws, or global resamples) for one label map."""

    key: int  # class id, or GLOBAL_SET for global resampling
    pairs: torch.Tensor  # (m, 2) indices into 0..n-1
    needed: torch.Tensor  # sorted indices of images to generate
    codes: torch.Tensor | None  # codes of the needed images


class SetGenerator:
    """Generates the protocol's sets for a model: base codes, set codes, batched generation.

    The in-memory scorers (:mod:`smisbench.metrics.smis_diversity`) use it, and ``smisbench
    export-samples`` writes the same images to files with it. ``lpips`` is only needed by the scorers.
    """

    def __init__(self, model: SMISModel, lpips: LPIPSMetric | None, settings: DiversitySettings):
        self.model = model
        self.lpips = lpips
        self.settings = settings
        self.images_generated = 0
        self.generator_calls = 0
        self.sampling = sampling_kind(model)

    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    def base(self, map_index: int) -> torch.Tensor:
        """The label map's base code (every class's redraws start from it)."""
        return base_code(self.model, self.settings.seed, map_index, self._device())

    def codes(self, base: torch.Tensor, key: int, map_index: int, count: int | None = None) -> torch.Tensor:
        """All ``count`` (default n) codes of one set."""
        s = self.settings
        return set_codes(self.model, self.sampling, base, s.n if count is None else count, s.seed, map_index, key)

    def semantics(self, label: torch.Tensor, instance: torch.Tensor | None) -> torch.Tensor:
        """The network input of one (H, W) label map (and its instance ids)."""
        return self.model.semantics(label[None], None if instance is None else instance.reshape(1, *label.shape))

    @torch.inference_mode()
    def generate(self, semantics: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """All images of one set's codes, in as few batches of at most ``batch_size`` as possible, of
        near-equal sizes."""
        out = []
        for z in codes.tensor_split(-(-codes.shape[0] // self.settings.batch_size)):
            sem = semantics.expand(z.shape[0], *semantics.shape[1:])
            out.append(self.model.generate(sem, z).float())
            self.generator_calls += 1
        self.images_generated += codes.shape[0]
        return torch.cat(out)

    def _job(self, base: torch.Tensor | None, key: int, map_index: int) -> _Job:
        s = self.settings
        pairs = set_pairs(s.n, s.m, s.seed, map_index, key)
        needed = torch.arange(s.n) if s.generate_all else needed_images(pairs)
        codes = None if base is None else self.codes(base, key, map_index)[needed.to(base.device)]
        return _Job(key, pairs, needed, codes)

    def _groups(self, jobs: list[_Job]) -> list[list[_Job]]:
        """Jobs packed so one group's images stay under ``max_images_in_memory``."""
        groups, current, size = [], [], 0
        for job in jobs:
            count = job.needed.numel()
            if current and size + count > self.settings.max_images_in_memory:
                groups.append(current)
                current, size = [], 0
            current.append(job)
            size += count
        if current:
            groups.append(current)
        return groups

    def _images_per_job(self, semantics: torch.Tensor, group: list[_Job]) -> list[torch.Tensor]:
        # a batch never mixes two sets: its items then share the label map and every code but the redrawn
        # class's, which a generator can exploit exactly (GroupDNet's inference copy runs the rest once)
        return [self.generate(semantics, job.codes) for job in group]
