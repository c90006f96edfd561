"""DSCGAN: BicycleGAN's generator without encoder, DSGAN's conditional D, the diversity-sensitive objective."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from smisbench.datasets_config import get_dataset_config
from smisbench.models import dscgan
from smisbench.models.base import CodesKind
from smisbench.models.objectives_baselines import DSCGANObjective
from smisbench.models.registry import build_discriminator, build_model, get_entry

torch.set_num_threads(1)
DATASETS = ("deepfashion", "cityscapes", "ade20k")


def read_listing(path: Path) -> dict[str, tuple[int, ...]]:
    """``name (shape)`` lines of an official state-dict listing."""
    out = {}
    for line in path.read_text().splitlines():
        name, shape = line.split(" ", 1)
        out[name] = tuple(int(s) for s in shape.strip("()").split(",") if s.strip())
    return out


def shapes(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def labels(dataset: str, height: int, width: int, batch: int = 1, seed: int = 0):
    config = get_dataset_config(dataset)
    g = torch.Generator().manual_seed(seed)
    label = torch.randint(0, config.label_nc, (batch, height, width), generator=g)
    instance = torch.randint(0, 4, (batch, height, width), generator=g) if config.use_instance else None
    return label, instance


def test_registered_with_global_codes_and_no_encoder():
    entry = get_entry("dscgan")
    assert entry.codes_kind == CodesKind.GLOBAL
    assert set(DATASETS) | {"synthetic"} <= set(entry.datasets())
    model = build_model("dscgan", "synthetic")
    assert model.netE is None and set(model.parts()) == {"G"} and model.latent.shape == (8,)
    with pytest.raises(TypeError):
        model.encode(torch.zeros(1, 3, 64, 64), torch.zeros(1, 6, 64, 64))


def test_generator_is_bicyclegans(official_keys):
    with torch.device("meta"):
        model = build_model("dscgan", "deepfashion")
    assert shapes(model.netG) == read_listing(official_keys / "bicyclegan_deepfashion8_G.txt")


def test_discriminator_keys_equal_dsgan_listing(official_keys):
    listing = read_listing(official_keys / "dscgan_deepfashion8_D.txt")
    with torch.device("meta"):
        netD = build_discriminator("dscgan", "deepfashion")
    assert len(listing) == 20
    assert list(netD.state_dict()) == list(listing) and shapes(netD) == listing


@pytest.mark.parametrize("dataset, d_params", [("deepfashion", 3_471_266), ("cityscapes", 3_514_274), ("ade20k", 3_690_914)])
def test_discriminator_counts(dataset, d_params):
    with torch.device("meta"):
        netD = build_discriminator("dscgan", dataset)
    assert count(netD) == d_params  # 1,536 per label channel (1,024 at ndf 64 + 512 at ndf 32)


def test_parameter_table_against_paper():
    """Table 1 prints 58.4 M (BicycleGAN's number); DSCGAN has no encoder: G alone, documented in PAPER_PARAMS."""
    with torch.device("meta"):
        model = build_model("dscgan", "deepfashion")
    ours = count(model.netG)
    reference = dscgan.PAPER_PARAMS
    assert ours == reference.ours == 54_799_747
    assert ours / 1e6 - reference.paper_millions == pytest.approx(reference.difference_millions)
    if abs(reference.difference_millions) > 0.2:
        assert "no encoder" in reference.explanation and "58.4" in reference.explanation


@pytest.fixture(scope="module", params=DATASETS)
def full_model(request):
    return request.param, build_model("dscgan", request.param).eval()


def test_forward_small_and_real_resolution(full_model):
    dataset, model = full_model
    config = get_dataset_config(dataset)
    g = torch.Generator().manual_seed(0)
    for height, width in {(256, 256), (config.height, config.width)}:
        label, instance = labels(dataset, height, width)
        with torch.inference_mode():
            out = model(model.semantics(label, instance), generator=g)
        assert out.shape == (1, 3, height, width)
        assert torch.isfinite(out).all() and out.abs().max() <= 1


def test_dropout_only_while_training():
    model = build_model("dscgan", "synthetic")
    semantics = model.semantics(labels("synthetic", 64, 64)[0])
    z = model.sample_z(1, torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.train()
        assert not torch.equal(model.generate(semantics, z), model.generate(semantics, z))
        model.eval()
        assert torch.equal(model.generate(semantics, z), model.generate(semantics, z))


def test_diversity_term_by_hand():
    objective = DSCGANObjective(torch.nn.Identity())
    fake1 = torch.full((2, 3, 4, 4), 0.5, requires_grad=True)
    fake2 = torch.zeros(2, 3, 4, 4, requires_grad=True)
    z1, z2 = torch.ones(2, 8), torch.zeros(2, 8)
    z2[1] = -1.0  # second sample: |z1 - z2| = 2
    term = objective.diversity_term(fake1, fake2, z1, z2)
    expected = -(0.5 / (1 + 1e-5) + 0.5 / (2 + 1e-5)) / 2
    assert float(term.detach()) == pytest.approx(expected, rel=1e-7)
    term.backward()
    assert fake1.grad is not None and fake2.grad is None  # the second sample is a stop-gradient target


def test_objective_steps():
    model = build_model("dscgan", "synthetic")
    netD = build_discriminator("dscgan", "synthetic")
    objective = model.training_objective(netD)
    label, _ = labels("synthetic", 64, 64, batch=2)
    batch = {"label": label, "image": torch.rand(2, 3, 64, 64) * 2 - 1}
    result = objective.generator_loss(batch, model, torch.Generator().manual_seed(0))
    t = {k: float(v) for k, v in result.terms.items()}
    assert t["NE"] < 0 and t["G_L1"] > 0
    assert float(result.total.detach()) == pytest.approx(t["G_GAN"] + 8 * t["NE"] + 10 * t["G_L1"], rel=1e-5)
    result.total.backward()
    assert all(p.grad is None for p in netD.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.netG.parameters())

    d_result = objective.discriminator_loss(batch, model, result.fakes)
    assert float(d_result.total.detach()) == pytest.approx(0.5 * (float(d_result.terms["D_real"]) + float(d_result.terms["D_fake"])))
    d_result.total.backward()
    assert all(p.grad is not None for p in netD.parameters())
