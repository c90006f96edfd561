"""Data order that can be resumed mid-epoch and sharded over ranks.

The order of an epoch is a permutation drawn from (seed, epoch), as ``DistributedSampler``
draws it, and each rank takes its share. Resuming after ``k`` batches skips the first
``k * batch_size`` indices of this rank's share, so the remaining batches are exactly the
ones an uninterrupted run would have seen. The loader gets its own ``torch.Generator`` so
that creating it never consumes the global RNG (which the checkpoint restores).
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from smisbench.errors import SmisbenchError


class ResumableSampler(DistributedSampler):
    """``DistributedSampler`` that can start part-way through an epoch."""

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int, seed: int, shuffle: bool = True):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=False)
        self.start = 0

    def set_position(self, epoch: int, start: int) -> None:
        """Epoch to draw the order for, and how many of this rank's indices to skip."""
        self.set_epoch(epoch)
        self.start = int(start)

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        return iter(indices[self.start:])

    def __len__(self) -> int:
        return max(0, self.num_samples - self.start)


def make_loader(dataset: Dataset, batch_size: int, rank: int, world_size: int, seed: int, workers: int = 0,
                pin_memory: bool = False) -> tuple[DataLoader, ResumableSampler]:
    """Training loader (full batches only) and its sampler; refuses datasets smaller than one global batch."""
    if len(dataset) < batch_size * world_size:
        raise SmisbenchError(
            f"the dataset has {len(dataset)} items, fewer than one batch ({batch_size} x {world_size} processes)",
            "use a smaller --batch-size or more data",
        )
    sampler = ResumableSampler(dataset, world_size, rank, seed)
    loader = DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, num_workers=workers, drop_last=True,
        pin_memory=pin_memory, persistent_workers=False, generator=torch.Generator().manual_seed(seed),
    )
    return loader, sampler


def batches_per_epoch(dataset: Dataset, batch_size: int, world_size: int) -> int:
    per_rank = -(-len(dataset) // world_size)
    return per_rank // batch_size
