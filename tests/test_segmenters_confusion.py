"""The dataset-level confusion matrix: accumulation, merging, both absent-class rules, the ADE20K known answer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from smisbench.errors import SmisbenchError
from smisbench.segmenters.confusion import ConfusionMatrix
from smisbench.segmenters.score_folder import score_prediction_folders


def _reference_scores(pred: np.ndarray, gt: np.ndarray, n: int, ignore: int):
    """Per-class IoU and pixel accuracy by direct counting, independent of the matrix code."""
    keep = gt != ignore
    pred, gt = pred[keep], gt[keep]
    ious = []
    for c in range(n):
        inter = np.sum((pred == c) & (gt == c))
        union = np.sum((pred == c) | (gt == c))
        ious.append(inter / union if union else math.nan)
    return np.array(ious), float(np.mean(pred == gt))


def _random_batches(seed: int, n_classes: int, count: int = 6):
    g = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(count):
        gt = torch.randint(0, n_classes, (2, 33, 47), generator=g)
        gt[torch.rand(gt.shape, generator=g) < 0.1] = 255
        pred = torch.where(torch.rand(gt.shape, generator=g) < 0.6, gt.clamp(max=n_classes - 1),
                           torch.randint(0, n_classes, gt.shape, generator=g))
        batches.append((pred, gt))
    return batches


def test_matrix_matches_direct_counting_and_is_int64():
    n = 7
    batches = _random_batches(0, n)
    cm = ConfusionMatrix(n, 255)
    for pred, gt in batches:
        cm.update(pred, gt)
    assert cm.matrix.dtype == torch.int64
    pred = torch.cat([p.flatten() for p, _ in batches]).numpy()
    gt = torch.cat([t.flatten() for _, t in batches]).numpy()
    ious, acc = _reference_scores(pred, gt, n, 255)
    np.testing.assert_allclose(cm.per_class_iou(), ious)
    assert cm.pixel_accuracy() == pytest.approx(acc)
    assert cm.total == int(np.sum(gt != 255))


def test_merging_shards_equals_a_single_pass():
    n = 5
    batches = _random_batches(1, n, count=9)
    single = ConfusionMatrix(n, 255)
    shards = [ConfusionMatrix(n, 255) for _ in range(3)]
    for i, (pred, gt) in enumerate(batches):
        single.update(pred, gt)
        shards[i % 3].update(pred, gt)
    # shards travel between processes as plain data
    merged = ConfusionMatrix.from_dict(shards[0].to_dict())
    merged.merge(ConfusionMatrix.from_dict(shards[1].to_dict())).merge(shards[2])
    assert torch.equal(merged.matrix, single.matrix)
    assert torch.equal((shards[0] + shards[1] + shards[2]).matrix, single.matrix)
    assert merged.mean_iou() == single.mean_iou()


def test_merge_refuses_a_different_protocol():
    with pytest.raises(SmisbenchError, match="cannot merge"):
        ConfusionMatrix(5, 255).merge(ConfusionMatrix(6, 255))


def test_absent_class_rules_differ_only_by_absent_classes():
    cm = ConfusionMatrix(4, 255)
    gt = torch.tensor([0, 0, 1, 1, 255, 255])
    pred = torch.tensor([0, 1, 1, 1, 3, 0])  # class 2 absent everywhere, class 3 only on ignored pixels
    cm.update(pred, gt)
    iou = cm.per_class_iou()
    assert iou[0] == pytest.approx(1 / 2) and iou[1] == pytest.approx(2 / 3)
    assert math.isnan(iou[2]) and math.isnan(iou[3])
    assert cm.mean_iou("nanmean") == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert cm.mean_iou("sceneparsing") == pytest.approx((1 / 2 + 2 / 3) / 4)
    assert cm.pixel_accuracy() == pytest.approx(3 / 4)


def test_per_class_table_is_a_dataframe_with_names():
    cm = ConfusionMatrix(3, 255)
    cm.update(torch.tensor([0, 1, 2, 2]), torch.tensor([0, 1, 1, 2]))
    table = cm.per_class_table(["a", "b", "c"])
    assert list(table["name"]) == ["a", "b", "c"]
    assert table["gt_pixels"].tolist() == [1, 2, 1]
    assert table["pred_pixels"].tolist() == [1, 1, 2]
    np.testing.assert_allclose(table["iou"], cm.per_class_iou())


KNOWN = [[5, 1, 0, 0],
         [2, 3, 0, 0],
         [0, 0, 0, 0],  # "sky": in neither ground truth nor predictions
         [0, 1, 0, 4]]


def test_per_class_iou_table_of_a_known_matrix():
    """IoU 5/8, 3/7, undefined, 4/5; accuracy 5/6, 3/5, undefined, 4/5; mIoU by each absent-class rule."""
    from smisbench.reports.tables import MISSING, per_class_iou_markdown

    cm = ConfusionMatrix(4, 255, torch.tensor(KNOWN))
    names = ["road", "car", "sky", "person|rider"]
    text = per_class_iou_markdown(cm, names)
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line][1:]
    cells = [[c.strip() for c in row.strip("|").split(" | ")] for row in rows]
    assert [c[:4] for c in cells[:4]] == [["0", "road", "62.5", "83.3"], ["1", "car", "42.9", "60.0"],
                                          ["2", "sky", MISSING, MISSING], ["3", "person\\|rider", "80.0", "80.0"]]
    assert [c[4:] for c in cells[:4]] == [["6", "7"], ["5", "5"], ["0", "0"], ["5", "4"]]
    assert cells[4][1:3] == ["**mIoU** (nanmean)", "61.8"] and cells[4][3].startswith("75.0")
    sceneparsing = per_class_iou_markdown(cm, names, rule="sceneparsing")
    assert "| | **mIoU** (sceneparsing) | 46.3 |" in sceneparsing  # the absent class counts 0


def test_per_class_iou_table_from_stored_details_is_the_same():
    from smisbench.reports.tables import per_class_iou_markdown

    cm = ConfusionMatrix(4, 255, torch.tensor(KNOWN))
    details = {"segmentation_confusion": {**cm.to_dict(), "classes": ["a", "b", "c", "d"],
                                          "absent_class_rule": "sceneparsing"}}
    assert per_class_iou_markdown(details) == per_class_iou_markdown(cm, ["a", "b", "c", "d"], "sceneparsing")
    with pytest.raises(SmisbenchError, match="no confusion matrix"):
        per_class_iou_markdown({"fid": {}})


def test_out_of_range_ids_are_refused_with_the_fix():
    cm = ConfusionMatrix(19, 255)
    with pytest.raises(SmisbenchError, match="label convention"):
        cm.update(torch.tensor([0, 1]), torch.tensor([0, 26]))  # a Cityscapes label id, not a train id
    with pytest.raises(SmisbenchError, match="outside"):
        cm.update(torch.tensor([0, 19]), torch.tensor([0, 1]))


def test_ade20k_sample_known_answer(samples):
    root = samples / "ade20k_sceneparsing" / "sampleData"
    for rule, expected in (("sceneparsing", 0.1000), ("nanmean", 1.0)):
        result = score_prediction_folders(root / "predictions", root / "annotations", "ade20k_sceneparsing", rule,
                                          progress=False)
        assert result.images == 3
        assert result.summary["pixel_accuracy"] == 1.0
        assert round(result.summary["mIoU"], 4) == expected


def _shard_worker(rank: int, world: int, store: str, n: int, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    cm = ConfusionMatrix(n, 255)
    for i, (pred, gt) in enumerate(_random_batches(2, n, count=8)):
        if i % world == rank:
            cm.update(pred, gt)
    cm.all_reduce()
    if rank == 0:
        torch.save(cm.matrix, out)
    dist.destroy_process_group()


@pytest.mark.distributed
def test_all_reduce_across_processes_equals_a_single_pass(tmp_path):
    import torch.multiprocessing as mp

    n = 6
    out = tmp_path / "matrix.pt"
    mp.spawn(_shard_worker, args=(2, str(tmp_path / "store"), n, str(out)), nprocs=2, join=True)
    single = ConfusionMatrix(n, 255)
    for pred, gt in _random_batches(2, n, count=8):
        single.update(pred, gt)
    assert torch.equal(torch.load(out, weights_only=True), single.matrix)
