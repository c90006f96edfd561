"""The inference copy gives the same images as the training-layout model, through its sparse CG-Norm path."""

from __future__ import annotations

import math

import pytest
import torch

from smisbench.models.inference import FastCGNorm, LabelAnalysis, inference_copy
from smisbench.models.registry import build_model


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


@pytest.mark.parametrize("name", ["groupdnet", "vspade", "spade"])
def test_inference_copy_matches_the_original(name):
    model = build_model(name, "synthetic").eval()
    lively_weights(model)
    fast = inference_copy(model)
    assert any(isinstance(m, FastCGNorm) for m in fast.modules())
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
