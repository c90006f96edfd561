"""The mmsegmentation backend: shipped UperNet R101 config, safe checkpoint loading, scoring equal to IoUMetric.

Skips with the reason when mmseg is not importable (install: see mmseg_backend.INSTALL_HINT).
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from PIL import Image

from smisbench.segmenters.confusion import ConfusionMatrix
from smisbench.segmenters.label_conventions import get_label_convention
from smisbench.segmenters.mmseg_backend import mmseg_available

AVAILABLE, REASON = mmseg_available()
pytestmark = pytest.mark.skipif(not AVAILABLE, reason=f"mmsegmentation backend not importable: {REASON}")

NAME = "mmseg_upernet_r101_ade20k"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """UperNet R101 built from mmseg's shipped ADE20K config, random weights, saved as mmengine does
    (``meta`` with numpy objects + ``state_dict``)."""
    from smisbench.segmenters.registry import build_network, get_spec
    from smisbench.segmenters.testing import randomize_

    network = randomize_(build_network(NAME), seed=7)
    path = tmp_path_factory.mktemp("mmseg") / "upernet_r101_random.pth"
    meta = {"seed": np.int64(7), "dataset_meta": {"classes": get_spec(NAME).classes,
                                                  "palette": np.zeros((150, 3), dtype=np.uint8)}}
    torch.save({"meta": meta, "state_dict": network.state_dict()}, path)
    return network, path


@pytest.fixture(scope="module")
def segmenter(checkpoint):
    from smisbench.segmenters.registry import load_segmenter

    with pytest.warns(UserWarning, match="not in the table"):
        return load_segmenter(NAME, [str(checkpoint[1])])


def test_shipped_config_builds_upernet_r101():
    from smisbench.segmenters.mmseg_backend import shipped_config
    from smisbench.segmenters.registry import get_spec

    spec = get_spec(NAME)
    assert shipped_config(spec.extra["config"]).is_file()
    network = spec.build()
    assert type(network).__name__ == "EncoderDecoder"
    assert network.backbone.depth == 101 and type(network.decode_head).__name__ == "UPerHead"
    assert network.decode_head.num_classes == 150


def test_numpy_metadata_loads_without_disabling_safe_loading(checkpoint, segmenter):
    network, path = checkpoint
    before = list(torch.serialization.get_safe_globals())
    with pytest.raises(Exception, match="(?s)Weights only load failed"):
        torch.load(path, weights_only=True)  # what mmengine's plain loader would hit under torch >= 2.6
    ours = segmenter.network.state_dict()
    for key, value in network.state_dict().items():
        assert torch.equal(ours[key], value), key
    assert list(torch.serialization.get_safe_globals()) == before
    with pytest.raises(Exception, match="(?s)Weights only load failed"):
        torch.load(path, weights_only=True)  # still refused after our scoped load


def test_prediction_scored_identically_by_our_matrix_and_mmseg_iou_metric(segmenter, samples):
    from mmseg.evaluation import IoUMetric

    root = samples / "ade20k_sceneparsing" / "sampleData"
    image = Image.open(root / "images" / "ADE_val_00000001.jpg").convert("RGB").resize((256, 256), Image.BICUBIC)
    annotation = np.asarray(Image.open(root / "annotations" / "ADE_val_00000001.png").resize((256, 256), Image.NEAREST))
    gt = get_label_convention("ade20k_sceneparsing").convert(annotation)
    prediction = segmenter.predict(image)
    assert prediction.shape == (256, 256)

    rng = torch.Generator().manual_seed(3)
    noisy = torch.where(torch.rand(gt.shape, generator=rng) < 0.5, gt.clamp(max=149),
                        torch.randint(0, 150, gt.shape, generator=rng))
    pairs = [(prediction, gt), (noisy, gt)]

    ours = ConfusionMatrix(150, 255)
    metric = IoUMetric(iou_metrics=["mIoU"], ignore_index=255)
    metric.dataset_meta = {"classes": segmenter.classes}
    for pred, label in pairs:
        ours.update(pred, label)
        metric.process({}, [{"pred_sem_seg": {"data": pred[None]}, "gt_sem_seg": {"data": label[None]}}])
    intersect, union, pred_area, label_area = (sum(r[i] for r in metric.results) for i in range(4))
    m = ours.matrix.numpy()
    assert np.array_equal(np.diag(m), intersect.numpy())
    assert np.array_equal(m.sum(0), pred_area.numpy()) and np.array_equal(m.sum(1), label_area.numpy())
    with np.errstate(invalid="ignore"):  # classes absent from both: IoU 0/0 = nan, as in our nan-mean
        per_class = IoUMetric.total_area_to_metrics(intersect, union, pred_area, label_area, ["mIoU"])
    np.testing.assert_allclose(ours.per_class_iou(), per_class["IoU"], equal_nan=True)
    with np.errstate(invalid="ignore"):
        summary = metric.compute_metrics(metric.results)  # percentages rounded to 2 decimals
    # IoUMetric reports float32 percentages rounded to 2 decimals
    assert float(summary["mIoU"]) == pytest.approx(ours.mean_iou("nanmean") * 100, abs=0.005 + 1e-5)
    assert float(summary["aAcc"]) == pytest.approx(ours.pixel_accuracy() * 100, abs=0.005 + 1e-5)


def test_mmcv_lite_standin_only_where_compiled_ops_are_missing():
    from smisbench.segmenters.mmseg_compat import STANDIN_FLAG, compiled_mmcv_ops_available

    ops = sys.modules["mmcv.ops"]
    if compiled_mmcv_ops_available():
        assert not getattr(ops, STANDIN_FLAG, False)
        return
    assert getattr(ops, STANDIN_FLAG)
    with pytest.raises(ModuleNotFoundError):  # mmseg's guarded imports see what a CPU-only mmcv gives
        from mmcv.ops import CrissCrossAttention  # noqa: F401
    features = torch.arange(16.0).view(1, 1, 4, 4)
    points = torch.tensor([[[0.125, 0.125], [0.875, 0.625]]])  # relative (x, y) of two pixel centres
    sampled = ops.point_sample(features, points, align_corners=False)
    assert torch.allclose(sampled, torch.tensor([[[0.0, 11.0]]]))
