"""mCSD / mOCD / LPIPS diversity on constructed models whose answers are known.

The known answers do not depend on which LPIPS weights are used (identical images give exactly
0, different ones a positive distance), so most tests run on a random-weight LPIPS; one repeats
the key case with the provisioned AlexNet.
"""

from __future__ import annotations

import math

import pytest
import torch

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


def test_only_class_region_changes_gives_zero_mocd_with_image_masking(lpips_random):
    result = _score(ToyPerClassModel(), lpips_random, block_label(), mask_mode="image")
    assert result.sampling == "per_class"
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


def test_all_classes_of_a_map_share_few_forward_passes(lpips_random):
    model = ToyPerClassModel()
    result = _score(model, lpips_random, block_label(), n=10, m=4, batch_size=16)
    assert result.images_generated <= 8 * 8  # at most 2m distinct images per class
    assert model.calls == result.generator_calls == math.ceil(result.images_generated / 16)


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
    local = _score(ToyPerClassModel(), lpips_alex, block_label(), mask_mode="image")
    assert local.mocd < 1e-6 and local.mcsd > 1e-3
    mapped = _score(ToyPerClassModel(), lpips_alex, block_label(), mask_mode="lpips_map")
    assert mapped.mocd < 0.5 * mapped.mcsd
    whole = _score(ToyGlobalModel(), lpips_alex, block_label(), mask_mode="lpips_map")
    assert whole.mcsd > 1e-3 and whole.mocd > 1e-3
