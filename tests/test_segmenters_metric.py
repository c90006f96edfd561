"""mIoU/accuracy as evaluation metrics, scored by the suite-trained synthetic segmenter."""

from __future__ import annotations

from pathlib import Path

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
    good = evaluate(Oracle(data), data, data.config, ["miou", "accuracy"], protocol, "cpu", segmenter_cache_dir=cache,
                    progress=False)
    bad = evaluate(Oracle(data, grey=True), data, data.config, ["miou"], protocol, "cpu", segmenter_cache_dir=cache,
                   progress=False)
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


def test_details_keep_the_one_confusion_matrix_for_the_per_class_table(scored):
    from smisbench.reports.tables import per_class_iou_markdown

    good, _, _ = scored
    stored = good.details["segmentation_confusion"]
    assert len(stored["classes"]) == stored["num_classes"] == len(good.details["segmentation_per_class"])
    table = per_class_iou_markdown(good.details)
    assert f"| {100 * good.values['miou']:.1f} |" in table.splitlines()[-3]  # the mIoU row: the metric's number


def test_missing_segmenter_is_a_clear_error():
    data = SyntheticSMIS("test", length=2)
    with pytest.raises(Exception, match="protocol.segmenter"):
        evaluate(Oracle(data), data, data.config, ["miou"], EvalProtocol(), "cpu", progress=False)


def _context(**changes):
    from smisbench.metrics.registry import EvalContext

    data = SyntheticSMIS("test", length=3)
    protocol = EvalProtocol(segmenter="synthetic-fcn", segmenter_train_steps=3)
    return data, EvalContext(Oracle(data), data, data.config, protocol, torch.device("cpu"), **changes)


def test_batches_without_names_are_scored(monkeypatch):
    """A batch with no ``name`` key used to raise IndexError at its second image."""
    from smisbench.imaging import to_uint8
    from smisbench.segmenters import metric

    data, ctx = _context()
    sources, scored = [], []

    class Convention:
        def convert(self, label, source):
            sources.append(source)
            return label

    ctx.shared["segmentation"] = {"segmenter": None, "protocol": None, "convention": Convention(), "seen": set(),
                                  "confusion": None}
    monkeypatch.setattr(metric, "score_pair", lambda segmenter, image, *rest: scored.append(image))
    batch = {"label": torch.stack([data[i]["label"] for i in range(3)])}
    generated = torch.stack([data[i]["image"] for i in range(3)])
    metric.SegmentationMetric(ctx).on_batch(ctx, batch, 6, generated)
    assert sources == ["item 6", "item 7", "item 8"]
    assert len(scored) == 3 and all(torch.equal(a, b) for a, b in zip(scored, to_uint8(generated)))
    metric.SegmentationMetric(ctx).on_batch(ctx, {**batch, "name": ["a", "b", "c"]}, 9, generated)
    assert sources[3:] == ["a", "b", "c"]


def test_suite_trained_segmenter_is_cached_under_xdg_cache_home(monkeypatch, tmp_path):
    from smisbench.segmenters import metric, synthetic_fcn

    seen = {}

    class Stop(Exception):
        pass

    def trained_checkpoint(cache, *args, **kwargs):
        seen["cache"] = Path(cache)
        raise Stop

    monkeypatch.setattr(synthetic_fcn, "trained_checkpoint", trained_checkpoint)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    with pytest.raises(Stop):
        metric._segmenter(_context()[1])
    assert seen["cache"] == tmp_path / "xdg" / "smisbench" / "segmenters"
    with pytest.raises(Stop):  # a FID statistics folder (the harness once passed a store's) does not move them
        metric._segmenter(_context(stats_cache_dir=tmp_path / "stats")[1])
    assert seen["cache"] == tmp_path / "xdg" / "smisbench" / "segmenters"
    with pytest.raises(Stop):  # their own folder does
        metric._segmenter(_context(segmenter_cache_dir=tmp_path / "own")[1])
    assert seen["cache"] == tmp_path / "own"
    monkeypatch.setenv("XDG_CACHE_HOME", "")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(Stop):
        metric._segmenter(_context()[1])
    assert seen["cache"] == tmp_path / "home" / ".cache" / "smisbench" / "segmenters"
