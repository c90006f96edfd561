"""The evaluation entry point: metric registry, one pass over the dataset, typed result, FID cache reuse."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import Dataset

from conftest_weights import (  # noqa: F401  (fixtures)
    TOY_DATASET,
    ToyGlobalModel,
    ToyPerClassModel,
    block_label,
    lpips_random,
    random_inception_path,
)
from smisbench.errors import UnknownNameError
from smisbench.metrics.evaluate import EvaluationResult, evaluate
from smisbench.metrics.protocol import EvalProtocol
from smisbench.metrics.base import Metric
from smisbench.metrics.registry import metric_names, register_metric
from smisbench.metrics.smis_diversity import NOTE_GLOBAL


class _Maps(Dataset):
    """Label maps with band layouts and real-looking images; counts every read."""

    root, split = "/toy/root", "val"

    def __init__(self, count: int = 5):
        self.count = count
        self.reads: list[int] = []

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> dict:
        self.reads.append(index)
        classes = tuple(c for c in range(8) if c != index % 8)
        generator = torch.Generator().manual_seed(index)
        return {"label": block_label(classes=classes), "image": torch.rand(3, 64, 64, generator=generator) * 2 - 1,
                "name": f"map{index}"}


SMALL = EvalProtocol(n=4, m=3, diversity_maps=2, batch_size=2, fps_warmup=1, fps_repeats=2)


class _Recorder(Metric):
    """A segmenter-style metric: sees every generated image once, with its label map."""

    name = "recorder"
    uses_generated = True
    seen: list[tuple[int, tuple, float, float]] = []
    images: list[torch.Tensor] = []

    def __init__(self, ctx):
        type(self).seen, type(self).images = [], []

    def items_needed(self, ctx):
        return None

    def on_batch(self, ctx, batch, start, generated):
        assert generated.shape[0] == batch["label"].shape[0]
        type(self).seen.append((start, tuple(generated.shape), float(generated.min()), float(generated.max())))
        type(self).images.append(generated.clone())

    def finish(self, ctx):
        return {"recorded": float(sum(s[1][0] for s in self.seen))}


register_metric("recorder", _Recorder, replace=True)


def test_registry_lists_builtin_metrics_and_refuses_unknown_names():
    assert {"fid", "lpips_diversity", "mcsd_mocd", "params", "fps", "miou", "accuracy"} <= set(metric_names())
    with pytest.raises(UnknownNameError, match="inception_score") as err:
        evaluate(ToyPerClassModel(), _Maps(), TOY_DATASET, ["inception_score"], SMALL, progress=False)
    assert "mcsd_mocd" in str(err.value)  # the message lists the known names
    with pytest.raises(ValueError, match="twice"):
        register_metric("fid", _Recorder)


def test_each_metric_stores_the_keys_its_registration_declares(lpips_random):
    """A metric's name and value keys are written once, at registration; the catalog (specs, resuming,
    reports) reads them from there, every built-in key has a judged [values.KEY] in metrics.toml, and the
    built-in implementations store exactly the declared keys."""
    from smisbench.benchmark.catalog import catalog
    from smisbench.metrics.registry import metric_entry

    assert set(catalog().metrics) == set(metric_names())
    assert catalog().metrics["mcsd_mocd"].produces == ("mcsd", "mocd") == metric_entry("mcsd_mocd").produces
    builtin = [n for n in metric_names() if metric_entry(n).factory.__module__.startswith("smisbench.")]
    assert {"fid", "kid", "mcsd_mocd", "miou", "accuracy", "locality", "fps", "params"} <= set(builtin)
    for name in builtin:
        entry = metric_entry(name)
        assert entry.produces and entry.description, name
        assert all(key in catalog().values for key in entry.produces), name
    for name in ("mcsd_mocd", "lpips_diversity", "params", "fps"):  # fid, miou, accuracy: see their slow tests
        result = evaluate(ToyPerClassModel(), _Maps(2), TOY_DATASET, [name], SMALL,
                          networks={"lpips": lpips_random}, progress=False)
        assert set(result.values) == set(catalog().metrics[name].produces), name


def test_a_registered_plugin_metric_is_listed_by_specs_and_the_cli(capsys):
    """A metric registered outside the suite is usable in a spec at once, with the keys it declares."""
    from smisbench.benchmark.catalog import catalog
    from smisbench.benchmark.spec import parse_spec
    from smisbench.cli import main
    from smisbench.metrics.registry import METRICS

    register_metric("plugin_sharpness", _Recorder, produces=("sharpness",), description="a plug-in's metric")
    try:
        assert catalog().produces(["plugin_sharpness", "params"]) == ["sharpness", "params"]
        assert catalog().value("sharpness").direction == "equal"  # no [values.sharpness]: informational
        spec = parse_spec('name = "t"\nmetrics = ["plugin_sharpness", "params"]\n[[datasets]]\nname = "synthetic"\n'
                          '[[models]]\nname = "groupdnet"\n')
        assert spec.metrics == ("plugin_sharpness", "params")
        assert main(["metrics"]) == 0
        out = capsys.readouterr().out
        assert "plugin_sharpness" in out and "sharpness" in out and "mcsd_mocd" in out
    finally:
        METRICS.unregister("plugin_sharpness")
    assert "plugin_sharpness" not in catalog().metrics


def test_one_pass_computes_all_requested_metrics(lpips_random):
    dataset = _Maps()
    result = evaluate(ToyPerClassModel(), dataset, TOY_DATASET,
                      ["mcsd_mocd", "lpips_diversity", "params", "fps", "recorder"], SMALL,
                      networks={"lpips": lpips_random}, progress=False)
    assert isinstance(result, EvaluationResult)
    assert set(result.values) == {"mcsd", "mocd", "lpips", "params", "fps", "fps_fast", "recorded"}
    assert result.values["mcsd"] > result.values["mocd"] >= 0 and result.values["lpips"] > 0
    assert result.values["params"] == sum(p.numel() for p in ToyPerClassModel().painter.parameters())
    # every label map read once for the pass (FPS reads item 0 once more for its input)
    assert sorted(dataset.reads[:5]) == [0, 1, 2, 3, 4] and dataset.reads[5:] == [0]
    assert [s[0] for s in _Recorder.seen] == [0, 2, 4] and result.values["recorded"] == 5
    assert all(-1 <= lo and hi <= 1 for _, _, lo, hi in _Recorder.seen)
    assert result.details["mcsd_mocd"]["label_maps"] == 2
    assert result.protocol["n"] == 4 and result.protocol["m"] == 3 and result.protocol["device"] == "cpu"
    assert result.provenance["model"] == "toy-per-class" and result.provenance["threads"] == torch.get_num_threads()
    assert result.to_dict()["values"] == result.values


def test_generated_images_do_not_depend_on_batch_size():
    evaluate(ToyPerClassModel(), _Maps(4), TOY_DATASET, ["recorder"], SMALL.replace(batch_size=1), progress=False)
    one_by_one = torch.cat(_Recorder.images)
    evaluate(ToyPerClassModel(), _Maps(4), TOY_DATASET, ["recorder"], SMALL.replace(batch_size=4), progress=False)
    together = torch.cat(_Recorder.images)
    assert one_by_one.shape == together.shape == (4, 3, 64, 64)
    assert torch.allclose(one_by_one, together, atol=1e-6)
    assert float((together[0] - together[1]).abs().max()) > 0.01  # each map got its own code


def test_global_model_is_reported_as_global_resampling(lpips_random):
    result = evaluate(ToyGlobalModel(), _Maps(2), TOY_DATASET, ["mcsd_mocd"], SMALL,
                      networks={"lpips": lpips_random}, progress=False)
    assert f"mcsd_mocd: {NOTE_GLOBAL}" in result.notes
    assert result.details["mcsd_mocd"]["sampling"] == "global"


@pytest.mark.slow  # two 2048x2048 eigen-decompositions (torch-fidelity's FID), random Inception weights
def test_fid_reuses_cached_real_statistics(random_inception_path, tmp_path):
    from smisbench.metrics.fid import load_inception

    networks = {"inception": load_inception(weights_path=random_inception_path)}
    protocol = SMALL.replace(fid_samples=4)
    first = evaluate(ToyPerClassModel(), _Maps(4), TOY_DATASET, ["fid"], protocol, networks=networks,
                     stats_cache_dir=tmp_path, progress=False)
    second = evaluate(ToyPerClassModel(), _Maps(4), TOY_DATASET, ["fid"], protocol, networks=networks,
                      stats_cache_dir=tmp_path, progress=False)
    assert first.details["fid"]["real_stats_cached"] is False and second.details["fid"]["real_stats_cached"] is True
    assert set(first.values) == {"fid"}
    assert second.values["fid"] == pytest.approx(first.values["fid"], rel=1e-6)
    resized = evaluate(ToyPerClassModel(), _Maps(4), TOY_DATASET, ["fid"], protocol.replace(image_size=(48, 48)),
                       networks=networks, stats_cache_dir=tmp_path, progress=False)
    assert resized.details["fid"]["real_stats_cached"] is False
    assert len(list(tmp_path.glob("*.npz"))) == 2
