"""The real-data rows are measured by the metrics' own code: the segmenter on real images scores what a generator
that reproduces them exactly scores, the FID floor compares two disjoint halves, the data's diversity is the
known truth (mOCD 0, locality 1)."""

from __future__ import annotations

import pytest
import torch

from conftest_weights import lpips_random, random_inception_path  # noqa: F401  (fixtures)
from smisbench.data.synthetic import SyntheticSMIS
from smisbench.errors import SmisbenchError
from smisbench.metrics.evaluate import evaluate
from smisbench.metrics.protocol import EvalProtocol
from smisbench.zoo.ceiling import real_fid, real_segmentation, truth_diversity
from smisbench.zoo.truth import SyntheticTruth, codes_from_styles

DATA = SyntheticSMIS("test", length=8)


class ReplayTruth(SyntheticTruth):
    """The data's renderer whose i-th drawn code is item i's own style: it generates the real images exactly."""

    def __init__(self, dataset: SyntheticSMIS):
        super().__init__(dataset.config)
        self.data, self.next = dataset, 0

    def sample_z(self, batch, generator=None, device=None):
        codes = [codes_from_styles(self.data.style(self.next + i)).reshape(1, -1) for i in range(batch)]
        self.next += batch
        return torch.cat(codes)


@pytest.fixture(scope="module")
def segmenter(tmp_path_factory):
    from smisbench.segmenters.synthetic_fcn import train_synthetic_fcn

    path = tmp_path_factory.mktemp("seg") / "fcn.pt"
    train_synthetic_fcn(path, steps=3, batch_size=4, progress=False)
    return path


def test_segmenter_on_real_images_equals_a_generator_that_reproduces_them(segmenter):
    protocol = EvalProtocol(batch_size=4, segmenter="synthetic-fcn", segmenter_checkpoints=(str(segmenter),))
    values, provenance = real_segmentation(DATA, protocol)
    replay = ReplayTruth(DATA)
    generated = evaluate(replay, DATA, DATA.config, ["miou", "accuracy"], protocol, progress=False).values
    assert values == pytest.approx(generated, abs=0) and 0 < values["accuracy"] <= 1
    assert provenance["images"] == len(DATA)


def test_fid_floor_compares_two_disjoint_halves(random_inception_path):
    from smisbench.metrics.fid import extract_features, frechet_distance, load_inception, statistics, to_uint8

    inception = load_inception(weights_path=random_inception_path)
    protocol = EvalProtocol(batch_size=4, fid_samples=4, stats_cache=False)
    value, provenance = real_fid(DATA, protocol, networks={"inception": inception})
    halves = [torch.stack([DATA[i]["image"] for i in range(a, a + 4)]) for a in (0, 4)]
    stats = [statistics(extract_features(inception, to_uint8(h), 4)) for h in halves]
    assert value == pytest.approx(frechet_distance(*stats), rel=1e-6) and value > 0
    assert provenance["first_half"] == [0, 4] and provenance["second_half"] == [4, 8]
    with pytest.raises(SmisbenchError, match="needs 2 x 5 images"):
        real_fid(DATA, protocol.replace(fid_samples=5), networks={"inception": inception})


def test_the_data_diversity_is_the_known_truth(lpips_random):
    protocol = EvalProtocol(batch_size=8, n=4, m=3, diversity_maps=3)
    values, _ = truth_diversity(DATA, protocol, networks={"lpips": lpips_random})
    assert values["mcsd"] > 0 and values["lpips"] > 0
    assert values["mocd"] == pytest.approx(0.0, abs=1e-9) and values["locality"] == pytest.approx(1.0)
