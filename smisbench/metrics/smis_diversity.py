"""mCSD, mOCD (GroupDNet paper, Sec. 4.3) and overall LPIPS diversity for any registered model.

For one label map and each class c present in it, n images are generated from one base code
with only class c's code redrawn; m distinct pairs are drawn among them. L_c is the LPIPS
restricted to class c's area over the pairs, L_{!=c} the same for the area of all other classes
(the complement of c) over the same pairs. Over label maps, each class's L_c is the mean over the
maps that contain it; mCSD = mean_c L_c, mOCD = mean_c L_{!=c}.

Masking (``mask_mode``; not published, the authors lost the code). The default, "image", is the
paper's scale: both images are multiplied by the region's mask (the rest becomes 0, mid-grey) and
the ordinary LPIPS of the masked images is taken, averaged over the whole image, so L_c is
area-weighted. Table 1 of the paper shows this: for its three global-code models mCSD + mOCD is
close to the overall LPIPS (VSPADE 0.0304 + 0.1843 = 0.215 vs LPIPS 0.207; BicycleGAN 0.246 vs
0.228; DSCGAN 0.181 vs 0.163) and mOCD / mCSD is about 6-7, near C - 1 = 7 for DeepFashion's 8
classes, which only an area-weighted L_c gives; the sum exceeding LPIPS by 4-11 % fits masked
images (mask edges add distance). A model that changes class c's pixels only gets mOCD = 0
exactly. "lpips_map" (selectable, never the default) averages the spatial LPIPS map of the full
images over the mask's own pixels: a global-code model then gets mCSD ~ mOCD, and LPIPS's
receptive field carries a change across a class border, so the class-only model above still
gets mOCD > 0. The mode is named in every result (``SMISDiversityResult.mask_mode``).

Masks are the label map resized (nearest neighbour) to the generated images' size. A class that
vanishes at that size is skipped for that map, and a class that fills the whole image has no
other-class area there (its L_{!=c} is not counted); both say so in ``notes``, never as NaN.

Every image's code comes from its own seed, so only images that appear in a pair are generated
(``generate_all=True`` generates all n and gives identical numbers). Models without per-class
codes fall back to global resampling for every class, and say so in ``notes``.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from smisbench.errors import SmisbenchError
from smisbench.metrics.lpips_metric import LPIPSMetric, masked_mean
from smisbench.metrics.protocol import MaskMode
from smisbench.models.base import CodesKind, SMISModel

NOTE_GLOBAL = "global resampling: model has no per-class codes, every class's images differ in the whole code"
NOTE_NONE = "deterministic model: no latent code, every diversity is 0 by construction"
NOTE_VANISHED = ("class {c} vanishes at the scoring size {size} (nearest-neighbour mask resize) in {k} label map(s) "
                 "(first: {first}): skipped there")
NOTE_FILLS = ("class {c} fills the whole image in {k} label map(s) (first: {first}): no other-class area, "
              "L_!=c not counted there")


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


@dataclass
class _Job:
    """The images of one set (a class's redraws, or global resamples) for one label map."""

    key: int  # class id, or -1 for global resampling
    pairs: torch.Tensor  # (m, 2) indices into 0..n-1
    needed: torch.Tensor  # sorted indices of images to generate
    codes: torch.Tensor | None  # codes of the needed images


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


class _Generation:
    """Shared machinery: codes per set, batched generation, LPIPS features."""

    def __init__(self, model: SMISModel, lpips: LPIPSMetric, settings: DiversitySettings):
        self.model = model
        self.lpips = lpips
        self.settings = settings
        self.images_generated = 0
        self.generator_calls = 0
        self.sampling = self._sampling_kind(model)

    @staticmethod
    def _sampling_kind(model: SMISModel) -> str:
        if model.latent is None or model.codes_kind == CodesKind.NONE:
            return "none"
        if model.codes_kind == CodesKind.PER_CLASS and model.latent.per_class:
            return "per_class"
        return "global"

    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _codes(self, base: torch.Tensor, key: int, map_index: int) -> torch.Tensor:
        """Codes of all n images of one set; image k's code depends only on (seed, map, set, k)."""
        n = self.settings.n
        gen = _generator(self.settings.seed, "codes", map_index, key)
        if key >= 0 and self.sampling == "per_class":
            return self.model.redraw(base.expand(n, *base.shape[1:]).contiguous(), [key], gen)
        return self.model.sample_z(n, gen, base.device)

    def _job(self, base: torch.Tensor | None, key: int, map_index: int) -> _Job:
        s = self.settings
        pairs = sample_pairs(s.n, s.m, _generator(s.seed, "pairs", map_index, key))
        needed = torch.arange(s.n) if s.generate_all else torch.unique(pairs)
        codes = None if base is None else self._codes(base, key, map_index)[needed.to(base.device)]
        return _Job(key, pairs, needed, codes)

    @torch.inference_mode()
    def _generate(self, semantics: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """All images of a concatenated code block, ``batch_size`` at a time."""
        out = []
        for start in range(0, codes.shape[0], self.settings.batch_size):
            z = codes[start:start + self.settings.batch_size]
            sem = semantics.expand(z.shape[0], *semantics.shape[1:])
            out.append(self.model.generate(sem, z).float())
            self.generator_calls += 1
        self.images_generated += codes.shape[0]
        return torch.cat(out)

    def _features(self, images: torch.Tensor) -> list[torch.Tensor]:
        chunks = [self.lpips.features(images[i:i + self.settings.batch_size])
                  for i in range(0, images.shape[0], self.settings.batch_size)]
        return [torch.cat(layer) for layer in zip(*chunks)]

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
        codes = torch.cat([job.codes for job in group])
        images = self._generate(semantics, codes)
        return list(torch.split(images, [job.needed.numel() for job in group]))

    @staticmethod
    def _local_pairs(job: _Job) -> torch.Tensor:
        """Pair indices into the job's generated images (positions in ``needed``)."""
        lookup = torch.full((int(job.needed.max()) + 1,), -1, dtype=torch.long)
        lookup[job.needed] = torch.arange(job.needed.numel())
        return lookup[job.pairs]


def region_mask(label: torch.Tensor, c: int, size: tuple[int, int]) -> torch.Tensor:
    """(1, 1, H, W) float mask of class ``c`` at the generated images' ``size`` (nearest-neighbour resize)."""
    mask = (label == c).to(torch.float32)[None, None]
    if tuple(mask.shape[-2:]) != tuple(size):
        mask = F.interpolate(mask, size=size, mode="nearest")
    return mask


def _size(images: torch.Tensor) -> str:
    return f"{images.shape[-2]}x{images.shape[-1]}"


class SMISDiversity(_Generation):
    """Accumulates L_c and L_{!=c} over label maps; :meth:`result` gives mCSD and mOCD."""

    def __init__(self, model: SMISModel, lpips: LPIPSMetric, settings: DiversitySettings | None = None):
        super().__init__(model, lpips, settings or DiversitySettings())
        self._csd: dict[int, list[float]] = {}
        self._ocd: dict[int, list[float]] = {}
        self._skipped: dict[tuple[str, int, str], list[int]] = {}  # (note, class, size) -> label maps
        self._per_map: dict[int, dict[int, tuple[float, float]]] = {}  # map index -> its scores (for gather)
        self.label_maps = 0

    def _classes(self, label: torch.Tensor) -> list[int]:
        present = torch.unique(label).tolist()
        if self.sampling == "per_class":
            present = [c for c in present if c < self.model.num_code_classes]
        return present

    def add_label_map(self, label: torch.Tensor, instance: torch.Tensor | None = None,
                      map_index: int | None = None) -> dict[int, tuple[float, float]]:
        """Score one (H, W) label map; returns {class: (L_c, L_!=c)} for the classes it contains."""
        index = self.label_maps if map_index is None else map_index
        self.label_maps += 1
        label = label.reshape(label.shape[-2:]).cpu()
        classes = self._classes(label)
        if self.sampling == "none":
            scores = {c: (0.0, 0.0) for c in classes}
        else:
            scores = self._score(label, instance, classes, index)
        self._per_map[index] = scores
        self._add(scores)
        return scores

    def _add(self, scores: dict[int, tuple[float, float]]) -> None:
        for c, (csd, ocd) in scores.items():
            self._csd.setdefault(c, []).append(csd)
            if not math.isnan(ocd):
                self._ocd.setdefault(c, []).append(ocd)

    def gather(self) -> None:
        """Sharded evaluation: every rank's maps on every rank, replayed in map order, so the means are
        the one-process ones (a no-op in one process; ``smisbench.metrics.sharding``)."""
        from smisbench.metrics import sharding

        if not sharding.world().distributed:
            return
        parts = sharding.gather_objects((self._skipped, self.images_generated, self.generator_calls))
        per_map = sharding.merge_indexed(self._per_map)
        self._csd, self._ocd, self._skipped = {}, {}, {}
        for scores in per_map.values():
            self._add(scores)
        for skipped, _, _ in parts:
            for key, maps in skipped.items():
                self._skipped.setdefault(key, []).extend(maps)
        self._skipped = {key: sorted(maps) for key, maps in self._skipped.items()}
        self._per_map, self.label_maps = per_map, len(per_map)
        self.images_generated = sum(p[1] for p in parts)
        self.generator_calls = sum(p[2] for p in parts)

    def _score(self, label, instance, classes, index) -> dict[int, tuple[float, float]]:
        semantics = self.model.semantics(label[None], None if instance is None else instance.reshape(1, *label.shape))
        base = self.model.sample_z(1, _generator(self.settings.seed, "base", index), self._device())
        jobs = [self._job(base, c, index) for c in classes]
        scores = {}
        for group in self._groups(jobs):
            for job, images in zip(group, self._images_per_job(semantics, group)):
                mask = region_mask(label, job.key, tuple(images.shape[-2:])).to(images.device)
                area = float(mask.sum())
                if area == 0:
                    self._skipped.setdefault((NOTE_VANISHED, job.key, _size(images)), []).append(index)
                    continue
                if area == mask.numel():
                    self._skipped.setdefault((NOTE_FILLS, job.key, _size(images)), []).append(index)
                scores[job.key] = self._pair_scores(images, self._local_pairs(job), mask)
        return scores

    def _pair_scores(self, images: torch.Tensor, pairs: torch.Tensor, mask: torch.Tensor) -> tuple[float, float]:
        """(L_c, L_!=c) of one set's pairs; L_!=c is NaN (not counted) when the class fills the image."""
        inside, outside = mask, 1 - mask
        i, j = pairs[:, 0], pairs[:, 1]
        has_outside = float(outside.sum()) > 0
        if self.settings.mask_mode == MaskMode.LPIPS_MAP:
            feats = self._features(images)
            l_in, l_out = [], []
            for start in range(0, pairs.shape[0], self.settings.batch_size):
                a, b = i[start:start + self.settings.batch_size], j[start:start + self.settings.batch_size]
                maps = self.lpips.spatial_from_features([f[a] for f in feats], [f[b] for f in feats],
                                                        tuple(images.shape[-2:]))
                l_in.append(masked_mean(maps, inside))
                if has_outside:
                    l_out.append(masked_mean(maps, outside))
            return float(torch.cat(l_in).mean()), float(torch.cat(l_out).mean()) if has_outside else math.nan
        values = []
        for region in (inside, outside) if has_outside else (inside,):
            feats = self._features(images * region)
            d = self.lpips.distance_from_features([f[i] for f in feats], [f[j] for f in feats])
            values.append(float(d.mean()))
        return values[0], values[1] if has_outside else math.nan

    def _notes(self) -> list[str]:
        notes = {"global": [NOTE_GLOBAL], "none": [NOTE_NONE]}.get(self.sampling, [])
        for (template, c, size), maps in sorted(self._skipped.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            notes.append(template.format(c=c, size=size, k=len(maps), first=maps[0]))
        return notes

    def result(self) -> SMISDiversityResult:
        csd = {c: sum(v) / len(v) for c, v in sorted(self._csd.items())}
        ocd = {c: sum(v) / len(v) for c, v in sorted(self._ocd.items())}
        return SMISDiversityResult(
            mcsd=sum(csd.values()) / len(csd) if csd else float("nan"),
            mocd=sum(ocd.values()) / len(ocd) if ocd else float("nan"),
            per_class_csd=csd, per_class_ocd=ocd, label_maps=self.label_maps, sampling=self.sampling,
            mask_mode=MaskMode(self.settings.mask_mode).value, images_generated=self.images_generated,
            generator_calls=self.generator_calls, notes=self._notes(),
        )


class LPIPSDiversity(_Generation):
    """Overall diversity: mean LPIPS between m pairs of n globally resampled outputs per label map."""

    def __init__(self, model: SMISModel, lpips: LPIPSMetric, settings: DiversitySettings | None = None):
        super().__init__(model, lpips, settings or DiversitySettings())
        self._values: list[float] = []
        self._per_map: dict[int, float] = {}  # map index -> its LPIPS (for gather)

    def add_label_map(self, label: torch.Tensor, instance: torch.Tensor | None = None,
                      map_index: int | None = None) -> float:
        index = len(self._values) if map_index is None else map_index
        label = label.reshape(label.shape[-2:]).cpu()
        if self.sampling == "none":
            self._values.append(0.0)
            self._per_map[index] = 0.0
            return 0.0
        semantics = self.model.semantics(label[None], None if instance is None else instance.reshape(1, *label.shape))
        base = self.model.sample_z(1, _generator(self.settings.seed, "base", index), self._device())
        job = self._job(base, -1, index)
        images = self._images_per_job(semantics, [job])[0]
        pairs = self._local_pairs(job)
        feats = self._features(images)
        value = float(self.lpips.distance_from_features([f[pairs[:, 0]] for f in feats],
                                                        [f[pairs[:, 1]] for f in feats]).mean())
        self._values.append(value)
        self._per_map[index] = value
        return value

    def gather(self) -> None:
        """Sharded evaluation: every rank's maps on every rank, in map order (a no-op in one process)."""
        from smisbench.metrics import sharding

        if not sharding.world().distributed:
            return
        counts = sharding.gather_objects((self.images_generated, self.generator_calls))
        self._per_map = sharding.merge_indexed(self._per_map)
        self._values = list(self._per_map.values())
        self.images_generated = sum(c[0] for c in counts)
        self.generator_calls = sum(c[1] for c in counts)

    @property
    def notes(self) -> list[str]:
        return [NOTE_NONE] if self.sampling == "none" else []

    def result(self) -> float:
        return sum(self._values) / len(self._values) if self._values else float("nan")
