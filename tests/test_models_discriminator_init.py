"""Discriminator initialisation: each family's D starts as its original code starts it.

SPADE/SMIS (``BaseNetwork.init_weights``, init_type xavier, init_variance 0.02) initialise G, E and D
alike; pix2pixHD's ``weights_init`` draws conv weights from N(0, 0.02) and leaves biases alone;
BicycleGAN's ``init_net`` uses xavier normal with gain 0.02 (``--init_type xavier --init_gain 0.02``);
DSGAN's ``load_networks`` builds its D without any init call (PyTorch's default).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import smisbench.data.synthetic  # noqa: F401  (registers the synthetic dataset)
from smisbench.models.discriminator import discriminator_for
from smisbench.models.registry import build_discriminator, build_model

SPADE_FAMILY = ("groupdnet", "spade", "vspade", "groupnet", "groupenc", "groupdec", "mulnet",
                "groupdnet_wo_map", "groupdnet_wo_split", "groupdnet_groupnorm", "groupdnet_wo_syncbn",
                "groupdnet_wo_specnorm")


def conv_weights(net: nn.Module) -> list[tuple[str, nn.Module, torch.Tensor]]:
    """(name, module, trainable weight) of every conv; spectral-normed convs train ``weight_orig``."""
    found = []
    for name, m in net.named_modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            weight = getattr(m, "weight_orig", None)
            found.append((name, m, weight if weight is not None else m.weight))
    return found


def xavier_std(weight: torch.Tensor, gain: float = 0.02) -> float:
    fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(weight)
    return gain * math.sqrt(2.0 / (fan_in + fan_out))


def assert_xavier(net: nn.Module, gain: float = 0.02, zero_bias: bool = True) -> None:
    convs = conv_weights(net)
    assert convs
    for name, m, weight in convs:
        expected = xavier_std(weight, gain)
        measured = float(weight.detach().float().std())
        tolerance = 0.25 if weight.numel() >= 256 else 0.6  # sampling error of the std of a few values
        assert abs(measured / expected - 1) < tolerance, f"{name}: std {measured:.3g}, xavier {expected:.3g}"
        if zero_bias and m.bias is not None:
            assert torch.count_nonzero(m.bias) == 0, f"{name}: bias not zero"


@pytest.mark.parametrize("name", SPADE_FAMILY)
def test_spade_family_discriminators_use_the_official_xavier_init(name):
    torch.manual_seed(0)
    assert_xavier(build_discriminator(name, "synthetic"))


def test_discriminator_init_matches_the_generator_and_encoder_init():
    """G, E and D of GroupDNet all carry weights of xavier scale (gain 0.02), none PyTorch's default."""
    torch.manual_seed(0)
    model = build_model("groupdnet", "synthetic")
    for part in (model.netG, model.netE, build_discriminator("groupdnet", "synthetic")):
        assert_xavier(part)


def test_full_size_discriminator_is_about_35x_smaller_than_pytorch_default():
    """The DeepFashion-width D (64 -> 512 channels) as the issue measured: PyTorch's default is ~35x larger."""
    torch.manual_seed(0)
    netD = discriminator_for(8, ndf=64, n_layers=4, num_D=1)
    _, _, weight = conv_weights(netD)[2]  # 128 -> 256, 4x4
    default = 1.0 / math.sqrt(3 * weight[0].numel())  # kaiming_uniform(a=sqrt(5)): std = 1/sqrt(3 fan_in)
    ratio = default / float(weight.detach().std())
    assert 25 < ratio < 50, ratio
    assert_xavier(netD)


def test_pix2pixhd_discriminator_is_normal_002_with_default_biases():
    torch.manual_seed(0)
    netD = build_discriminator("pix2pixhd", "synthetic")
    for name, m, weight in conv_weights(netD):
        if weight.numel() >= 256:
            assert abs(float(weight.detach().std()) / 0.02 - 1) < 0.2, name
            assert abs(float(weight.detach().mean())) < 0.01, name
    biases = [m.bias for _, m, _ in conv_weights(netD) if m.bias is not None]
    assert any(torch.count_nonzero(b) for b in biases)  # weights_init leaves biases at PyTorch's default


def test_bicyclegan_discriminators_are_xavier_002():
    torch.manual_seed(0)
    assert_xavier(build_discriminator("bicyclegan", "synthetic"))


def test_dscgan_discriminator_keeps_pytorch_default_as_dsgan_does():
    torch.manual_seed(0)
    netD = build_discriminator("dscgan", "synthetic")
    for name, _, weight in conv_weights(netD):
        if weight.numel() >= 256:
            default = 1.0 / math.sqrt(3 * weight[0].numel())
            assert abs(float(weight.detach().std()) / default - 1) < 0.25, name


def test_norm_weights_follow_the_official_rule_batch_norm_drawn_group_norm_left_at_one():
    """The official init draws N(1, 0.02) for classes named *BatchNorm2d* only; the GroupNorm ablation's
    affine GroupNorms keep PyTorch's weight 1, bias 0."""
    torch.manual_seed(0)
    model = build_model("groupdnet_groupnorm", "synthetic")
    group = [m for m in model.modules() if isinstance(m, nn.GroupNorm) and m.weight is not None]
    assert group and all(torch.equal(m.weight, torch.ones_like(m.weight)) and torch.count_nonzero(m.bias) == 0
                         for m in group)
    from smisbench.models.layers import xavier_init

    norms = nn.Sequential(nn.BatchNorm2d(64), nn.SyncBatchNorm(64), nn.GroupNorm(4, 64), nn.InstanceNorm2d(64, affine=True))
    xavier_init(norms)
    for drawn in norms[:2]:
        assert 0.01 < float(drawn.weight.detach().std()) < 0.03 and abs(float(drawn.weight.detach().mean()) - 1) < 0.01
    for kept in norms[2:]:
        assert torch.equal(kept.weight.detach(), torch.ones(64)) and torch.count_nonzero(kept.bias) == 0
