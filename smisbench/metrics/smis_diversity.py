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

Two routes share this module's pieces: the in-memory one (:class:`SMISDiversity`,
:class:`LPIPSDiversity`, generating with :class:`SetGenerator`) and the sample-folder one
(``smisbench.samples``: ``export-samples`` writes the sets :class:`SetGenerator` makes, and
``score-samples`` reads them back). The seeded draws (:func:`base_code`, :func:`set_codes`,
:func:`set_pairs`) and the scoring of a set's pairs (:class:`ClassDiversity`, :func:`pair_scores`,
:func:`pairs_lpips`) are defined once here, so the two routes differ by PNG rounding alone.
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


# ----------------------------------------------------------------------------- the protocol's draws
# One place for every seeded draw of the protocol, used by the in-memory route below and by the
# sample-folder route (smisbench.samples), so both score the same images in the same pairs.
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


# ----------------------------------------------------------------------------- scoring pairs
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


# ----------------------------------------------------------------------------- the in-memory route
@dataclass
class _Job:
    """The images of one set (a class's redraws, or global resamples) for one label map."""

    key: int  # class id, or GLOBAL_SET for global resampling
    pairs: torch.Tensor  # (m, 2) indices into 0..n-1
    needed: torch.Tensor  # sorted indices of images to generate
    codes: torch.Tensor | None  # codes of the needed images


class SetGenerator:
    """Generates the protocol's sets for a model: base codes, set codes, batched generation.

    The in-memory scorers below use it, and ``smisbench export-samples`` writes the same images to
    files with it. ``lpips`` is only needed by the scorers.
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
        """All images of a concatenated code block, ``batch_size`` at a time."""
        out = []
        for start in range(0, codes.shape[0], self.settings.batch_size):
            z = codes[start:start + self.settings.batch_size]
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
        codes = torch.cat([job.codes for job in group])
        images = self.generate(semantics, codes)
        return list(torch.split(images, [job.needed.numel() for job in group]))


class SMISDiversity(SetGenerator):
    """Generates each class's set and accumulates L_c and L_{!=c}; :meth:`result` gives mCSD and mOCD."""

    def __init__(self, model: SMISModel, lpips: LPIPSMetric, settings: DiversitySettings | None = None):
        super().__init__(model, lpips, settings or DiversitySettings())
        self.scores = ClassDiversity(lpips, self.settings, self.sampling)

    @property
    def label_maps(self) -> int:
        return self.scores.label_maps

    def _classes(self, label: torch.Tensor) -> list[int]:
        present = torch.unique(label).tolist()
        if self.sampling == "per_class":
            present = [c for c in present if c < self.model.num_code_classes]
        return present

    def add_label_map(self, label: torch.Tensor, instance: torch.Tensor | None = None,
                      map_index: int | None = None) -> dict[int, tuple[float, float]]:
        """Score one (H, W) label map; returns {class: (L_c, L_!=c)} for the classes it contains."""
        index = self.label_maps if map_index is None else map_index
        label = label.reshape(label.shape[-2:]).cpu()
        classes = self._classes(label)
        if self.sampling == "none":
            return self.scores.add_map({c: (0.0, 0.0) for c in classes}, index)
        return self.scores.add_map(self._score(label, instance, classes, index), index)

    def gather(self) -> None:
        """Sharded evaluation: every rank's maps on every rank, replayed in map order, so the means are
        the one-process ones (a no-op in one process; ``smisbench.metrics.sharding``)."""
        from smisbench.metrics import sharding

        if not sharding.world().distributed:
            return
        self.scores.gather()
        counts = sharding.gather_objects((self.images_generated, self.generator_calls))
        self.images_generated = sum(c[0] for c in counts)
        self.generator_calls = sum(c[1] for c in counts)

    def _score(self, label, instance, classes, index) -> dict[int, tuple[float, float]]:
        semantics = self.semantics(label, instance)
        base = self.base(index)
        jobs = [self._job(base, c, index) for c in classes]
        scores = {}
        for group in self._groups(jobs):
            for job, images in zip(group, self._images_per_job(semantics, group)):
                score = self.scores.score_set(label, job.key, images, local_pairs(job.needed, job.pairs), index)
                if score is not None:
                    scores[job.key] = score
        return scores

    def result(self) -> SMISDiversityResult:
        return self.scores.result(self.images_generated, self.generator_calls)


class LPIPSDiversity(SetGenerator):
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
        semantics = self.semantics(label, instance)
        job = self._job(self.base(index), GLOBAL_SET, index)
        images = self._images_per_job(semantics, [job])[0]
        value = pairs_lpips(self.lpips, images, local_pairs(job.needed, job.pairs), self.settings.batch_size)
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
