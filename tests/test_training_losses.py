"""The GroupDNet/SPADE losses, the VGG loader, the LR schedule and the resumable sampler."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from torch import nn

from smisbench.errors import WeightsError
from smisbench.training import losses
from smisbench.training.loader import ResumableSampler
from smisbench.training.schedule import LinearDecay, linear_decay
from smisbench.training.vgg import VGG19_SLICES, VGGTaps, build_perceptual, load_vgg19, vgg_features


def pyramid(*predictions: torch.Tensor, features: int = 2) -> list[list[torch.Tensor]]:
    """A multi-scale D output: per scale, ``features`` feature maps then the prediction."""
    return [[torch.full((1, 2, 3, 3), float(i + j)) for j in range(features)] + [p] for i, p in enumerate(predictions)]


def test_hinge_losses_match_their_definitions():
    a, b = torch.tensor([[-2.0, 0.5, 3.0]]), torch.tensor([[0.0, -1.5]])
    out = pyramid(a, b)
    expected_real = (torch.relu(1 - a).mean() + torch.relu(1 - b).mean()) / 2
    expected_fake = (torch.relu(1 + a).mean() + torch.relu(1 + b).mean()) / 2
    assert torch.isclose(losses.hinge_d_real(out), expected_real)
    assert torch.isclose(losses.hinge_d_fake(out), expected_fake)
    assert torch.isclose(losses.hinge_g(out), -(a.mean() + b.mean()) / 2)
    confident = pyramid(torch.full((1, 4), 5.0))
    assert losses.hinge_d_real(confident) == 0 and losses.hinge_d_fake(confident) == 6


def test_feature_matching_skips_predictions_and_averages_scales():
    fake = pyramid(torch.zeros(1), torch.zeros(1))
    real = [[f + 1.0 for f in scale[:-1]] + [scale[-1] + 100.0] for scale in fake]  # predictions differ a lot
    # each scale: 2 feature layers, each |diff| = 1 -> sum 2 per scale; mean over 2 scales -> 2
    assert torch.isclose(losses.feature_matching(fake, real), torch.tensor(2.0))
    fake_grad = [[f.clone().requires_grad_() for f in scale] for scale in fake]
    real_grad = [[f.clone().requires_grad_() for f in scale] for scale in real]
    losses.feature_matching(fake_grad, real_grad).backward()
    assert real_grad[0][0].grad is None and fake_grad[0][0].grad is not None  # real side detached


def test_kl_is_a_sum_of_the_closed_form():
    mu, logvar = torch.tensor([[0.5, -1.0], [0.0, 2.0]]), torch.tensor([[0.0, 0.3], [-0.7, 0.1]])
    per_element = 0.5 * (mu**2 + logvar.exp() - 1 - logvar)
    assert torch.isclose(losses.kl_divergence(mu, logvar), per_element.sum())
    assert losses.kl_divergence(torch.zeros(3, 4), torch.zeros(3, 4)) == 0
    doubled = losses.kl_divergence(mu.repeat(2, 1), logvar.repeat(2, 1))
    assert torch.isclose(doubled, 2 * losses.kl_divergence(mu, logvar))  # a sum over the batch, not a mean


def test_kl_in_half_precision_inputs_does_not_overflow():
    mu = torch.full((4, 64, 4, 4), 20.0, dtype=torch.float16)
    value = losses.kl_divergence(mu, torch.zeros_like(mu))
    assert value.dtype == torch.float32 and torch.isfinite(value) and value > 65504  # beyond float16's range


class TwoTaps(nn.Module):
    def forward(self, x):
        return [x, 2 * x]


def test_perceptual_loss_weights_and_frozen_features():
    module = losses.PerceptualLoss(TwoTaps(), weights=(0.5, 1.0))
    fake, real = torch.zeros(1, 3, 4, 4, requires_grad=True), torch.ones(1, 3, 4, 4)
    value = module(fake, real)
    assert torch.isclose(value, torch.tensor(0.5 * 1 + 1.0 * 2))
    value.backward()
    assert fake.grad is not None
    assert losses.VGG_LAYER_WEIGHTS == (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)


@pytest.fixture(scope="module")
def vgg19_file(tmp_path_factory) -> Path:
    """VGG19 features with random weights under torchvision's key names (``features.N.weight``)."""
    generator = torch.Generator().manual_seed(0)
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in vgg_features("vgg19").state_dict().items()}
    path = tmp_path_factory.mktemp("vgg") / "my_vgg19.pth"
    torch.save({f"features.{k}": torch.randn(s, generator=generator) * 0.01 for k, s in shapes.items()}, path)
    return path


def test_vgg19_loads_from_a_local_file_and_records_its_checksum(tmp_path, vgg19_file):
    path = vgg19_file
    taps, record = load_vgg19(path)
    assert record.network == "vgg19" and record.substitution is None
    assert record.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    features = taps(torch.zeros(1, 3, 32, 32))
    assert [f.shape[1] for f in features] == [64, 128, 256, 512, 512]
    assert [f.shape[-1] for f in features] == [32, 16, 8, 4, 2]  # relu1_1 .. relu5_1
    assert len(VGG19_SLICES) == 5
    state = torch.load(path, weights_only=True)
    torch.save({k: v for k, v in state.items() if not k.startswith("features.34")}, tmp_path / "cut.pth")
    with pytest.raises(WeightsError, match="does not hold VGG19 weights"):
        load_vgg19(tmp_path / "cut.pth")
    (tmp_path / "vgg19-dcbb9e9a.pth").write_bytes(path.read_bytes())
    with pytest.raises(WeightsError, match="not torchvision's VGG19 file"):
        load_vgg19(tmp_path / "vgg19-dcbb9e9a.pth")  # the name promises a checksum this file lacks
    with pytest.raises(WeightsError, match="do not exist"):
        load_vgg19(tmp_path / "absent.pth")


def test_vgg_none_is_recorded_and_imagenet_normalisation_is_optional():
    taps, record = build_perceptual("none")
    assert taps is None and record.network == "none" and "disabled" in record.substitution
    features = nn.Sequential(nn.Identity(), nn.ReLU())
    plain, normalised = VGGTaps(features, ((0, 1),), "none"), VGGTaps(features, ((0, 1),), "imagenet")
    x = torch.zeros(1, 3, 2, 2)
    assert torch.equal(plain(x)[0], x)
    assert torch.allclose(normalised(x)[0][0, :, 0, 0], (0.5 - torch.tensor([0.485, 0.456, 0.406])) /
                          torch.tensor([0.229, 0.224, 0.225]))


def test_linear_decay_schedule():
    decay = LinearDecay(total_steps=10, decay_steps=4)
    assert [decay(s) for s in range(11)] == [1, 1, 1, 1, 1, 1, 1.0, 0.75, 0.5, 0.25, 0.0]
    assert LinearDecay(10, 0)(9) == 1.0
    opt = torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=2e-4)
    sched = linear_decay(opt, 4, 2)
    lrs = []
    for _ in range(4):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([2e-4, 2e-4, 2e-4, 1e-4])
    state = sched.state_dict()
    assert state["lr_lambdas"][0] == {"total_steps": 4, "decay_steps": 2}  # saved with the checkpoint


def test_resumable_sampler_continues_the_same_order():
    data = list(range(11))
    for rank in (0, 1):
        full = ResumableSampler(data, num_replicas=2, rank=rank, seed=5)
        full.set_position(epoch=3, start=0)
        order = list(full)
        tail = ResumableSampler(data, num_replicas=2, rank=rank, seed=5)
        tail.set_position(epoch=3, start=4)
        assert list(tail) == order[4:] and len(tail) == len(order) - 4
    both = ResumableSampler(data, 2, 0, 5), ResumableSampler(data, 2, 1, 5)
    for s in both:
        s.set_position(0, 0)
    assert set(both[0]) | set(both[1]) == set(data)  # the shards cover the dataset
    again = ResumableSampler(data, 1, 0, 5)
    again.set_position(1, 0)
    first = ResumableSampler(data, 1, 0, 5)
    first.set_position(0, 0)
    assert list(again) != list(first)  # a new order each epoch


@pytest.mark.weights
def test_vgg16_stand_in_comes_from_the_metric_store_and_is_recorded():
    from smisbench.weights import require

    path, digest = require("lpips-vgg-backbone")
    taps, record = build_perceptual("vgg16")
    assert record.network == "vgg16" and record.source == str(path) and record.sha256 == digest
    assert "VGG16" in record.substitution and "VGG19" in record.substitution
    assert [f.shape[1] for f in taps(torch.zeros(1, 3, 32, 32))] == [64, 128, 256, 512, 512]


def test_auto_without_any_vgg_file_says_how_to_proceed(tmp_path, monkeypatch):
    monkeypatch.delenv("SMISBENCH_VGG19", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("SMISBENCH_WEIGHTS_DIR", str(tmp_path / "empty_store"))
    with pytest.raises(WeightsError, match="--vgg none"):
        build_perceptual("auto")
    with pytest.raises(WeightsError, match="no local VGG19"):
        build_perceptual("vgg19")


def test_vgg19_is_found_through_the_environment(tmp_path, monkeypatch, vgg19_file):
    path = tmp_path / "weights.pth"
    state = torch.load(vgg19_file, weights_only=True)
    torch.save({k[len("features."):]: v for k, v in state.items()}, path)  # a bare features state dict works too
    monkeypatch.setenv("SMISBENCH_VGG19", str(path))
    taps, record = build_perceptual("auto")
    assert record.network == "vgg19" and record.source == str(path) and record.substitution is None


def test_loss_log_adds_columns_and_is_cut_back_on_resume(tmp_path):
    from smisbench.training.runlog import LossLog

    path = tmp_path / "losses.csv"
    log = LossLog(path)
    for step in (1, 2):
        log.write({"step": step, "G": float(step)})
    log.write({"step": 3, "G": 3.0, "D": 0.5})  # a new term appears: the header grows
    with open(path, "a") as handle:
        handle.write("4,4.")  # a line cut short by a crash
    assert path.read_text().splitlines()[0] == "step,G,D"
    LossLog(path, resume_step=2)
    assert path.read_text().splitlines() == ["step,G,D", "1,1,", "2,2,"]
    LossLog(path)  # a fresh run starts a fresh file
    assert not path.exists()
