"""pix2pixHD: official key layouts, parameter counts, forwards at every config, legacy keys, objective."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from smisbench.datasets_config import get_dataset_config
from smisbench.errors import SmisbenchError
from smisbench.models import pix2pixhd
from smisbench.models.base import CodesKind
from smisbench.models.checkpoints import load_into
from smisbench.models.registry import build_discriminator, build_model, get_entry, model_config

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


def meta_model(dataset: str, **overrides):
    with torch.device("meta"):
        return build_model("pix2pixhd", dataset, **overrides)


def labels(dataset: str, height: int, width: int, batch: int = 1, seed: int = 0):
    config = get_dataset_config(dataset)
    g = torch.Generator().manual_seed(seed)
    label = torch.randint(0, config.label_nc, (batch, height, width), generator=g)
    instance = torch.randint(0, 4, (batch, height, width), generator=g) if config.use_instance else None
    return label, instance


def test_registered_without_codes():
    entry = get_entry("pix2pixhd")
    assert entry.codes_kind == CodesKind.NONE
    assert set(DATASETS) <= set(entry.datasets())
    assert entry.checkpoint_filter is pix2pixhd.legacy_key_filter
    model = build_model("pix2pixhd", "synthetic")
    assert model.latent is None and model.netE is None and model.sample_z(2) is None
    with pytest.raises(TypeError):
        model.encode(torch.zeros(1, 3, 64, 64), torch.zeros(1, 6, 64, 64))


@pytest.mark.parametrize(
    "dataset, overrides, expected",
    [
        ("cityscapes", {}, 182_546_755),  # the listing's global generator (36 input channels)
        ("cityscapes", pix2pixhd.LABEL2CITY_1024P, 182_857_059),  # label2city_1024p
        ("deepfashion", {}, 182_458_947),  # 8 input channels: 28 * 64 * 49 fewer than Cityscapes
        ("ade20k", {}, 182_907_395),  # 151 input channels
    ],
)
def test_generator_parameter_counts(dataset, overrides, expected):
    assert count(meta_model(dataset, **overrides).netG) == expected


def test_discriminator_parameter_counts():
    with torch.device("meta"):
        two = build_discriminator("pix2pixhd", "cityscapes")
        three = build_discriminator("pix2pixhd", "cityscapes", num_D=3)
    assert count(two) == 5_603_202
    assert count(three) == 8_404_803
    assert "scale1_layer4.0.weight" in two.state_dict()


def test_global_keys_equal_official_listing(official_keys):
    listing = read_listing(official_keys / "pix2pixhd_cityscapes_global_G.txt")
    assert len(listing) == 56
    assert shapes(meta_model("cityscapes").netG) == listing


def test_label2city_1024p_keys_equal_official_listing(official_keys):
    listing = read_listing(official_keys / "pix2pixhd_label2city_1024p_G.txt")
    assert len(listing) == 74
    net = meta_model("cityscapes", **pix2pixhd.LABEL2CITY_1024P).netG
    assert isinstance(net, pix2pixhd.LocalEnhancer)
    assert list(net.state_dict()) == list(listing)
    assert shapes(net) == listing


@pytest.fixture(scope="module", params=DATASETS)
def full_model(request):
    """Each dataset's full-size pix2pixHD (about 182 M parameters), built once."""
    return request.param, build_model("pix2pixhd", request.param).eval()


def _check_image(out: torch.Tensor, batch: int, height: int, width: int) -> None:
    assert out.shape == (batch, 3, height, width)
    assert torch.isfinite(out).all() and out.abs().max() <= 1


def test_small_forward_every_config(full_model):
    dataset, model = full_model
    height, width = (32, 64) if dataset == "cityscapes" else (32, 32)
    label, instance = labels(dataset, height, width, batch=2)
    semantics = model.semantics(label, instance)
    assert semantics.shape[1] == get_dataset_config(dataset).input_nc
    with torch.inference_mode():
        first, second = model(semantics), model.generate(semantics, None)
    _check_image(first, 2, height, width)
    assert torch.equal(first, second)  # deterministic: no code, no noise


@pytest.mark.slow
def test_real_resolution_forward(full_model):
    dataset, model = full_model
    config = get_dataset_config(dataset)
    label, instance = labels(dataset, config.height, config.width)
    with torch.inference_mode():
        out = model(model.semantics(label, instance))
    _check_image(out, 1, config.height, config.width)


def test_local_enhancer_small_forward():
    """The enhancer's wiring at narrow widths (the full label2city_1024p build runs in the slow test)."""
    model = build_model("pix2pixhd", "cityscapes", ngf=8, n_local_enhancers=1, n_blocks_global=2).eval()
    assert isinstance(model.netG, pix2pixhd.LocalEnhancer)
    label, instance = labels("cityscapes", 64, 128)
    with torch.inference_mode():
        out = model(model.semantics(label, instance))
    _check_image(out, 1, 64, 128)
    with pytest.raises(SmisbenchError, match="at least 64"):
        model(model.semantics(*labels("cityscapes", 32, 64)))


@pytest.mark.slow
def test_label2city_1024p_real_resolution_forward():
    model = build_model("pix2pixhd", "cityscapes", **pix2pixhd.LABEL2CITY_1024P).eval()
    label, instance = labels("cityscapes", *pix2pixhd.LABEL2CITY_1024P_SIZE)
    with torch.inference_mode():
        out = model(model.semantics(label, instance))
    _check_image(out, 1, *pix2pixhd.LABEL2CITY_1024P_SIZE)


def test_tiny_synthetic_forward_and_discriminator():
    model = build_model("pix2pixhd", "synthetic")
    netD = build_discriminator("pix2pixhd", "synthetic")
    label, _ = labels("synthetic", 64, 64, batch=2)
    semantics = model.semantics(label)
    fake = model(semantics)
    _check_image(fake.detach(), 2, 64, 64)
    outputs = netD(torch.cat([semantics, fake], 1))
    assert len(outputs) == 2 and all(len(scale) == 5 for scale in outputs)
    assert outputs[0][-1].shape[1] == 1 and outputs[1][-1].shape[-1] < outputs[0][-1].shape[-1]


def test_size_not_divisible_is_refused():
    model = build_model("pix2pixhd", "synthetic")  # 2 downsamplings: multiples of 4
    label, _ = labels("synthetic", 30, 30)
    with pytest.raises(SmisbenchError, match="divisible by 4"):
        model(model.semantics(label))


def test_legacy_instance_norm_entries_are_dropped_and_reported(tmp_path):
    model = build_model("pix2pixhd", "synthetic")
    state = dict(model.netG.state_dict())
    legacy = {"model.2.running_mean": torch.zeros(8), "model.2.running_var": torch.ones(8)}
    batchnorm_like = {"bn.weight": torch.ones(4), "bn.running_mean": torch.zeros(4)}
    clean, dropped = pix2pixhd.legacy_key_filter({**state, **legacy, **batchnorm_like})
    assert sorted(dropped) == sorted(legacy)
    assert "bn.running_mean" in clean and set(state) <= set(clean)

    # an old-style file (DataParallel prefix + InstanceNorm statistics) loads strictly through the import path
    path = tmp_path / "latest_net_G.pth"
    torch.save({f"module.{k}": v for k, v in {**state, **legacy}.items()}, path)
    fresh = build_model("pix2pixhd", "synthetic")
    report = load_into(fresh.netG, path, get_entry("pix2pixhd").checkpoint_filter)
    assert report.fits and sorted(report.dropped_legacy) == sorted(legacy)
    assert all(torch.equal(fresh.netG.state_dict()[k], v) for k, v in state.items())


def test_objective_terms_and_gradients():
    model = build_model("pix2pixhd", "synthetic")
    netD = build_discriminator("pix2pixhd", "synthetic")
    calls = []

    def perceptual(fake, real):
        calls.append(fake.shape)
        return (fake - real).abs().mean() * 0 + 0.25

    objective = model.training_objective(netD, perceptual=perceptual)
    label, _ = labels("synthetic", 64, 64, batch=2)
    with torch.no_grad():
        same = model.generate(model.semantics(label), None)
    # real image equal to the generator's output: feature matching must vanish exactly
    result = objective.generator_loss({"label": label, "image": same}, model)
    assert float(result.terms["G_GAN_Feat"]) == 0.0
    assert float(result.terms["G_VGG"]) == pytest.approx(10 * 0.25) and len(calls) == 1
    assert float(result.total.detach()) == pytest.approx(float(result.terms["G_GAN"]) + 2.5, rel=1e-6)

    other = torch.rand(2, 3, 64, 64) * 2 - 1
    result = objective.generator_loss({"label": label, "image": other}, model)
    assert float(result.terms["G_GAN_Feat"]) > 0
    result.total.backward()
    assert all(p.grad is None for p in netD.parameters())  # D stays out of G's graph
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.netG.parameters())

    d_result = objective.discriminator_loss({"label": label, "image": other}, model, result.fakes)
    assert float(d_result.total.detach()) == pytest.approx(0.5 * float(d_result.terms["D_fake"] + d_result.terms["D_real"]))
    d_result.total.backward()
    assert all(p.grad is not None for p in netD.parameters())


def test_config_documents_the_1024p_release():
    config = model_config("pix2pixhd", "cityscapes", **pix2pixhd.LABEL2CITY_1024P)
    assert config.ngf == 32 and config.n_local_enhancers == 1 and config.data.input_nc == 36
    assert "label2city_1024p" in model_config("pix2pixhd", "cityscapes").notes


def test_infer_overrides_reads_the_1024p_listing(official_keys):
    listing = read_listing(official_keys / "pix2pixhd_label2city_1024p_G.txt")
    state = {k: torch.empty(shape, device="meta") for k, shape in listing.items()}
    state["model.2.running_mean"] = torch.empty(64, device="meta")  # pre-0.4 InstanceNorm statistics
    overrides = pix2pixhd.infer_overrides(state)
    assert overrides == {**pix2pixhd.LABEL2CITY_1024P, "n_downsample_global": 4, "n_blocks_global": 9, "n_blocks_local": 3}
    with torch.device("meta"):
        net = build_model("pix2pixhd", "cityscapes", **overrides).netG
    assert shapes(net) == listing
    global_listing = read_listing(official_keys / "pix2pixhd_cityscapes_global_G.txt")
    assert pix2pixhd.infer_overrides({k: torch.empty(s, device="meta") for k, s in global_listing.items()})["n_local_enhancers"] == 0
    with pytest.raises(SmisbenchError, match="not a pix2pixHD generator"):
        pix2pixhd.infer_overrides({"fc.weight": torch.zeros(2, 2)})


def test_import_command_takes_an_old_release_file(tmp_path, capsys):
    from smisbench.cli import main
    from smisbench.models.checkpoints import load_bundle

    source = build_model("pix2pixhd", "synthetic")
    state = {f"module.{k}": v for k, v in source.netG.state_dict().items()}
    state["module.model.2.running_mean"] = torch.zeros(8)
    state["module.model.2.running_var"] = torch.ones(8)
    (tmp_path / "release").mkdir()
    torch.save(state, tmp_path / "release" / "latest_net_G.pth")
    out = tmp_path / "pix2pixhd.pt"
    code = main(["import-checkpoint", str(tmp_path / "release"), "--model", "pix2pixhd", "--dataset", "synthetic", "--out", str(out)])
    assert code == 0 and "model.2.running_mean" in capsys.readouterr().out
    imported, _ = load_bundle(out)
    assert all(torch.equal(imported.netG.state_dict()[k], v) for k, v in source.netG.state_dict().items())


def test_import_command_reads_the_local_enhancer_layout_off_the_file(tmp_path):
    """A local-enhancer release (as label2city_1024p) imports without flags: the config comes from its shapes."""
    from smisbench.cli import main
    from smisbench.models.checkpoints import load_bundle

    source = build_model("pix2pixhd", "synthetic", n_local_enhancers=1)
    default = build_model("pix2pixhd", "synthetic")
    assert set(source.netG.state_dict()) != set(default.netG.state_dict())
    torch.save(source.netG.state_dict(), tmp_path / "latest_net_G.pth")
    out = tmp_path / "local.pt"
    assert main(["import-checkpoint", str(tmp_path / "latest_net_G.pth"), "--model", "pix2pixhd", "--dataset", "synthetic", "--out", str(out)]) == 0
    imported, _ = load_bundle(out)
    assert imported.config.n_local_enhancers == 1
    assert all(torch.equal(imported.netG.state_dict()[k], v) for k, v in source.netG.state_dict().items())
