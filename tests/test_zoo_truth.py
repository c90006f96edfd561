"""The known truth: the synthetic data's renderer as a model, the one-class restyling, and redraw locality (pixels,
no LPIPS), which ranks per-class models above global ones exactly as mCSD/mOCD do."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest_weights import ToyGlobalModel, ToyPerClassModel, lpips_random  # noqa: F401  (fixture)
from smisbench.data.synthetic import SyntheticSMIS, redraw_class_style
from smisbench.errors import SmisbenchError
from smisbench.metrics.locality import RedrawLocality
from smisbench.metrics.smis_diversity import DiversitySettings, SMISDiversity
from smisbench.zoo.truth import GlobalTruth, SyntheticTruth, codes_from_styles, styles_from_codes

DATA = SyntheticSMIS("test", length=6)
SETTINGS = DiversitySettings(n=6, m=4)


def test_truth_model_renders_the_real_image_exactly_from_its_style_codes():
    truth = SyntheticTruth()
    for index in range(3):
        item = DATA[index]
        z = codes_from_styles(DATA.style(index)).reshape(1, -1)
        image = truth.generate(truth.semantics(item["label"][None]), z)
        assert torch.equal(image[0], item["image"])
    z = torch.randn(4, 6, 9)
    styles = styles_from_codes(z)
    assert np.allclose(codes_from_styles(styles).numpy(), z.numpy(), atol=1e-4)


def test_restyling_one_class_changes_only_that_class_and_stays_in_its_range():
    rng = np.random.default_rng(0)
    for index in range(4):
        label, image = DATA.arrays(index)
        for c in np.unique(label):
            other = DATA.restyled(index, int(c), rng)
            changed = (other != image).any(-1)
            assert not changed[label != c].any()
            assert changed[label == c].any()
    style = redraw_class_style(DATA.style(0), 2, rng)
    assert np.array_equal(np.delete(style, 2, 0), np.delete(DATA.style(0), 2, 0))
    with pytest.raises(SmisbenchError):
        redraw_class_style(DATA.style(0), 9, rng)


def _locality(model, labels) -> float:
    scorer = RedrawLocality(model, SETTINGS)
    for i, label in enumerate(labels):
        scorer.add_label_map(label, map_index=i)
    return scorer.result()[0]


def _mcsd_mocd(model, lpips, labels) -> tuple[float, float]:
    scorer = SMISDiversity(model, lpips, SETTINGS)
    for i, label in enumerate(labels):
        scorer.add_label_map(label, map_index=i)
    result = scorer.result()
    return result.mcsd, result.mocd


def test_the_data_itself_has_locality_one_and_zero_other_class_diversity(lpips_random):
    labels = [DATA[i]["label"] for i in range(3)]
    assert _locality(SyntheticTruth(), labels) == pytest.approx(1.0)
    mcsd, mocd = _mcsd_mocd(SyntheticTruth(), lpips_random, labels)
    assert mcsd > 0 and mocd == 0.0


def test_locality_ranks_per_class_above_global_as_mcsd_mocd_do(lpips_random):
    """Two pairs of toys (the synthetic renderer; the conftest painters): the pixel-space check and the LPIPS
    metrics must agree on which of each pair has per-class control."""
    from conftest_weights import block_label

    for per_class, global_, labels in ((SyntheticTruth(), GlobalTruth(), [DATA[i]["label"] for i in range(3)]),
                                       (ToyPerClassModel(), ToyGlobalModel(), [block_label()])):
        loc_p, loc_g = _locality(per_class, labels), _locality(global_, labels)
        (csd_p, ocd_p), (csd_g, ocd_g) = _mcsd_mocd(per_class, lpips_random, labels), \
            _mcsd_mocd(global_, lpips_random, labels)
        assert loc_p > loc_g
        assert ocd_p / csd_p < ocd_g / csd_g
        assert loc_p == pytest.approx(1.0)


def test_locality_is_undefined_for_a_model_that_never_changes():
    from smisbench.metrics.locality import LocalityMetric  # noqa: F401  (registered name)
    from smisbench.metrics.registry import metric_names

    assert "locality" in metric_names()
    frozen = SyntheticTruth()
    frozen.generate = lambda semantics, z: torch.zeros(semantics.shape[0], 3, *semantics.shape[2:])
    assert np.isnan(_locality(frozen, [DATA[0]["label"]]))
