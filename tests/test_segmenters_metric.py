"""mIoU/accuracy as evaluation metrics, scored by the suite-trained synthetic segmenter."""

from __future__ import annotations

import pytest
import torch

from smisbench.data.synthetic import SyntheticSMIS
from smisbench.metrics.evaluate import evaluate
from smisbench.metrics.protocol import EvalProtocol
from smisbench.models.base import SMISModel


class Oracle(SMISModel):
    """Returns the real test image of the label map it is given (looked up by the label's bytes)."""

    def __init__(self, data: SyntheticSMIS, grey: bool = False):
        super().__init__(data.config)
        self.netG = torch.nn.Identity()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.images = {data[i]["label"].numpy().tobytes(): data[i]["image"] for i in range(len(data))}
        self.grey = grey

    def generate(self, semantics, z):
        labels = semantics.argmax(1)
        out = torch.stack([self.images[label.numpy().tobytes()] for label in labels])
        return torch.zeros_like(out) if self.grey else out


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    data = SyntheticSMIS("test", length=8)
    protocol = EvalProtocol(segmenter="synthetic-fcn", segmenter_train_steps=150, batch_size=4)
    cache = tmp_path_factory.mktemp("cache")
    good = evaluate(Oracle(data), data, data.config, ["miou", "accuracy"], protocol, "cpu", stats_cache_dir=cache, progress=False)
    bad = evaluate(Oracle(data, grey=True), data, data.config, ["miou"], protocol, "cpu", stats_cache_dir=cache, progress=False)
    return good, bad, cache


def test_real_images_score_high_and_grey_images_low(scored):
    good, bad, _ = scored
    assert good.values["accuracy"] > 0.8 and good.values["miou"] > 0.4
    assert bad.values["miou"] < good.values["miou"] - 0.2
    assert bad.values["accuracy"] < good.values["accuracy"]


def test_provenance_names_the_trained_segmenter_and_its_checksum(scored):
    good, _, cache = scored
    checkpoint = good.provenance["segmenter"]["checkpoint"]
    assert len(checkpoint["sha256"]) == 64 and checkpoint["file"].startswith(str(cache))
    assert good.provenance["scoring_protocol"]["segmenter"] == "synthetic-fcn"
    assert any("trained by the suite" in note for note in good.notes)


def test_missing_segmenter_is_a_clear_error():
    data = SyntheticSMIS("test", length=2)
    with pytest.raises(Exception, match="protocol.segmenter"):
        evaluate(Oracle(data), data, data.config, ["miou"], EvalProtocol(), "cpu", progress=False)
