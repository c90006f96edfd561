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
:func:`pairs_lpips`) are defined once, so the two routes differ by PNG rounding alone: the draws in
:mod:`~smisbench.metrics.diversity_draws`, the pair scoring in :mod:`~smisbench.metrics.diversity_scoring`,
the generation in :mod:`~smisbench.metrics.diversity_sets`, and the two in-memory scorers here (every
name re-exported).
"""

from __future__ import annotations

import torch

from smisbench.metrics.diversity_draws import (
    GLOBAL_SET, DiversitySettings, base_code, derive_seed, local_pairs, needed_images, sample_pairs, sampling_kind,
    set_codes, set_pairs,
)
from smisbench.metrics.diversity_scoring import (
    NOTE_FILLS, NOTE_GLOBAL, NOTE_NONE, NOTE_VANISHED, ClassDiversity, SMISDiversityResult, lpips_features,
    pair_scores, pairs_lpips, region_mask,
)
from smisbench.metrics.diversity_sets import SetGenerator
from smisbench.metrics.lpips_metric import LPIPSMetric
from smisbench.metrics.protocol import MaskMode
from smisbench.models.base import SMISModel

# The protocol's pieces live in one module each (draws, pair scoring, set generation); their public
# names are re-exported here, where the metrics (``scorer_class``) and other code look them up.
__all__ = [
    "GLOBAL_SET", "NOTE_FILLS", "NOTE_GLOBAL", "NOTE_NONE", "NOTE_VANISHED", "ClassDiversity", "DiversitySettings",
    "LPIPSDiversity", "MaskMode", "SMISDiversity", "SMISDiversityResult", "SetGenerator", "base_code",
    "derive_seed", "local_pairs", "lpips_features", "needed_images", "pair_scores", "pairs_lpips", "region_mask",
    "sample_pairs", "sampling_kind", "set_codes", "set_pairs",
]


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
