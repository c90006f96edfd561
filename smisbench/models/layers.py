"""Building blocks shared by GroupDNet, SPADE and their variants (grouped CG-Norm / CG-Block, conv encoders).

State-dict names follow the official SPADE/SMIS code (``weight_orig``/``weight_u``/``weight_v`` of the
classic spectral norm, ``param_free_norm.*``, ``mlp_shared.0``) so released checkpoints load strictly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm as _spectral_norm


def maybe_spectral(module: nn.Module, enabled: bool) -> nn.Module:
    """Classic (hook-based) spectral norm, whose buffers carry the names official checkpoints use."""
    return _spectral_norm(module) if enabled else module


def param_free_norm(kind: str, channels: int, groups: int = 1) -> nn.Module:
    """Normalisation without affine parameters (CG-Norm's first step).

    ``batch`` is plain BatchNorm: distributed CUDA training converts it to SyncBatchNorm; the GroupNorm
    ablation uses ``group`` with the group count of the conv that feeds it.
    """
    if kind == "batch":
        return nn.BatchNorm2d(channels, affine=False)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False)
    if kind == "group":
        return nn.GroupNorm(groups, channels)
    raise ValueError(f"unknown param-free norm {kind!r} (batch, instance, group)")


@dataclass(frozen=True)
class NormSpec:
    """Shape of one CG-Norm's label branch: hidden width and the group counts of its two convs."""

    label_in: int
    hidden: int
    shared_groups: int
    gamma_groups: int


class CGNorm(nn.Module):
    """Conditional group normalisation: ``norm(x) * (1 + gamma(label)) + beta(label)`` with grouped label convs."""

    def __init__(self, channels: int, spec: NormSpec, norm_kind: str = "batch", norm_groups: int = 1):
        super().__init__()
        self.param_free_norm = param_free_norm(norm_kind, channels, norm_groups)
        self.mlp_shared = nn.Sequential(
            nn.Conv2d(spec.label_in, spec.hidden, 3, padding=1, groups=spec.shared_groups), nn.ReLU()
        )
        self.mlp_gamma = nn.Conv2d(spec.hidden, channels, 3, padding=1, groups=spec.gamma_groups)
        self.mlp_beta = nn.Conv2d(spec.hidden, channels, 3, padding=1, groups=spec.gamma_groups)

    def forward(self, x: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        normalized = self.param_free_norm(x)
        label = F.interpolate(label, size=x.shape[2:], mode="nearest")
        hidden = self.mlp_shared(label)
        return normalized * (1 + self.mlp_gamma(hidden)) + self.mlp_beta(hidden)


class CGBlock(nn.Module):
    """Residual block of grouped convs conditioned by CG-Norm (SPADE's ResBlk when ``groups`` is 1)."""

    def __init__(
        self,
        fin: int,
        fout: int,
        groups: int,
        norm: NormSpec,
        spectral: bool = True,
        norm_kind: str = "batch",
    ):
        super().__init__()
        self.learned_shortcut = fin != fout
        fmiddle = min(fin, fout)
        self.conv_0 = maybe_spectral(nn.Conv2d(fin, fmiddle, 3, padding=1, groups=groups), spectral)
        self.conv_1 = maybe_spectral(nn.Conv2d(fmiddle, fout, 3, padding=1, groups=groups), spectral)
        if self.learned_shortcut:
            self.conv_s = maybe_spectral(nn.Conv2d(fin, fout, 1, bias=False, groups=groups), spectral)
        self.norm_0 = CGNorm(fin, norm, norm_kind, groups)
        self.norm_1 = CGNorm(fmiddle, norm, norm_kind, groups)
        if self.learned_shortcut:
            self.norm_s = CGNorm(fin, norm, norm_kind, groups)

    def forward(self, x: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        shortcut = self.conv_s(self.norm_s(x, label)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, label), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, label), 0.2))
        return shortcut + dx


def norm_conv(conv: nn.Conv2d, spectral: bool = True, instance_norm: bool = True) -> nn.Sequential:
    """SPADE's ``spectralinstance`` layer: spectral-normed conv (bias dropped) followed by instance norm."""
    if instance_norm:
        conv.bias = None
    layers: list[nn.Module] = [maybe_spectral(conv, spectral)]
    if instance_norm:
        layers.append(nn.InstanceNorm2d(conv.out_channels, affine=False))
    return nn.Sequential(*layers)


class ConvEncoderTrunk(nn.Module):
    """Stride-2 3x3 convs (``layer1``..``layerN``) with LeakyReLU between, optionally grouped."""

    def __init__(self, in_channels: int, widths: tuple[int, ...], groups: int = 1, spectral: bool = True):
        super().__init__()
        self.num_layers = len(widths)
        previous = in_channels
        for index, width in enumerate(widths, start=1):
            conv = nn.Conv2d(previous, width, 3, stride=2, padding=1, groups=groups)
            setattr(self, f"layer{index}", norm_conv(conv, spectral))
            previous = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for index in range(1, self.num_layers + 1):
            if index > 1:
                x = F.leaky_relu(x, 0.2)
            x = getattr(self, f"layer{index}")(x)
        return F.leaky_relu(x, 0.2)


def xavier_init(module: nn.Module, gain: float = 0.02) -> None:
    """The official init: xavier normal (gain 0.02) for conv/linear weights, zero bias, N(1, 0.02) for batch norm
    weights (BatchNorm and SyncBatchNorm, the classes whose name holds "BatchNorm2d" in the official code);
    GroupNorm and InstanceNorm keep PyTorch's weight 1, bias 0, as the official code leaves them."""
    for m in module.modules():
        weight = getattr(m, "weight_orig", None)
        if weight is None:
            weight = getattr(m, "weight", None)
        if isinstance(m, (nn.Conv2d, nn.Linear, nn.ConvTranspose2d)) and isinstance(weight, torch.Tensor):
            nn.init.xavier_normal_(weight.data, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias.data)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm) and getattr(m, "weight", None) is not None:
            nn.init.normal_(m.weight.data, 1.0, gain)
            nn.init.zeros_(m.bias.data)
