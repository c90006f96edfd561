"""The sharding helpers: no-ops in one process; the split is a partition that keeps the one-process batches."""

from __future__ import annotations

import pytest
import torch

from smisbench.errors import SmisbenchError
from smisbench.metrics import sharding
from smisbench.metrics.sharding import World


def test_one_process_is_a_world_of_one(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert sharding.world() == World() and sharding.is_main() and sharding.owns(7)
    with sharding.joined("cpu") as world:
        assert world == World() and not world.distributed
    assert sharding.gather_objects({"a": 1}) == [{"a": 1}]
    assert sharding.broadcast_object(3) == 3
    assert sharding.merge_indexed({4: "d", 1: "a"}) == {1: "a", 4: "d"}
    assert list(sharding.merge_indexed({4: "d", 1: "a"})) == [1, 4]
    tensor = torch.arange(3)
    assert sharding.all_reduce_sum_(tensor) is tensor and tensor.tolist() == [0, 1, 2]
    assert sharding.all_max(2.5) == 2.5
    assert sharding.on_main(lambda: "done") == "done" and sharding.main_first(lambda: 5) == 5
    sharding.barrier()
    with pytest.raises(KeyError):
        sharding.on_main(lambda: {}["missing"])


def test_ranks_own_a_round_robin_partition():
    worlds = [World(rank, 3) for rank in range(3)]
    owners = [[w.rank for w in worlds if w.owns(i)] for i in range(10)]
    assert owners == [[i % 3] for i in range(10)]


def test_timeout_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(sharding.TIMEOUT_ENV, raising=False)
    assert sharding.timeout_s() == sharding.DEFAULT_TIMEOUT_S
    monkeypatch.setenv(sharding.TIMEOUT_ENV, "90")
    assert sharding.timeout_s() == 90.0
    monkeypatch.setenv(sharding.TIMEOUT_ENV, "soon")
    with pytest.raises(SmisbenchError, match="SMISBENCH_DIST_TIMEOUT_S"):
        sharding.timeout_s()


def _plans(metrics, visit: int, size: int, batch: int = 4):
    """Each rank's (start, size, owned) batches, from evaluate's own planner under a fake world."""
    import importlib
    import types

    from smisbench.metrics.protocol import EvalProtocol

    evaluate = importlib.import_module("smisbench.metrics.evaluate")  # the module (the package binds the function)

    ctx = types.SimpleNamespace(dataset=[None] * visit, protocol=EvalProtocol(batch_size=batch))
    plans = []
    for rank in range(size):
        original = sharding.world
        sharding.world = lambda rank=rank: World(rank, size)
        try:
            plans.append(evaluate._plan(ctx, metrics, visit))
        finally:
            sharding.world = original
    return plans


class _M:
    def __init__(self, needed, per_item=False, generated=True):
        self.needed, self.shards_items, self.uses_generated = needed, per_item, generated

    def items_needed(self, ctx):
        return self.needed


@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_the_shared_pass_keeps_one_process_batches_and_splits_them(size):
    plans = _plans([_M(None)], visit=18, size=size)
    owned = sorted(start for plan in plans for start, _, mine in plan if mine)
    assert owned == list(range(0, 18, 4))  # each batch exactly once, cut as in one process
    assert all(n == min(4, 18 - start) for plan in plans for start, n, _ in plan)
    assert all(mine for plan in plans for _, _, mine in plan)  # without per-item metrics a rank reads only its own


def test_per_item_metrics_make_a_rank_read_the_batches_holding_its_items():
    plans = _plans([_M(18), _M(6, per_item=True, generated=False)], visit=18, size=3)
    for rank, plan in enumerate(plans):
        read = {start for start, _, _ in plan}
        items = {i for i in range(6) if i % 3 == rank}
        assert all(any(start <= i < start + 4 for start in read) for i in items)
        owned = {start for start, _, mine in plan if mine}
        assert owned == {start for k, start in enumerate(range(0, 18, 4)) if k % 3 == rank}


def test_feature_bank_reads_blocks_in_item_order():
    from smisbench.metrics.fid import FeatureBank

    bank = FeatureBank(capacity=5)
    bank.add(torch.full((2, 2048), 2.0), start=2)
    bank.add(torch.full((2, 2048), 0.0), start=0)
    bank.add(torch.full((2, 2048), 4.0), start=4)  # only item 4 fits the capacity
    assert bank.count == 5 and bank.full
    assert bank.tensor()[:, 0].tolist() == [0.0, 0.0, 2.0, 2.0, 4.0]
    assert bank.gather() is bank and bank.tensor()[:, 0].tolist() == [0.0, 0.0, 2.0, 2.0, 4.0]
    sequential = FeatureBank()
    sequential.add(torch.zeros(1, 2048))
    sequential.add(torch.ones(1, 2048))
    assert sequential.tensor()[:, 0].tolist() == [0.0, 1.0]


def test_diversity_scorers_replay_gathered_maps_in_map_order(monkeypatch, lpips_random):
    """Maps scored out of order on "two ranks" give the one-process means once gathered."""
    from conftest_weights import ToyPerClassModel, block_label
    from smisbench.metrics.smis_diversity import DiversitySettings, LPIPSDiversity, SMISDiversity

    settings = DiversitySettings(n=3, m=2, batch_size=2)
    labels = [block_label(classes=tuple(c for c in range(8) if c != k)) for k in range(4)]
    for cls in (SMISDiversity, LPIPSDiversity):
        whole = cls(ToyPerClassModel(), lpips_random, settings)
        for k, label in enumerate(labels):
            whole.add_label_map(label, None, k)
        shares = [cls(ToyPerClassModel(), lpips_random, settings) for _ in range(2)]
        for k, label in enumerate(labels):
            shares[k % 2].add_label_map(label, None, k)
        held = [s.scores if cls is SMISDiversity else s for s in shares]  # where the per-map scores live
        parts = {"skipped": [dict(h._skipped) for h in held] if cls is SMISDiversity else None,
                 "counts": [(s.images_generated, s.generator_calls) for s in shares],
                 "merge": [h._per_map for h in held]}
        monkeypatch.setattr(sharding, "world", lambda: World(0, 2))
        monkeypatch.setattr(sharding, "gather_objects",
                            lambda obj: parts["skipped"] if isinstance(obj, dict) else parts["counts"])
        monkeypatch.setattr(sharding, "merge_indexed", lambda local: dict(sorted(
            (k, v) for part in parts["merge"] for k, v in part.items())))
        shares[0].gather()
        monkeypatch.undo()
        if cls is SMISDiversity:
            got, want = shares[0].result(), whole.result()
            assert (got.mcsd, got.mocd, got.per_class_csd, got.label_maps) == (
                want.mcsd, want.mocd, want.per_class_csd, want.label_maps)
            assert got.images_generated == want.images_generated and got.notes == want.notes
        else:
            assert shares[0].result() == whole.result() and shares[0].images_generated == whole.images_generated
