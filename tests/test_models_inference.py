"""The inference copy gives the same images as the training-layout model, through its sparse CG-Norm path."""

from __future__ import annotations

import math

import pytest
import torch

from smisbench.models import winograd
from smisbench.models.inference import FastCGBlock, FastCGNorm, LabelAnalysis, inference_copy
from smisbench.models.layers import CGBlock, NormSpec
from smisbench.models.registry import build_model
from smisbench.models.winograd import WinogradConv2d


def lively_weights(model: torch.nn.Module) -> None:
    """Weights that keep activations O(1) through the network, so output differences are visible."""
    torch.manual_seed(0)
    for name, p in model.named_parameters():
        if p.dim() > 1:
            p.data.normal_(0, 1 / math.sqrt(p[0].numel()))
        else:
            p.data.normal_(0, 0.1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)


def blob_label(classes: int, size: tuple[int, int]) -> torch.Tensor:
    h, w = size
    label = torch.full((1, h, w), classes - 1, dtype=torch.long)
    label[:, h // 8 : 7 * h // 8, w // 4 : 3 * w // 4] = 0
    label[:, h // 6 : h // 2, w // 3 : 2 * w // 3] = 1 % classes
    label[:, h // 2 : 5 * h // 6, w // 5 : w // 2] = 2 % classes
    return label


@pytest.fixture(params=["direct", "winograd"])
def block_convs(request, monkeypatch) -> str:
    """Each copy test twice: every block conv direct, and every block conv through the Winograd conv (the
    synthetic models mostly have too few channels per group for it, so the bar is moved both ways)."""
    monkeypatch.setattr(winograd, "MIN_CHANNELS_PER_GROUP", 1 if request.param == "winograd" else 1 << 30)
    return request.param


def _check_block_convs(fast: torch.nn.Module, block_convs: str) -> None:
    swapped = [m for m in fast.modules() if isinstance(m, WinogradConv2d)]
    assert bool(swapped) == (block_convs == "winograd")


@pytest.mark.parametrize("name", ["groupdnet", "vspade", "spade"])
def test_inference_copy_matches_the_original(name, block_convs):
    model = build_model(name, "synthetic").eval()
    lively_weights(model)
    fast = inference_copy(model)
    _check_block_convs(fast, block_convs)
    assert any(isinstance(m, FastCGNorm) for m in fast.modules())
    assert not any(isinstance(m, CGBlock) for m in fast.modules())  # every block runs its tail in place
    assert any(isinstance(m, FastCGBlock) for m in fast.modules())
    assert not any(k.endswith("weight_orig") for k in fast.state_dict())
    generator = torch.Generator().manual_seed(1)
    for label in (blob_label(model.dataset.label_nc, model.dataset.size),
                  torch.randint(0, model.dataset.label_nc, (1, *model.dataset.size), generator=generator)):
        semantics = model.semantics(label)
        z = model.sample_z(2, generator)
        with torch.no_grad():
            expected = model.generate(semantics.expand(2, -1, -1, -1), z)
            got = fast.generate(semantics.expand(2, -1, -1, -1), z)
        assert expected.std() > 0.05  # not saturated or constant: the comparison means something
        torch.testing.assert_close(got, expected, atol=2e-5, rtol=1e-4)
    # the original keeps its checkpoint layout
    assert any(k.endswith("weight_orig") for k in model.state_dict())


def test_blob_labels_take_the_sparse_path():
    label = torch.nn.functional.one_hot(blob_label(6, (64, 64)), 6).permute(0, 3, 1, 2).float()
    info = LabelAnalysis().at(label, (64, 64))
    assert info["patterns"].shape[0] == 4
    assert 0 < info["fraction"] < FastCGNorm.dense_above
    # every interior pixel 3 or more away from a class change is not boundary
    assert info["fraction"] < 0.5


@pytest.mark.parametrize("norm_kind", ["batch", "instance", "group"])
@pytest.mark.parametrize("gamma_groups", [1, 2, 4])
def test_fast_cg_norm_equals_cg_norm_on_its_sparse_path(norm_kind, gamma_groups):
    """Folded BatchNorm (or the kept norm) plus the boundary table sum give CG-Norm's output."""
    from smisbench.models.layers import CGNorm, NormSpec

    torch.manual_seed(0)
    classes, channels = 4, 16
    norm = CGNorm(channels, NormSpec(label_in=classes, hidden=8 * classes, shared_groups=classes,
                                     gamma_groups=gamma_groups), norm_kind=norm_kind, norm_groups=gamma_groups)
    lively_weights(norm)
    norm.eval()
    label = torch.nn.functional.one_hot(blob_label(classes, (48, 40)), classes).permute(0, 3, 1, 2).float()
    label = torch.cat([label, label.flip(-1)])  # two different maps in one batch
    x = torch.randn(2, channels, 48, 40)
    fast = FastCGNorm(norm, LabelAnalysis()).eval()
    assert (fast.param_free_norm is None) == (norm_kind == "batch")
    info = fast.analysis.at(label, (48, 40))
    assert info["windows"].shape[0] <= FastCGNorm.dense_above * 2 * 48 * 40  # the sparse path is the one tested
    with torch.no_grad():
        expected = norm(x, label)
        got = fast(x, label)
    assert expected.std() > 0.1
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_boundary_bags_point_at_each_taps_window():
    """Bag row t of a boundary pixel is (window id at pixel + offset t) * 9 + t, off-image taps hit the zero window."""
    label = torch.nn.functional.one_hot(blob_label(3, (12, 12)), 3).permute(0, 3, 1, 2).float()
    info = LabelAnalysis().at(label, (12, 12))
    u = info["windows"].shape[0]
    corner = (info["boundary"] == 0).nonzero().item()  # pixel (0, 0) is on the image edge
    bag = info["window_bags"][corner]
    assert torch.equal(bag % 9, torch.arange(9))
    off_image = [0, 1, 2, 3, 6]  # taps above or left of (0, 0)
    assert torch.all(bag[off_image] // 9 == u)
    assert torch.all(bag[[4, 5, 7, 8]] // 9 < u)


def test_label_analysis_is_not_fooled_by_a_reused_buffer():
    """A new map in the memory of an earlier one (same pointer, version 0, as after a free and a new
    allocation) is analysed afresh, not served the earlier map's boundaries."""
    import numpy as np

    def one_hot(label):
        return torch.nn.functional.one_hot(label, 3).permute(0, 3, 1, 2).float().contiguous().numpy()

    memory = one_hot(blob_label(3, (16, 16)))
    analysis = LabelAnalysis()
    first_map = torch.from_numpy(memory)
    first = analysis.at(first_map, (16, 16))["inverse"].clone()
    np.copyto(memory, one_hot(blob_label(3, (16, 16)).flip(-1)))
    second_map = torch.from_numpy(memory)
    assert second_map.data_ptr() == first_map.data_ptr() and second_map._version == first_map._version
    second = analysis.at(second_map, (16, 16))["inverse"]
    assert torch.equal(second, LabelAnalysis().at(second_map, (16, 16))["inverse"])
    assert not torch.equal(first, second)


def test_inference_copy_refuses_training_mode():
    fast = inference_copy(build_model("groupdnet", "synthetic"))
    fast.train()
    semantics = fast.semantics(blob_label(fast.dataset.label_nc, fast.dataset.size))
    with pytest.raises(RuntimeError, match="eval mode only"):
        fast.generate(semantics, fast.sample_z(1, torch.Generator().manual_seed(0)))


def test_label_made_inside_inference_mode_is_analysed():
    """Cityscapes builds its CG-Norm input inside the forward: under inference_mode that is an inference
    tensor, which has no version counter."""
    with torch.inference_mode():
        label = torch.nn.functional.one_hot(blob_label(3, (16, 16)), 3).permute(0, 3, 1, 2).float()
        analysis = LabelAnalysis()
        info = analysis.at(label, (16, 16))
        assert analysis.at(label, (16, 16)) is info  # cached for the other norms of the same forward
        assert info["patterns"].shape[0] == 3


@pytest.mark.parametrize("name", ["groupdnet", "spade"])
def test_inference_copy_under_bfloat16_autocast(name):
    model = build_model(name, "synthetic").eval()
    lively_weights(model)
    fast = inference_copy(model)
    semantics = model.semantics(blob_label(model.dataset.label_nc, model.dataset.size))
    z = model.sample_z(1, torch.Generator().manual_seed(0))
    with torch.inference_mode():
        reference = model.generate(semantics, z)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = fast.generate(semantics, z)
    assert got.dtype in (torch.bfloat16, torch.float32)
    # bfloat16 keeps 8 bits of mantissa: agreement to a few percent of the output range
    assert (got.float() - reference).abs().mean() < 0.05 * reference.abs().max()


def test_identical_maps_in_a_batch_are_analysed_once_with_the_same_outputs(monkeypatch):
    """A batch of one map (how mCSD/mOCD generate) or with repeats gives bit-identical facts and images
    whether the repeats are analysed once or each time."""
    from smisbench.models import inference

    model = build_model("groupdnet", "synthetic").eval()
    lively_weights(model)
    fast = inference_copy(model)
    a = blob_label(model.dataset.label_nc, model.dataset.size)
    mixed = model.semantics(torch.cat([a, a.flip(-1), a, a]))
    repeated = model.semantics(a).expand(4, -1, -1, -1)
    firsts, owner = inference.distinct_maps(mixed)
    assert firsts == [0, 1] and owner.tolist() == [0, 1, 0, 0]
    assert inference.distinct_maps(repeated)[0] == [0]
    analysed: list[int] = []
    original = LabelAnalysis._analyse
    monkeypatch.setattr(LabelAnalysis, "_analyse", staticmethod(lambda label: (analysed.append(label.shape[0]),
                                                                                original(label))[1]))
    z = model.sample_z(4, torch.Generator().manual_seed(0))
    for make, distinct in ((mixed.clone, 2), (lambda: model.semantics(a).expand(4, -1, -1, -1), 1)):
        outputs, facts = [], []
        for dedupe in (False, True):
            monkeypatch.setattr(LabelAnalysis, "dedupe", dedupe)
            analysed.clear()
            semantics = make()  # a new tensor: the copy's analysis cache does not answer for it
            with torch.inference_mode():
                outputs.append(fast.generate(semantics, z))
            assert set(analysed) == {distinct if dedupe else 4}
            facts.append(LabelAnalysis().at(semantics, (16, 16)))
        assert torch.equal(outputs[0], outputs[1])
        assert facts[0].keys() == facts[1].keys()
        for key, value in facts[0].items():
            assert torch.equal(value, facts[1][key]) if torch.is_tensor(value) else value == facts[1][key], key


@pytest.mark.parametrize("fin,fout", [(16, 16), (16, 8)])
def test_fast_block_leaves_its_input_alone(fin, fout):
    """The in-place activation and sum must touch only tensors the block made: its input is the shortcut."""
    norm = NormSpec(label_in=3, hidden=8, shared_groups=1, gamma_groups=1)
    block = CGBlock(fin, fout, 1, norm).eval()
    lively_weights(block)
    fast = inference_copy(torch.nn.Sequential(block))[0]
    assert isinstance(fast, FastCGBlock)
    label = torch.nn.functional.one_hot(blob_label(3, (16, 16)), 3).permute(0, 3, 1, 2).float()
    x = torch.randn(2, fin, 16, 16).to(memory_format=torch.channels_last)
    before = x.clone()
    with torch.inference_mode():
        expected = block(x, label.expand(2, -1, -1, -1))
        got = fast(x, label.expand(2, -1, -1, -1))
    assert torch.equal(x, before)
    assert expected.std() > 1  # lively: rounding is relative to O(100) values here
    assert (got - expected).abs().max() <= 1e-5 * expected.abs().max()


def _class_set_codes(model, base: torch.Tensor, classes: tuple[int, ...], count: int, seed: int) -> torch.Tensor:
    """``count`` codes equal to ``base`` except the channels of ``classes`` (how a class's set is drawn)."""
    generator = torch.Generator().manual_seed(seed)
    per = base.shape[1] // model.dataset.label_nc
    z = base.repeat(count, 1, 1, 1)
    for c in classes:
        z[:, c * per:(c + 1) * per] = torch.randn(count, per, *base.shape[2:], generator=generator)
    return z


@pytest.mark.parametrize("name", ["groupdnet", "groupdec", "groupdnet_wo_split"])
def test_shared_code_forward_equals_the_plain_forward(name, monkeypatch, block_convs):
    """A batch of one map whose codes differ in one class (or two) runs the common channels once
    (:mod:`smisbench.models.inference_shared`); the images equal the plain forward's."""
    from smisbench.models import inference_shared
    from smisbench.models.inference_shared import SharedCodeGroupDNetGenerator

    model = build_model(name, "synthetic").eval()
    lively_weights(model)
    fast = inference_copy(model)
    _check_block_convs(fast, block_convs)
    assert type(fast.netG) is SharedCodeGroupDNetGenerator and type(model.netG) is not SharedCodeGroupDNetGenerator
    split_blocks: list[int] = []
    original = inference_shared.block_split
    monkeypatch.setattr(inference_shared, "block_split",
                        lambda *args: (split_blocks.append(args[1].hi - args[1].lo), original(*args))[1])
    semantics = model.semantics(blob_label(model.dataset.label_nc, model.dataset.size)).expand(5, -1, -1, -1)
    base = model.sample_z(1, torch.Generator().manual_seed(0))
    for seed, classes in enumerate([(0,), (3,), (model.dataset.label_nc - 1,), (1, 2)]):
        z = _class_set_codes(model, base, classes, 5, seed)
        features = []
        for share in (True, False):
            monkeypatch.setattr(SharedCodeGroupDNetGenerator, "share_codes", share)
            split_blocks.clear()
            with torch.inference_mode():
                features.append(fast.netG.features(semantics, z))
            assert bool(split_blocks) == share  # the shared path ran, on a part of the channels
            assert all(0 < width < fast.netG.config.blocks[0].fin for width in split_blocks)
        shared, plain = features
        assert (shared[0] - shared[1]).abs().max() > 1e-3 * plain.abs().max()  # the redraws do change the image
        assert (shared - plain).abs().max() <= 1e-5 * plain.abs().max()
        with torch.inference_mode():
            torch.testing.assert_close(fast.generate(semantics, z), model.generate(semantics, z), atol=2e-5, rtol=1e-4)


def test_shared_code_forward_is_skipped_when_nothing_can_be_shared(monkeypatch):
    """Different maps, every channel redrawn, or a batch of one: the plain forward runs."""
    from smisbench.models import inference_shared

    model = build_model("groupdnet", "synthetic").eval()
    lively_weights(model)
    fast = inference_copy(model)
    split_blocks: list[int] = []
    original = inference_shared.block_split
    monkeypatch.setattr(inference_shared, "block_split", lambda *args: (split_blocks.append(1), original(*args))[1])
    label = blob_label(model.dataset.label_nc, model.dataset.size)
    one_map = model.semantics(label).expand(3, -1, -1, -1)
    two_maps = model.semantics(torch.cat([label, label.flip(-1), label]))
    base = model.sample_z(1, torch.Generator().manual_seed(0))
    one_class = _class_set_codes(model, base, (2,), 3, 0)
    every_class = model.sample_z(3, torch.Generator().manual_seed(1))
    for semantics, z in ((two_maps, one_class), (one_map, every_class), (one_map[:1], one_class[:1])):
        with torch.inference_mode():
            got = fast.generate(semantics, z)
            expected = model.generate(semantics, z)
        torch.testing.assert_close(got, expected, atol=2e-5, rtol=1e-4)
    assert split_blocks == []
    assert inference_shared.varying_channels(base.repeat(3, 1, 1, 1)) is None
    assert inference_shared.varying_channels(one_class) == (2 * 8, 3 * 8)
