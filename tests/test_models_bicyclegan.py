"""BicycleGAN: official G/E key layouts, parameter table vs the paper, forwards, codes, objective."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from smisbench.datasets_config import get_dataset_config
from smisbench.errors import SmisbenchError
from smisbench.models import bicyclegan
from smisbench.models.base import CodesKind
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


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def meta_model(dataset: str, **overrides):
    with torch.device("meta"):
        return build_model("bicyclegan", dataset, **overrides)


def labels(dataset: str, height: int, width: int, batch: int = 1, seed: int = 0):
    config = get_dataset_config(dataset)
    g = torch.Generator().manual_seed(seed)
    label = torch.randint(0, config.label_nc, (batch, height, width), generator=g)
    instance = torch.randint(0, 4, (batch, height, width), generator=g) if config.use_instance else None
    return label, instance


def _check_image(out: torch.Tensor, batch: int, height: int, width: int) -> None:
    assert out.shape == (batch, 3, height, width)
    assert torch.isfinite(out).all() and out.abs().max() <= 1


def test_registered_with_global_codes():
    entry = get_entry("bicyclegan")
    assert entry.codes_kind == CodesKind.GLOBAL
    assert set(DATASETS) | {"synthetic"} <= set(entry.datasets())
    model = meta_model("deepfashion")
    assert model.latent.shape == (8,) and model.latent.draw_shape == (8,) and not model.latent.per_class
    assert model.netE is not None and set(model.parts()) == {"G", "E"}


def test_keys_equal_official_listings(official_keys):
    model = meta_model("deepfashion")
    for net, name, entries in ((model.netG, "G", 32), (model.netE, "E", 30)):
        listing = read_listing(official_keys / f"bicyclegan_deepfashion8_{name}.txt")
        assert len(listing) == entries
        assert list(net.state_dict()) == list(listing)
        assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == listing


@pytest.mark.parametrize(
    "dataset, g_params",
    [("deepfashion", 54_799_747), ("cityscapes", 54_828_419), ("ade20k", 54_946_179)],  # + 1,024 per input channel
)
def test_parameter_counts(dataset, g_params):
    model = meta_model(dataset)
    assert count(model.netG) == g_params
    assert count(model.netE) == 2_590_032


def test_parameter_table_against_paper():
    """Table 1 prints 58.4 M; ours is the released configuration's 57.39 M, documented in PAPER_PARAMS."""
    model = meta_model("deepfashion")
    ours = count(model.netG) + count(model.netE)
    reference = bicyclegan.PAPER_PARAMS
    assert ours == reference.ours == 57_389_779
    difference = ours / 1e6 - reference.paper_millions
    assert difference == pytest.approx(reference.difference_millions)
    if abs(difference) > 0.2:
        assert "58.4" in reference.explanation and "57.39" in reference.explanation
    # the note's arithmetic (G + E): one more code dimension adds 48,642 (48,128 in G, 514 in fc/fcVar)
    wider = meta_model("deepfashion", nz=9)
    assert ours + 48_642 == count(wider.netG) + count(wider.netE)


def test_discriminators():
    with torch.device("meta"):
        pair = build_discriminator("bicyclegan", "deepfashion")
    assert count(pair.D) == count(pair.D2) == 3_458_978  # basic_256_multi on RGB: ndf 64 + ndf 32 scales
    assert "D.model_0.0.weight" in pair.state_dict() and "D2.model_1.11.weight" in pair.state_dict()
    with torch.device("meta"):
        conditional = build_discriminator("bicyclegan", "deepfashion", conditional_D=True)
    assert conditional.D.model_0[0].in_channels == 3 + 8


@pytest.fixture(scope="module", params=DATASETS)
def full_model(request):
    return request.param, build_model("bicyclegan", request.param).eval()


def test_small_forward_every_config(full_model):
    """256x256 is the smallest input unet_256 takes (the real size for DeepFashion and ADE20K)."""
    dataset, model = full_model
    label, instance = labels(dataset, 256, 256, batch=2)
    semantics = model.semantics(label, instance)
    g = torch.Generator().manual_seed(3)
    with torch.inference_mode():
        z = model.sample_z(2, g)
        out = model.generate(semantics, z)
        again = model.generate(semantics, z)
        other = model.generate(semantics, model.sample_z(2, g))
    _check_image(out, 2, 256, 256)
    assert torch.equal(out, again) and not torch.equal(out, other)


def test_real_resolution_forward_and_encoder(full_model):
    dataset, model = full_model
    config = get_dataset_config(dataset)
    label, instance = labels(dataset, config.height, config.width)
    semantics = model.semantics(label, instance)
    image = torch.rand(1, 3, config.height, config.width) * 2 - 1
    with torch.inference_mode():
        mu, logvar = model.encode(image, semantics)
        out = model(semantics, mu)
    assert mu.shape == logvar.shape == (1, 8)
    _check_image(out, 1, config.height, config.width)


def test_global_pool_equals_released_avgpool_at_256():
    encoder = bicyclegan.ResNetEncoder(nz=8, nef=64, n_blocks=5).eval()
    image = torch.rand(2, 3, 256, 256) * 2 - 1
    with torch.no_grad():
        mu, logvar = encoder(image)
        trunk = encoder.conv[:-1](image)
        assert trunk.shape[-2:] == (8, 8)
        pooled = F.avg_pool2d(trunk, 8).flatten(1)
        assert torch.allclose(mu, encoder.fc(pooled), atol=1e-6)
        assert torch.allclose(logvar, encoder.fcVar(pooled), atol=1e-6)


def test_tiny_synthetic_config():
    model = build_model("bicyclegan", "synthetic")
    assert model.config.num_downs == 6
    label, _ = labels("synthetic", 64, 64, batch=2)
    out = model(model.semantics(label), generator=torch.Generator().manual_seed(0))
    _check_image(out.detach(), 2, 64, 64)


def test_wrong_size_and_codes_are_refused():
    model = build_model("bicyclegan", "synthetic")  # 6 levels: multiples of 64
    semantics = model.semantics(labels("synthetic", 64, 96)[0])
    with pytest.raises(SmisbenchError, match="divisible by 64"):
        model(semantics)
    with pytest.raises(SmisbenchError, match=r"\(B, 8\)"):
        model.generate(model.semantics(labels("synthetic", 64, 64)[0]), torch.zeros(1, 4))


def _setup(**weights):
    model = build_model("bicyclegan", "synthetic")
    pair = build_discriminator("bicyclegan", "synthetic")
    label, _ = labels("synthetic", 64, 64, batch=4)
    batch = {"label": label, "image": torch.rand(4, 3, 64, 64) * 2 - 1}
    return model, pair, model.training_objective(pair, **weights), batch


def _has_grad(module: torch.nn.Module) -> bool:
    return any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())


def test_objective_generator_step():
    model, pair, objective, batch = _setup()
    result = objective.generator_loss(batch, model, torch.Generator().manual_seed(0))
    assert set(result.terms) == {"G_GAN", "G_GAN2", "kl", "G_L1", "z_L1"}
    assert all(torch.isfinite(v) for v in result.terms.values())
    assert float(result.total.detach()) == pytest.approx(float(sum(result.terms.values())), rel=1e-5)
    assert result.fakes["fake_encoded"].shape == result.fakes["fake_random"].shape == (2, 3, 64, 64)
    result.total.backward()
    assert _has_grad(model.netG) and _has_grad(model.netE) and not _has_grad(pair)
    with pytest.raises(SmisbenchError, match="batch size of 2"):
        objective.generator_loss({k: v[:1] for k, v in batch.items()}, model)


def test_latent_regression_reaches_the_generator_only():
    model, pair, objective, batch = _setup(lambda_L1=0.0, lambda_kl=0.0, lambda_GAN=0.0, lambda_GAN2=0.0)
    result = objective.generator_loss(batch, model, torch.Generator().manual_seed(0))
    assert float(result.terms["z_L1"]) > 0
    result.total.backward()
    assert _has_grad(model.netG) and not _has_grad(model.netE)


def test_kl_term_is_the_summed_gaussian_kl():
    model, pair, objective, batch = _setup()
    with torch.no_grad():
        mu, logvar = model.netE(batch["image"][:2])
    expected = 0.01 * 0.5 * float((mu.pow(2) + logvar.exp() - 1 - logvar).sum())
    result = objective.generator_loss(batch, model, torch.Generator().manual_seed(0))
    assert float(result.terms["kl"]) == pytest.approx(expected, rel=1e-5, abs=1e-9)


def test_objective_discriminator_step():
    model, pair, objective, batch = _setup()
    g_result = objective.generator_loss(batch, model, torch.Generator().manual_seed(0))
    result = objective.discriminator_loss(batch, model, g_result.fakes)
    assert float(result.total.detach()) == pytest.approx(float(result.terms["D"] + result.terms["D2"]), rel=1e-6)
    result.total.backward()
    assert _has_grad(pair.D) and _has_grad(pair.D2) and not _has_grad(model.netG)
    fresh = objective.discriminator_loss(batch, model, None, torch.Generator().manual_seed(1))
    assert torch.isfinite(fresh.total)


def test_discriminator_returns_features_then_prediction():
    pair = build_discriminator("bicyclegan", "synthetic")
    outputs = pair(torch.rand(1, 3, 64, 64), branch="lr")
    assert len(outputs) == 2 and all(len(scale) == 5 for scale in outputs)
    assert outputs[0][-1].shape[1] == 1 and outputs[0][0].shape[1] == 8
    with pytest.raises(ValueError):
        pair(torch.rand(1, 3, 64, 64), branch="other")


def test_import_command_takes_release_files(tmp_path):
    from smisbench.cli import main
    from smisbench.models.checkpoints import load_bundle

    source = build_model("bicyclegan", "synthetic")
    release = tmp_path / "release"
    release.mkdir()
    torch.save(source.netG.state_dict(), release / "latest_net_G.pth")
    torch.save(source.netE.state_dict(), release / "latest_net_E.pth")
    out = tmp_path / "bicyclegan.pt"
    code = main(["import-checkpoint", str(release), "--model", "bicyclegan", "--dataset", "synthetic", "--out", str(out)])
    assert code == 0
    imported, _ = load_bundle(out)
    for part in ("netG", "netE"):
        expected = getattr(source, part).state_dict()
        assert all(torch.equal(getattr(imported, part).state_dict()[k], v) for k, v in expected.items())
