"""The seeded draws of the SMIS diversity protocol: its settings, pairs, base codes and set codes.

One place for every seeded draw, used by the in-memory route (:mod:`smisbench.metrics.smis_diversity`)
and the sample-folder route (``smisbench.samples``), so both score the same images in the same pairs.
Every image's code comes from its own seed (:func:`derive_seed`), whatever the batching or sharding.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch

from smisbench.errors import SmisbenchError
from smisbench.metrics.protocol import MaskMode
from smisbench.models.base import CodesKind, SMISModel


@dataclass(frozen=True)
class DiversitySettings:
    """The protocol's n, m and masking, plus how work is batched (which never changes the numbers)."""

    n: int = 100
    m: int = 19
    mask_mode: MaskMode | str = MaskMode.IMAGE
    seed: int = 0
    batch_size: int = 16
    max_images_in_memory: int = 256
    generate_all: bool = False

    def __post_init__(self) -> None:
        try:
            mode = MaskMode(self.mask_mode)
        except ValueError:
            from smisbench.errors import UnknownNameError

            raise UnknownNameError("mask mode", str(self.mask_mode), [m.value for m in MaskMode]) from None
        object.__setattr__(self, "mask_mode", mode)
        if self.n < 2 or self.m < 1 or self.m > self.n * (self.n - 1) // 2:
            raise SmisbenchError(
                f"cannot draw m={self.m} distinct pairs from n={self.n} images",
                "use n >= 2 and 1 <= m <= n(n-1)/2 (the paper: n=100, m=19)",
            )


def derive_seed(seed: int, *parts: object) -> int:
    """A 63-bit seed from the protocol seed and a path of names/indices (stable across runs and machines)."""
    text = "/".join([str(seed), *map(str, parts)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") & ((1 << 63) - 1)


def _generator(seed: int, *parts: object) -> torch.Generator:
    return torch.Generator().manual_seed(derive_seed(seed, *parts))


def sample_pairs(n: int, m: int, generator: torch.Generator) -> torch.Tensor:
    """(m, 2) distinct unordered pairs (i < j) of indices in 0..n-1, uniformly drawn."""
    upper = torch.triu_indices(n, n, offset=1)
    pick = torch.randperm(upper.shape[1], generator=generator)[:m]
    return upper[:, pick].T.contiguous()


# ----------------------------------------------------------------------------- the protocol's draws
GLOBAL_SET = -1  # the set key of global resampling (LPIPS diversity); a class id otherwise


def set_pairs(n: int, m: int, seed: int, map_index: int, key: int) -> torch.Tensor:
    """The m pairs among the n images of one set (class ``key``, or ``GLOBAL_SET``) of one label map."""
    return sample_pairs(n, m, _generator(seed, "pairs", map_index, key))


def needed_images(pairs: torch.Tensor) -> torch.Tensor:
    """Sorted indices of the images that appear in ``pairs`` (the only ones that must exist)."""
    return torch.unique(pairs)


def local_pairs(needed: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
    """Pair indices into the images of ``needed`` (positions in it) instead of 0..n-1."""
    lookup = torch.full((int(needed.max()) + 1,), -1, dtype=torch.long)
    lookup[needed] = torch.arange(needed.numel())
    return lookup[pairs]


def sampling_kind(model: SMISModel) -> str:
    """How the model's sets are drawn: "per_class" (class c's code alone), "global" or "none"."""
    if model.latent is None or model.codes_kind == CodesKind.NONE:
        return "none"
    if model.codes_kind == CodesKind.PER_CLASS and model.latent.per_class:
        return "per_class"
    return "global"


def base_code(model: SMISModel, seed: int, map_index: int, device: torch.device | str | None = None) -> torch.Tensor:
    """The one base code of a label map that every class's redraws start from."""
    return model.sample_z(1, _generator(seed, "base", map_index), device)


def set_codes(model: SMISModel, sampling: str, base: torch.Tensor, n: int, seed: int, map_index: int,
              key: int) -> torch.Tensor:
    """Codes of all n images of one set; image k's code depends only on (seed, map, set, k).

    A class set of a per-class model redraws only class ``key``'s code of ``base``; any other set
    (global resampling, or a model without per-class codes) draws whole codes.
    """
    gen = _generator(seed, "codes", map_index, key)
    if key >= 0 and sampling == "per_class":
        return model.redraw(base.expand(n, *base.shape[1:]).contiguous(), [key], gen)
    return model.sample_z(n, gen, base.device)
