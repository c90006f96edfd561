"""Scoring the pairs of a set of images: LPIPS, class-masked L_c and L_{!=c}, and their averages over label maps.

The masking modes and the skipped-class rules are described in :mod:`smisbench.metrics.smis_diversity`;
both routes (in-memory and sample-folder) score through :class:`ClassDiversity` and :func:`pairs_lpips`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from smisbench.metrics.diversity_draws import DiversitySettings
from smisbench.metrics.lpips_metric import LPIPSMetric, masked_mean
from smisbench.metrics.protocol import MaskMode

NOTE_GLOBAL = "global resampling: model has no per-class codes, every class's images differ in the whole code"
NOTE_NONE = "deterministic model: no latent code, every diversity is 0 by construction"
NOTE_VANISHED = ("class {c} vanishes at the scoring size {size} (nearest-neighbour mask resize) in {k} label map(s) "
                 "(first: {first}): skipped there")
NOTE_FILLS = ("class {c} fills the whole image in {k} label map(s) (first: {first}): no other-class area, "
              "L_!=c not counted there")


def lpips_features(lpips: LPIPSMetric, images: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """LPIPS features of ``images``, ``batch_size`` at a time."""
    chunks = [lpips.features(images[i:i + batch_size]) for i in range(0, images.shape[0], batch_size)]
    return [torch.cat(layer) for layer in zip(*chunks)]


def pairs_lpips(lpips: LPIPSMetric, images: torch.Tensor, pairs: torch.Tensor, batch_size: int) -> float:
    """Mean LPIPS over ``pairs`` (indices into ``images``): one label map's overall diversity."""
    feats = lpips_features(lpips, images, batch_size)
    return float(lpips.distance_from_features([f[pairs[:, 0]] for f in feats], [f[pairs[:, 1]] for f in feats]).mean())


def pair_scores(lpips: LPIPSMetric, images: torch.Tensor, pairs: torch.Tensor, mask: torch.Tensor,
                mask_mode: MaskMode | str, batch_size: int) -> tuple[float, float]:
    """(L_c, L_!=c) of one set's pairs; L_!=c is NaN (not counted) when the class fills the image."""
    inside, outside = mask, 1 - mask
    i, j = pairs[:, 0], pairs[:, 1]
    has_outside = float(outside.sum()) > 0
    if MaskMode(mask_mode) == MaskMode.LPIPS_MAP:
        feats = lpips_features(lpips, images, batch_size)
        l_in, l_out = [], []
        for start in range(0, pairs.shape[0], batch_size):
            a, b = i[start:start + batch_size], j[start:start + batch_size]
            maps = lpips.spatial_from_features([f[a] for f in feats], [f[b] for f in feats], tuple(images.shape[-2:]))
            l_in.append(masked_mean(maps, inside))
            if has_outside:
                l_out.append(masked_mean(maps, outside))
        return float(torch.cat(l_in).mean()), float(torch.cat(l_out).mean()) if has_outside else math.nan
    values = []
    for region in (inside, outside) if has_outside else (inside,):
        masked = images * region
        feats = lpips_features(lpips, masked, batch_size)
        d = lpips.distance_from_features([f[i] for f in feats], [f[j] for f in feats])
        # LPIPS(x, x) = 0: a pair whose masked images are the same pixels is 0, not the rounding that
        # the same image at two batch positions picks up in a multithreaded convolution
        same = (masked[i] == masked[j]).flatten(1).all(1).to(d.device)
        d = torch.where(same.view(-1, *[1] * (d.dim() - 1)), torch.zeros_like(d), d)
        values.append(float(d.mean()))
    return values[0], values[1] if has_outside else math.nan


def region_mask(label: torch.Tensor, c: int, size: tuple[int, int]) -> torch.Tensor:
    """(1, 1, H, W) float mask of class ``c`` at the generated images' ``size`` (nearest-neighbour resize)."""
    mask = (label == c).to(torch.float32)[None, None]
    if tuple(mask.shape[-2:]) != tuple(size):
        mask = F.interpolate(mask, size=size, mode="nearest")
    return mask


def _size(images: torch.Tensor) -> str:
    return f"{images.shape[-2]}x{images.shape[-1]}"


@dataclass
class SMISDiversityResult:
    mcsd: float
    mocd: float
    per_class_csd: dict[int, float]
    per_class_ocd: dict[int, float]
    label_maps: int
    sampling: str  # "per_class", "global" or "none"
    mask_mode: str
    images_generated: int
    generator_calls: int
    notes: list[str] = field(default_factory=list)


class ClassDiversity:
    """L_c and L_{!=c} per class over label maps, from sets of images however they were made.

    The part of mCSD/mOCD that the in-memory route (:class:`SMISDiversity`) and the sample-folder
    route share: masks, skipped classes and their notes, pair scores and the averages.
    """

    def __init__(self, lpips: LPIPSMetric, settings: DiversitySettings, sampling: str):
        self.lpips = lpips
        self.settings = settings
        self.sampling = sampling
        self._csd: dict[int, list[float]] = {}
        self._ocd: dict[int, list[float]] = {}
        self._skipped: dict[tuple[str, int, str], list[int]] = {}  # (note, class, size) -> label maps
        self._per_map: dict[int, dict[int, tuple[float, float]]] = {}  # map index -> its scores (for gather)
        self.label_maps = 0

    def score_set(self, label: torch.Tensor, key: int, images: torch.Tensor, pairs: torch.Tensor,
                  map_index: int) -> tuple[float, float] | None:
        """(L_c, L_!=c) of class ``key``'s set (pairs index ``images``); None when the class vanishes there."""
        mask = region_mask(label, key, tuple(images.shape[-2:])).to(images.device)
        area = float(mask.sum())
        if area == 0:
            self._skipped.setdefault((NOTE_VANISHED, key, _size(images)), []).append(map_index)
            return None
        if area == mask.numel():
            self._skipped.setdefault((NOTE_FILLS, key, _size(images)), []).append(map_index)
        return pair_scores(self.lpips, images, pairs, mask, self.settings.mask_mode, self.settings.batch_size)

    def add_map(self, scores: dict[int, tuple[float, float]],
                map_index: int | None = None) -> dict[int, tuple[float, float]]:
        """Count one label map's {class: (L_c, L_!=c)} (``map_index``: its index in the split, default
        the next one; kept per map so :meth:`gather` can replay every rank's maps in map order)."""
        self._per_map[self.label_maps if map_index is None else int(map_index)] = scores
        self.label_maps += 1
        self._count(scores)
        return scores

    def _count(self, scores: dict[int, tuple[float, float]]) -> None:
        for c, (csd, ocd) in scores.items():
            self._csd.setdefault(c, []).append(csd)
            if not math.isnan(ocd):
                self._ocd.setdefault(c, []).append(ocd)

    def gather(self) -> None:
        """Sharded evaluation: every rank's maps and skipped classes on every rank, the scores replayed
        in map order, so the means are the one-process ones (a no-op in one process)."""
        from smisbench.metrics import sharding

        if not sharding.world().distributed:
            return
        parts = sharding.gather_objects(self._skipped)
        per_map = sharding.merge_indexed(self._per_map)
        self._csd, self._ocd, self._skipped = {}, {}, {}
        for scores in per_map.values():
            self._count(scores)
        for skipped in parts:
            for key, maps in skipped.items():
                self._skipped.setdefault(key, []).extend(maps)
        self._skipped = {key: sorted(maps) for key, maps in self._skipped.items()}
        self._per_map, self.label_maps = per_map, len(per_map)

    def notes(self) -> list[str]:
        notes = {"global": [NOTE_GLOBAL], "none": [NOTE_NONE]}.get(self.sampling, [])
        for (template, c, size), maps in sorted(self._skipped.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            notes.append(template.format(c=c, size=size, k=len(maps), first=maps[0]))
        return notes

    def result(self, images_generated: int = 0, generator_calls: int = 0) -> SMISDiversityResult:
        csd = {c: sum(v) / len(v) for c, v in sorted(self._csd.items())}
        ocd = {c: sum(v) / len(v) for c, v in sorted(self._ocd.items())}
        return SMISDiversityResult(
            mcsd=sum(csd.values()) / len(csd) if csd else float("nan"),
            mocd=sum(ocd.values()) / len(ocd) if ocd else float("nan"),
            per_class_csd=csd, per_class_ocd=ocd, label_maps=self.label_maps, sampling=self.sampling,
            mask_mode=MaskMode(self.settings.mask_mode).value, images_generated=images_generated,
            generator_calls=generator_calls, notes=self.notes(),
        )
