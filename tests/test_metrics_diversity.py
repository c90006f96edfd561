"""mCSD / mOCD / LPIPS diversity on constructed models whose answers are known.

The known answers do not depend on which LPIPS weights are used (identical images give exactly
0, different ones a positive distance), so most tests run on a random-weight LPIPS; one repeats
the key case with the provisioned AlexNet.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from conftest_weights import (  # noqa: F401  (fixtures)
    ToyDeterministicModel,
    ToyGlobalModel,
    ToyPerClassModel,
    block_label,
    lpips_alex,
    lpips_random,
    provisioned_weights,
)
from smisbench.errors import SmisbenchError
from smisbench.metrics.smis_diversity import (
    NOTE_GLOBAL,
    NOTE_NONE,
    DiversitySettings,
    MaskMode,
    LPIPSDiversity,
    SMISDiversity,
    sample_pairs,
)

SMALL = dict(n=6, m=4, batch_size=8)


def _score(model, lpips, label, **settings):
    scorer = SMISDiversity(model, lpips, DiversitySettings(**{**SMALL, **settings}))
    scorer.add_label_map(label)
    return scorer.result()


def test_pairs_are_distinct_ordered_and_seeded():
    pairs = sample_pairs(100, 19, torch.Generator().manual_seed(3))
    assert pairs.shape == (19, 2)
    assert bool((pairs[:, 0] < pairs[:, 1]).all()) and int(pairs.max()) < 100
    assert len({tuple(p) for p in pairs.tolist()}) == 19
    assert torch.equal(pairs, sample_pairs(100, 19, torch.Generator().manual_seed(3)))
    with pytest.raises(SmisbenchError, match="distinct pairs"):
        DiversitySettings(n=4, m=7)


def test_default_protocol_is_the_papers_image_masking():
    from smisbench.metrics.protocol import EvalProtocol

    assert DiversitySettings().mask_mode == MaskMode.IMAGE and EvalProtocol().mask_mode == "image"


def test_only_class_region_changes_gives_zero_mocd_under_the_default_protocol(lpips_random):
    """A model that provably changes no pixel outside class c: mOCD exactly 0 (lpips_map gave 47 % of mCSD)."""
    result = _score(ToyPerClassModel(), lpips_random, block_label())
    assert result.sampling == "per_class" and result.mask_mode == "image"
    assert result.mocd < 1e-6  # exact up to float rounding that differs with a batch's composition
    assert result.mcsd > 1e-3
    assert all(v > 0 for v in result.per_class_csd.values())


def test_only_class_region_changes_with_lpips_map_masking(lpips_random):
    """The map variant: large inside, small outside (LPIPS's receptive field crosses the class border)."""
    result = _score(ToyPerClassModel(), lpips_random, block_label(), mask_mode="lpips_map")
    assert result.mcsd > 1e-3
    assert 0 <= result.mocd < 0.5 * result.mcsd


def test_whole_image_changes_gives_both_positive(lpips_random):
    for mode in ("lpips_map", "image"):
        result = _score(ToyGlobalModel(), lpips_random, block_label(), mask_mode=mode)
        assert result.sampling == "global" and result.notes == [NOTE_GLOBAL]
        assert result.mcsd > 1e-3 and result.mocd > 1e-3


def test_global_code_model_scores_mocd_above_mcsd_by_default(lpips_random):
    """Area-weighted L_c (the paper's scale): with 8 classes mOCD is several times mCSD (Table 1: 6-7,
    near C-1 = 7; thin toy bands add mask-edge distance, so less here); the map variant gives mCSD ~ mOCD."""
    result = _score(ToyGlobalModel(), lpips_random, block_label())
    assert result.mocd > 1.5 * result.mcsd
    mapped = _score(ToyGlobalModel(), lpips_random, block_label(), mask_mode="lpips_map")
    assert mapped.mocd == pytest.approx(mapped.mcsd, rel=0.2)


class _HalfSizeModel(ToyPerClassModel):
    """Generates at half the label map's size, so the masks are resized (nearest) to score it."""

    def _net(self, semantics, z):
        return F.avg_pool2d(super()._net(semantics, z), 2)


@pytest.mark.parametrize("mode", ["image", "lpips_map"])
def test_class_that_vanishes_at_the_scoring_size_is_skipped_with_a_note(lpips_random, mode):
    label = block_label(classes=(0, 1, 2, 3))
    label[1, 1] = 5  # one pixel on an odd row and column: nearest resize to 32x32 keeps only even ones
    result = _score(_HalfSizeModel(), lpips_random, label, mask_mode=mode)
    assert math.isfinite(result.mcsd) and math.isfinite(result.mocd)
    assert sorted(result.per_class_csd) == [0, 1, 2, 3] and 5 not in result.per_class_ocd
    assert any("class 5 vanishes at the scoring size 32x32" in note for note in result.notes)


def test_class_that_fills_the_image_has_no_other_class_distance(lpips_random):
    scorer = SMISDiversity(ToyPerClassModel(), lpips_random, DiversitySettings(**SMALL))
    scorer.add_label_map(torch.full((64, 64), 2, dtype=torch.long))
    scorer.add_label_map(block_label(classes=(1, 2)))
    result = scorer.result()
    assert math.isfinite(result.mcsd) and math.isfinite(result.mocd)
    assert any(note.startswith("class 2 fills the whole image in 1 label map(s)") for note in result.notes)


def test_deterministic_model_has_no_diversity(lpips_random):
    result = _score(ToyDeterministicModel(), lpips_random, block_label())
    assert (result.mcsd, result.mocd, result.images_generated) == (0.0, 0.0, 0)
    assert result.notes == [NOTE_NONE]
    scorer = LPIPSDiversity(ToyDeterministicModel(), lpips_random, DiversitySettings(**SMALL))
    assert scorer.add_label_map(block_label()) == 0.0 and scorer.notes == [NOTE_NONE]


def test_absent_classes_are_skipped(lpips_random):
    model = ToyPerClassModel()
    label = block_label(classes=(0, 1, 2, 3, 4, 6, 7))  # no class 5
    result = _score(model, lpips_random, label)
    assert sorted(result.per_class_csd) == [0, 1, 2, 3, 4, 6, 7]
    assert 5 not in model.redrawn and sorted(set(model.redrawn)) == [0, 1, 2, 3, 4, 6, 7]


def test_each_set_is_generated_in_few_batches_of_its_own(lpips_random):
    model = ToyPerClassModel()
    result = _score(model, lpips_random, block_label(), n=40, m=12, batch_size=8)
    assert result.images_generated <= 8 * 24  # at most 2m distinct images per class
    sizes: dict[int, list[int]] = {}  # class redrawn in a batch -> its batches' sizes
    for z in model.batches:
        varying = (model.class_view(z) != model.class_view(z)[:1]).flatten(2).any(2).any(0).nonzero().flatten()
        assert varying.numel() == 1  # one set per batch: only that set's class differs between items
        sizes.setdefault(int(varying), []).append(z.shape[0])
    assert sorted(sizes) == list(range(8)) and sum(map(sum, sizes.values())) == result.images_generated
    # each set in the fewest batches of at most 8, of near-equal sizes
    assert all(len(b) == math.ceil(sum(b) / 8) and max(b) - min(b) <= 1 for b in sizes.values())
    assert model.calls == result.generator_calls == sum(map(len, sizes.values())) > math.ceil(result.images_generated / 8)


def test_lazy_generation_equals_generating_all_n(lpips_random):
    lazy = _score(ToyPerClassModel(), lpips_random, block_label(), n=12, m=5)
    full = _score(ToyPerClassModel(), lpips_random, block_label(), n=12, m=5, generate_all=True)
    assert full.images_generated == 12 * 8 > lazy.images_generated
    assert lazy.mcsd == pytest.approx(full.mcsd, abs=1e-6) and lazy.mocd == pytest.approx(full.mocd, abs=1e-6)


def test_seed_decides_the_numbers(lpips_random):
    first = _score(ToyPerClassModel(), lpips_random, block_label(), seed=1)
    again = _score(ToyPerClassModel(), lpips_random, block_label(), seed=1)
    other = _score(ToyPerClassModel(), lpips_random, block_label(), seed=2)
    assert (first.mcsd, first.mocd) == (again.mcsd, again.mocd)
    assert first.mcsd != other.mcsd


def test_classes_average_over_label_maps(lpips_random):
    scorer = SMISDiversity(ToyPerClassModel(), lpips_random, DiversitySettings(**SMALL, mask_mode="image"))
    one = scorer.add_label_map(block_label(classes=(0, 1)))
    two = scorer.add_label_map(block_label(classes=(1, 2)))
    result = scorer.result()
    assert result.label_maps == 2
    assert result.per_class_csd[1] == pytest.approx((one[1][0] + two[1][0]) / 2)
    assert result.mcsd == pytest.approx(sum(result.per_class_csd.values()) / 3)


def test_overall_lpips_diversity(lpips_random):
    scorer = LPIPSDiversity(ToyPerClassModel(), lpips_random, DiversitySettings(**SMALL))
    assert scorer.add_label_map(block_label()) > 1e-3
    assert scorer.result() > 1e-3


@pytest.mark.weights
def test_known_answers_with_the_provisioned_alexnet(lpips_alex):
    local = _score(ToyPerClassModel(), lpips_alex, block_label())
    assert local.mocd < 1e-6 and local.mcsd > 1e-3
    mapped = _score(ToyPerClassModel(), lpips_alex, block_label(), mask_mode="lpips_map")
    assert mapped.mocd < 0.5 * mapped.mcsd
    whole = _score(ToyGlobalModel(), lpips_alex, block_label(128, 128))
    assert whole.mocd > 2 * whole.mcsd > 1e-3
    whole_map = _score(ToyGlobalModel(), lpips_alex, block_label(128, 128), mask_mode="lpips_map")
    assert whole_map.mocd == pytest.approx(whole_map.mcsd, rel=0.1)
