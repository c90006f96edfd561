"""GroupEnc, GroupDec, GroupNet and MulNet: registry, Table 1 parameter counts, forwards, and the class
separation each one has (or lacks) by construction."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn

from smisbench.errors import SmisbenchError
from smisbench.labels import encode_semantics
from smisbench.models.base import CodesKind
from smisbench.models.groupenc_groupdec import GroupDecEncoder
from smisbench.models.layers import xavier_init
from smisbench.models.mulnet import MulNet, mulnet_from_groupnet
from smisbench.models.registry import build_model, get_entry, model_config

# Table 1 of the paper, "# Param" (millions, G + encoder, DeepFashion); the paper truncates to one decimal
PAPER_PARAMS_M = {"groupnet": 97.7, "groupenc": 105.5, "groupdec": 111.3, "mulnet": 105.1}
NAMES = tuple(PAPER_PARAMS_M)


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def meta_models() -> dict[str, nn.Module]:
    """DeepFashion models built without memory, for counts and structure."""
    with torch.device("meta"):
        models = {name: build_model(name, "deepfashion") for name in NAMES}
        models["groupdnet"] = build_model("groupdnet", "deepfashion")
        models["vspade"] = build_model("vspade", "deepfashion")
    return models


def count(module: nn.Module | None) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def shapes(module: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def label_map(classes: int, size: tuple[int, int], seed: int = 0) -> torch.Tensor:
    """Random blocky label map where every class is present."""
    g = torch.Generator().manual_seed(seed)
    h, w = size
    coarse = torch.randint(0, classes, (1, 1, max(h // 8, 2), max(w // 8, 2)), generator=g).float()
    label = nn.functional.interpolate(coarse, size=size, mode="nearest")[0].long()
    label[0, :classes, 0] = torch.arange(classes)  # make sure all classes appear
    return label


# ------------------------------------------------------------------------------------------- registry


@pytest.mark.parametrize("name", NAMES)
def test_registered_for_deepfashion_and_synthetic_with_per_class_codes(name):
    entry = get_entry(name)
    assert entry.datasets() == ["deepfashion", "synthetic"]  # the paper ran these on DeepFashion only
    assert entry.codes_kind is CodesKind.PER_CLASS
    assert entry.build_discriminator is not None
    config = model_config(name, "deepfashion")
    assert config.notes, "the unpublished configuration must say what it is"


# ------------------------------------------------------------------------------------ parameter table


@pytest.mark.parametrize("name", NAMES)
def test_parameter_count_matches_table1(meta_models, name):
    model = meta_models[name]
    total = count(model.netG) + count(model.netE)
    paper = PAPER_PARAMS_M[name]
    assert abs(total / 1e6 - paper) <= 0.2, (name, total)
    # printed the paper's way (truncated to one decimal) it is the paper's number
    assert math.floor(total / 1e5) / 10 == paper, (name, total)


def test_groupdec_is_groupdnet_decoder_with_an_ungrouped_encoder(meta_models):
    groupdec, groupdnet = meta_models["groupdec"], meta_models["groupdnet"]
    assert shapes(groupdec.netG) == shapes(groupdnet.netG)
    assert isinstance(groupdec.netE, GroupDecEncoder)
    convs = [m for m in groupdec.netE.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(conv.groups == 1 for conv in convs)
    assert convs[0].in_channels == 3  # the whole image, not per-class crops
    assert count(groupdec.netE) == 14_987_936  # baselines.md: "ungrouped encoder of width 96 ... (14.99 M)"


def test_groupenc_is_groupdnet_encoder_with_vspade_decoder(meta_models):
    groupenc, groupdnet, vspade = meta_models["groupenc"], meta_models["groupdnet"], meta_models["vspade"]
    assert shapes(groupenc.netE) == shapes(groupdnet.netE)
    ours, theirs = shapes(groupenc.netG), shapes(vspade.netG)
    assert ours.keys() == theirs.keys()
    assert {k for k in ours if ours[k] != theirs[k]} == {"fc.weight", "fc.bias"}
    assert ours["fc.weight"] == (1024, 64, 3, 3)  # Linear 256 -> 16384 became a 3x3 conv 64 -> 1024
    decoder_convs = [m for n, m in groupenc.netG.named_modules() if isinstance(m, nn.Conv2d)]
    assert all(conv.groups == 1 for conv in decoder_convs)


def test_groupnet_groups_every_layer_by_class_and_fuses_with_plain_convs(meta_models):
    model = meta_models["groupnet"]
    classes = model.dataset.semantic_nc
    for name, conv in model.netG.named_modules():
        if isinstance(conv, nn.Conv2d):
            expected = 1 if name.startswith(("fusion", "conv_img")) else classes
            assert conv.groups == expected, name
    for name, conv in model.netE.named_modules():
        if isinstance(conv, nn.Conv2d):
            assert conv.groups == classes, name
    assert len([m for m in model.netG.fusion if isinstance(m, nn.Conv2d)]) == 2


def test_mulnet_has_one_network_per_class(meta_models):
    model = meta_models["mulnet"]
    classes = model.dataset.semantic_nc
    assert len(model.netG.subnets) == len(model.netE.subnets) == classes
    sub_shapes = [shapes(sub) for sub in model.netG.subnets]
    assert all(s == sub_shapes[0] for s in sub_shapes)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert all(conv.groups == 1 for conv in convs)
    # each sub-network's CG-Norm sees one label channel: its own class mask
    first = model.netG.subnets[0].head_0.norm_0.mlp_shared[0]
    assert first.in_channels == 1


# ------------------------------------------------------------------------------------------- forwards


def run_forward(model, size: tuple[int, int], encode_size: tuple[int, int] | None = None) -> None:
    """Sample -> generate at ``size``; encode a random image (at ``encode_size``) -> generate from the mean."""
    model.eval()
    classes = model.dataset.semantic_nc
    g = torch.Generator().manual_seed(1)
    semantics = model.semantics(label_map(classes, size))
    z = model.sample_z(1, g)
    with torch.no_grad():
        image = model(semantics, z)
        assert image.shape == (1, 3, *size)
        assert torch.isfinite(image).all() and image.abs().max() <= 1
        encode_size = encode_size or size
        real = torch.rand(1, 3, *encode_size, generator=g) * 2 - 1
        enc_semantics = model.semantics(label_map(classes, encode_size, seed=2))
        if encode_size == size:
            mu, logvar = model.encode(real, enc_semantics)
            assert mu.shape == z.shape
            assert model(enc_semantics, mu).shape == (1, 3, *size)
        else:  # codes of another size than the sampled ones: straight from the encoder
            mu, logvar = model.netE(model.encoder_input(real, enc_semantics))
            assert mu.shape[:2] == z.shape[:2]
        assert mu.shape == logvar.shape
        assert torch.isfinite(mu).all() and torch.isfinite(logvar).all()


def real_size(model) -> tuple[int, int]:
    return model.dataset.size


@pytest.mark.parametrize("name", NAMES)
def test_synthetic_config_runs_at_real_and_small_resolution(name):
    model = build_model(name, "synthetic")
    run_forward(model, real_size(model))
    small = build_model(name, "synthetic", latent_hw=(1, 1))  # smallest start map: generation only
    scale = model.dataset.height // model.config.latent_hw[0]
    run_forward(small, (scale, scale), encode_size=(2 * scale, 2 * scale))  # instance norm needs 2x2 codes


@pytest.mark.parametrize("name", NAMES)
def test_deepfashion_config_runs_at_small_resolution(name):
    """The full-size networks on 64x64 (1x1 start map) and encoding 128x128 images: fast on CPU."""
    model = build_model(name, "deepfashion", latent_hw=(1, 1))
    run_forward(model, (64, 64), encode_size=(128, 128))


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_deepfashion_config_runs_at_real_resolution(name):
    model = build_model(name, "deepfashion")
    run_forward(model, (256, 256))


# ------------------------------------------------------------------------------- class separation


def _pre_fusion_separation(model, size: tuple[int, int]) -> None:
    classes = model.dataset.semantic_nc
    semantics = model.semantics(label_map(classes, size))
    g = torch.Generator().manual_seed(3)
    z = model.sample_z(1, g)
    for c in range(classes):
        redrawn = model.redraw(z, [c], g)
        with torch.no_grad():
            # one batch: BatchNorm's batch statistics are shared by both samples in training mode
            features = model.pre_fusion(torch.cat([semantics, semantics]), torch.cat([z, redrawn]))
        k = features.shape[1] // classes
        for d in range(classes):
            same = torch.equal(features[0, d * k : (d + 1) * k], features[1, d * k : (d + 1) * k])
            assert same == (d != c), (c, d)


@pytest.mark.parametrize("name", ["groupnet", "mulnet"])
@pytest.mark.parametrize("train_mode", [False, True])
def test_redrawing_one_class_changes_no_other_class_before_fusion(name, train_mode):
    model = build_model(name, "synthetic")
    model.train(train_mode)
    _pre_fusion_separation(model, model.dataset.size)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["groupnet", "mulnet"])
def test_redrawing_one_class_changes_no_other_class_before_fusion_deepfashion(name):
    model = build_model(name, "deepfashion", latent_hw=(1, 1)).eval()
    _pre_fusion_separation(model, (64, 64))


def _encoder_blocks(encoder: nn.Module, encoder_input, image: torch.Tensor, semantics: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        mu, _ = encoder(encoder_input(image, semantics))
    return mu.reshape(mu.shape[0], semantics.shape[1], -1)  # class c's code block at index c


def _change_inside_class(model, size, c):
    """Two images that differ only on class c's pixels, with the label map they share."""
    classes = model.dataset.semantic_nc
    label = label_map(classes, size)
    semantics = encode_semantics(label, model.dataset)
    g = torch.Generator().manual_seed(4)
    image = torch.rand(1, 3, *size, generator=g) * 2 - 1
    other = torch.where(label[:, None] == c, torch.rand(1, 3, *size, generator=g) * 2 - 1, image)
    return semantics, image, other


def encoder_only(model: nn.Module) -> nn.Module:
    """A fresh encoder of ``model``'s kind and config, in memory (``model`` may live on the meta device)."""
    encoder = type(model.netE)(model.config)
    xavier_init(encoder)
    return encoder.eval()


@pytest.mark.parametrize("name", ["groupenc", "groupnet", "mulnet"])
@pytest.mark.parametrize("dataset", ["synthetic", "deepfashion"])
def test_grouped_encoders_keep_classes_separate(meta_models, name, dataset):
    """Changing class c's pixels changes class c's code only (GroupDNet's encoder for GroupEnc/GroupNet)."""
    model = meta_models[name] if dataset == "deepfashion" else build_model(name, dataset)
    size = (128, 128) if dataset == "deepfashion" else model.dataset.size
    encoder = encoder_only(model)
    classes = model.dataset.semantic_nc
    for c in range(classes):
        semantics, image, other = _change_inside_class(model, size, c)
        before = _encoder_blocks(encoder, model.encoder_input, image, semantics)
        after = _encoder_blocks(encoder, model.encoder_input, other, semantics)
        for d in range(classes):
            assert torch.equal(before[:, d], after[:, d]) == (d != c), (c, d)


def test_groupdec_encoder_mixes_classes():
    """GroupDec's codes are per-class for the decoder only: its encoder lets every class's pixels reach
    every class's code block."""
    model = build_model("groupdec", "synthetic").eval()
    classes = model.dataset.semantic_nc
    semantics, image, other = _change_inside_class(model, model.dataset.size, 1)
    before = _encoder_blocks(model.netE, model.encoder_input, image, semantics)
    after = _encoder_blocks(model.netE, model.encoder_input, other, semantics)
    assert all(not torch.equal(before[:, d], after[:, d]) for d in range(classes))


def test_mulnet_twin_computes_groupnets_function():
    """Sec. 3.4: GroupNet equals MulNet when each group is as wide as one sub-network. Checked with
    spectral norm off (it normalises a grouped weight as one matrix, a sub-network's weight alone)."""
    groupnet = build_model("groupnet", "synthetic", spectral=False).eval()
    classes = groupnet.dataset.semantic_nc
    mulnet = MulNet(mulnet_from_groupnet(groupnet.config)).eval()
    mapped = {}
    for key, value in groupnet.state_dict().items():
        part, rest = key.split(".", 1)
        if rest.startswith(("fusion", "conv_img")):
            mapped[key] = value
            continue
        for c, piece in enumerate(value.chunk(classes) if value.dim() else [value] * classes):
            mapped[f"{part}.subnets.{c}.{rest}"] = piece
    mulnet.load_state_dict(mapped, strict=True)
    assert count(mulnet) == count(groupnet)

    size = groupnet.dataset.size
    semantics = groupnet.semantics(torch.cat([label_map(classes, size, seed=0), label_map(classes, size, seed=7)]))
    z = groupnet.sample_z(2, torch.Generator().manual_seed(5))
    image = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(6)) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(
            mulnet.pre_fusion(semantics, z), groupnet.pre_fusion(semantics, z), rtol=1e-4, atol=1e-5
        )
        torch.testing.assert_close(mulnet(semantics, z), groupnet(semantics, z), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(
            mulnet.encode(image, semantics), groupnet.encode(image, semantics), rtol=1e-4, atol=1e-5
        )


def test_latent_layout_matches_the_class_grouped_code_maps():
    for name in NAMES:
        model = build_model(name, "synthetic")
        classes = model.dataset.semantic_nc
        z = model.sample_z(2, torch.Generator().manual_seed(0))
        assert z.shape[1] == classes * model.config.z_per_class
        redrawn = model.redraw(z, [2], torch.Generator().manual_seed(9))
        changed = (redrawn != z).flatten(2).any(dim=2).any(dim=0)  # per channel
        per_class = model.config.z_per_class
        assert changed.nonzero().flatten().tolist() == list(range(2 * per_class, 3 * per_class))


def test_groupnet_refuses_a_ladder_with_fewer_groups_than_classes():
    decreasing = model_config("groupdnet", "synthetic").blocks  # GroupDNet's C, C, C/2, ... 1
    with pytest.raises(SmisbenchError, match="one group per class"):
        build_model("groupnet", "synthetic", blocks=decreasing)


def test_mulnet_refuses_grouped_sub_networks():
    config = model_config("mulnet", "synthetic")
    grouped = tuple(dataclasses.replace(spec, groups=2) for spec in config.blocks)
    with pytest.raises(SmisbenchError, match="ungrouped"):
        build_model("mulnet", "synthetic", blocks=grouped)
