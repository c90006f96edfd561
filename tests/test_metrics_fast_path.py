"""Evaluations generate with the model's exact inference copy, checked on the first batch, recorded in provenance."""

from __future__ import annotations

import pytest
import torch

from conftest_weights import TOY_DATASET, ToyPerClassModel, block_label  # noqa: F401
from smisbench.errors import SmisbenchError
from smisbench.metrics import fast_path
from smisbench.metrics.base import Metric
from smisbench.metrics.evaluate import evaluate
from smisbench.metrics.protocol import EvalProtocol
from smisbench.metrics.registry import register_metric
from smisbench.models.inference import FastCGNorm, inference_copy
from smisbench.models.registry import build_model

PROTOCOL = EvalProtocol(batch_size=2, fps_warmup=0, fps_repeats=1)


class _Probe(Metric):
    """Keeps the generated images and the network the evaluation generated with."""

    name = "fast_path_probe"
    uses_generated = True
    sharded = True
    last: "_Probe | None" = None

    def __init__(self, ctx):
        self.images: list[torch.Tensor] = []
        self.model = ctx.model
        type(self).last = self

    def items_needed(self, ctx):
        return None

    def on_batch(self, ctx, batch, start, generated):
        self.images.append(generated.clone())

    def finish(self, ctx):
        return {}


register_metric(_Probe.name, _Probe, replace=True)


class _Counted(torch.utils.data.Dataset):
    def __init__(self, inner):
        self.inner, self.reads = inner, []

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, index):
        self.reads.append(index)
        return self.inner[index]


def calibrated_groupdnet(size: int = 32, length: int = 5):
    """A random GroupDNet whose images are neither saturated nor flat, so a difference would show.

    At random initialisation the eval-mode BatchNorm statistics and the spectral norms do not
    normalise anything (activations reach 1e12, every pixel is +-1); a few training-mode passes
    without gradients settle both, and the last conv is scaled to keep tanh in its linear range.
    """
    from smisbench.data.registry import build_dataset

    torch.manual_seed(0)
    model = build_model("groupdnet", "synthetic")
    dataset = build_dataset("synthetic", None, "test", length=length, size=size)
    semantics = model.semantics(torch.stack([dataset[i]["label"] for i in range(length)]))
    z = model.sample_z(length, torch.Generator().manual_seed(0))
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.momentum = None  # the cumulative average of the passes below
            module.reset_running_stats()
    model.train()
    with torch.no_grad():
        for _ in range(5):
            model.generate(semantics, z)
    model.eval()
    model.netG.conv_img.register_forward_hook(lambda module, args, out: out * 100)  # deep-copied with the model
    return model, dataset


@pytest.fixture(scope="module")
def groupdnet():
    return calibrated_groupdnet()


def _images(model, dataset, protocol=PROTOCOL, metrics=("fast_path_probe",)):
    result = evaluate(model, dataset, dataset.config, list(metrics), protocol, progress=False)
    return result, _Probe.last


def test_groupdnet_generates_with_its_checked_inference_copy(groupdnet):
    model, dataset = groupdnet
    fast, probe = _images(model, dataset)
    assert fast.provenance["generator_path"] == fast_path.INFERENCE_COPY
    check = fast.provenance["fast_path"]
    assert check["checked_items"] == 2 and check["tolerance"] == 1e-4 and check["max_abs_diff"] <= 1e-4
    assert probe.model is not model and any(isinstance(m, FastCGNorm) for m in probe.model.modules())
    fast_images = torch.cat(probe.images)

    defined, probe = _images(model, dataset, PROTOCOL.replace(fast_path=False))
    assert defined.provenance["generator_path"] == fast_path.AS_DEFINED
    assert defined.provenance["fast_path"]["reason"] == "fast_path = false in the protocol"
    assert probe.model is model
    defined_images = torch.cat(probe.images)
    assert defined_images.shape[0] == len(dataset)
    assert defined_images.std() > 0.1 and (defined_images.abs() < 0.9).float().mean() > 0.9  # alive, unsaturated
    torch.testing.assert_close(fast_images, defined_images, atol=2e-5, rtol=1e-4)
    assert not defined.notes and not fast.notes


def test_a_copy_that_disagrees_falls_back_to_the_model_as_defined(groupdnet, monkeypatch):
    model, dataset = groupdnet

    def off_copy(net):
        copy = inference_copy(net)
        with torch.no_grad():
            copy.netG.conv_img.bias.add_(0.01)  # 100 x 0.01 before tanh: about 1e-1 off
        return copy

    monkeypatch.setattr(fast_path, "_copy", off_copy)
    result, probe = _images(model, dataset)
    assert result.provenance["generator_path"] == fast_path.AS_DEFINED and probe.model is model
    diff = result.provenance["fast_path"]["max_abs_diff"]
    assert diff > 1e-2
    (note,) = result.notes
    assert note.startswith("fast path not used: the inference copy's images differ") and "fast_path_tolerance" in note
    reference = _images(model, dataset, PROTOCOL.replace(fast_path=False))[1]
    assert torch.equal(torch.cat(probe.images), torch.cat(reference.images))
    # the tolerance is the protocol's: a loose one accepts the same copy
    loose, probe = _images(model, dataset, PROTOCOL.replace(fast_path_tolerance=1.0))
    assert loose.provenance["generator_path"] == fast_path.INFERENCE_COPY and probe.model is not model


def test_a_copy_that_cannot_be_made_falls_back_with_the_reason(groupdnet, monkeypatch):
    model, dataset = groupdnet

    def broken(net):
        raise TypeError("cannot fold this")

    monkeypatch.setattr(fast_path, "_copy", broken)
    result, probe = _images(model, dataset)
    assert result.provenance["generator_path"] == fast_path.AS_DEFINED and probe.model is model
    assert result.notes == ["fast path not used: the inference copy could not be made or run "
                            "(TypeError: cannot fold this)"]


def test_a_model_without_cg_norm_is_evaluated_as_defined_and_nothing_extra_is_read():
    from conftest_weights import TOY_DATASET

    class Maps(torch.utils.data.Dataset):
        def __len__(self):
            return 3

        def __getitem__(self, index):
            return {"label": block_label(), "image": torch.zeros(3, 64, 64)}

    dataset = _Counted(Maps())
    result = evaluate(ToyPerClassModel(), dataset, TOY_DATASET, ["fast_path_probe"], PROTOCOL, progress=False)
    assert result.provenance["generator_path"] == fast_path.AS_DEFINED
    assert result.provenance["fast_path"]["reason"].startswith("no inference copy for this model")
    assert dataset.reads == [0, 1, 2]


def test_params_alone_checks_nothing(groupdnet):
    model, dataset = groupdnet
    counted = _Counted(dataset)
    result = evaluate(model, counted, dataset.config, ["params"], PROTOCOL, progress=False)
    assert result.provenance["generator_path"] == fast_path.AS_DEFINED
    assert result.provenance["fast_path"]["reason"] == "no metric generates images" and counted.reads == []


def test_fps_reports_the_model_as_defined_and_the_fast_path(groupdnet):
    from smisbench.metrics.params import parameter_report

    model, dataset = groupdnet
    result = evaluate(model, dataset, dataset.config, ["fps", "params"], PROTOCOL, progress=False)
    assert result.values["fps"] > 0 and result.values["fps_fast"] > 0
    details = result.details["fps"]
    assert details["fast_path"] == fast_path.INFERENCE_COPY
    assert details["as_defined"]["fps"] == result.values["fps"] and details["fast"]["fps"] == result.values["fps_fast"]
    assert result.values["params"] == parameter_report(model).generator  # counted on the model as defined
    plain = evaluate(model, dataset, dataset.config, ["fps"], PROTOCOL.replace(fast_path=False), progress=False)
    assert plain.values["fps_fast"] == plain.values["fps"] and plain.details["fps"]["fast_path"] == "as-defined"


def test_half_precision_generators_are_checked_in_float32(groupdnet):
    import copy

    model, dataset = groupdnet
    half = copy.deepcopy(model).to(torch.bfloat16)
    semantics = half.semantics(torch.stack([dataset[i]["label"] for i in range(2)])).to(torch.bfloat16)
    z = half.sample_z(2, torch.Generator().manual_seed(0)).to(torch.bfloat16)
    choice = fast_path.choose(half, True, 1e-4, lambda net: (semantics.to(next(net.parameters()).dtype),
                                                             z.to(next(net.parameters()).dtype)), 2)
    assert choice.path == fast_path.INFERENCE_COPY and choice.max_abs_diff <= 1e-4
    assert next(choice.model.parameters()).dtype == torch.bfloat16 and choice.first_output is None


def test_a_model_run_with_autograd_can_still_be_copied():
    """Spectral norm leaves a non-leaf ``weight`` after a forward with gradients; the copy used to fail on it."""
    model = build_model("groupdnet", "synthetic").eval()
    label = block_label(64, 64, tuple(range(model.dataset.label_nc)))[None]
    model.generate(model.semantics(label), model.sample_z(1, torch.Generator().manual_seed(0)))  # grad mode on
    fast = inference_copy(model)
    assert any(isinstance(m, FastCGNorm) for m in fast.modules())


def test_the_protocol_takes_a_number_for_the_tolerance():
    assert EvalProtocol(fast_path_tolerance=1).fast_path_tolerance == 1
    assert EvalProtocol().fast_path is True and EvalProtocol().fast_path_tolerance == 1e-4
    with pytest.raises(SmisbenchError, match="fast_path_tolerance must be at least 0"):
        EvalProtocol(fast_path_tolerance=-1e-3)
    with pytest.raises(SmisbenchError, match="must be a number"):
        EvalProtocol(fast_path_tolerance="tight")
    with pytest.raises(SmisbenchError, match="must be a boolean"):
        EvalProtocol(fast_path=1)


def test_a_spec_sets_the_fast_path_fields():
    from smisbench.benchmark.cells import expand_cells
    from smisbench.benchmark.spec import SpecError, parse_spec

    text = ('name = "s"\nmetrics = ["fid"]\n[protocol]\nfast_path = false\nfast_path_tolerance = 0.5\n'
            '[[datasets]]\nname = "synthetic"\n[[models]]\nname = "groupdnet"\n')
    (cell,) = expand_cells(parse_spec(text))
    assert cell.protocol["fast_path"] is False and cell.protocol["fast_path_tolerance"] == 0.5
    with pytest.raises(SpecError, match="fast_path_tolerance"):
        parse_spec(text.replace("0.5", '"loose"'))


class _WholeCodeProbe(_Probe):
    """The probe as a metric that draws only whole codes (as FID, LPIPS diversity and FPS do)."""

    name = "fast_path_whole_code_probe"
    redraws_classes = False


register_metric(_WholeCodeProbe.name, _WholeCodeProbe, replace=True)


def _corrupt_shared_code_path(monkeypatch) -> list[int]:
    """Offsets what GroupDNet's shared-code path computes (only that path); the list grows each time it runs."""
    from smisbench.models import inference_shared

    original = inference_shared.block_split
    ran: list[int] = []

    def off_block_split(*args):
        ran.append(1)
        out = original(*args)
        return inference_shared.ChannelSplit(out.one, out.vary + 0.5, out.lo, out.hi)

    monkeypatch.setattr(inference_shared, "block_split", off_block_split)
    return ran


def test_a_copy_wrong_only_on_one_class_redraws_is_caught(groupdnet, monkeypatch):
    """The shared-code path (a batch of one map, one class redrawn) is checked too: corrupting it alone,
    which the first batch (distinct maps) never runs, makes the evaluation fall back."""
    model, dataset = groupdnet
    intact, _ = _images(model, dataset)
    assert intact.provenance["generator_path"] == fast_path.INFERENCE_COPY
    ran = _corrupt_shared_code_path(monkeypatch)
    result, probe = _images(model, dataset)
    assert ran  # only the redraw check reaches the shared path
    assert result.provenance["generator_path"] == fast_path.AS_DEFINED and probe.model is model
    assert result.provenance["fast_path"]["max_abs_diff"] > 1e-2
    assert "redraws" in intact.provenance["fast_path"]["reason"]


def test_no_redraw_check_when_no_metric_redraws_classes(groupdnet, monkeypatch):
    """Metrics that draw only whole codes never reach the shared-code path, so the check does not pay for
    a redraw pair there: the same corruption goes unseen, and is harmless, as nothing runs that path."""
    model, dataset = groupdnet
    ran = _corrupt_shared_code_path(monkeypatch)
    result, _ = _images(model, dataset, metrics=("fast_path_whole_code_probe",))
    probe = _WholeCodeProbe.last
    assert not ran
    assert result.provenance["generator_path"] == fast_path.INFERENCE_COPY and probe.model is not model
    assert "redraws" not in result.provenance["fast_path"]["reason"]
    mixed, _ = _images(model, dataset, metrics=("fast_path_whole_code_probe", "fast_path_probe"))
    assert ran and mixed.provenance["generator_path"] == fast_path.AS_DEFINED  # one redrawing metric: checked
