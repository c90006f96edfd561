"""GroupDNet and SPADE/VSPADE: exact official sizes and keys, strict checkpoint loading, SMIS sampling."""

from __future__ import annotations

import json

import pytest
import torch

from smisbench.cli import main
from smisbench.errors import LabelMapError, WeightsError
from smisbench.models import smis
from smisbench.models.checkpoints import load_bundle, load_into, save_bundle
from smisbench.models.registry import build_discriminator, build_model, model_config

# Official counts (groupdnet.md), copied inline so the test never passes vacuously without ../shared.
OFFICIAL_COUNTS = {
    ("groupdnet", "deepfashion"): (96_324_451, 12_835_712, 5_544_066),
    ("groupdnet", "cityscapes"): (76_501_358, 5_768_210, 5_601_410),
    ("groupdnet", "ade20k"): (68_326_847, 4_411_012, 5_836_930),
    ("vspade", "deepfashion"): (96_345_283, 10_463_424, 5_544_066),
    ("spade", "cityscapes"): (101_136_579, 0, 5_601_410),
    ("spade", "ade20k"): (111_942_595, 0, 5_836_930),
}
LISTINGS = {
    ("groupdnet", "deepfashion"): "groupdnet_deepfashion",
    ("groupdnet", "cityscapes"): "groupdnet_cityscapes",
    ("groupdnet", "ade20k"): "groupdnet_ade20k",
    ("vspade", "deepfashion"): "vspade_deepfashion8",
    ("spade", "cityscapes"): "spade_cityscapes",
    ("spade", "ade20k"): "spade_ade20k",
    ("vspade", "cityscapes"): "spade_cityscapes",  # the encoder listing of the release config
}


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def meta_parts(name: str, dataset: str) -> dict[str, torch.nn.Module]:
    with torch.device("meta"):
        model = build_model(name, dataset)
        parts = {"G": model.netG, "D": build_discriminator(name, dataset)}
        if model.netE is not None:
            parts["E"] = model.netE
    return parts


@pytest.mark.parametrize("key", list(OFFICIAL_COUNTS), ids=lambda k: "-".join(k))
def test_parameter_counts_equal_the_official_networks(key):
    parts = meta_parts(*key)
    g, e, d = OFFICIAL_COUNTS[key]
    assert count(parts["G"]) == g
    assert count(parts["D"]) == d
    assert (count(parts["E"]) if "E" in parts else 0) == e


def read_listing(path) -> dict[str, tuple[int, ...]]:
    out = {}
    for line in path.read_text().splitlines():
        if line.strip():
            name, shape = line.split(" ", 1)
            out[name] = tuple(int(x) for x in shape.strip("() ").split(",") if x.strip())
    return out


@pytest.mark.parametrize("key", list(LISTINGS), ids=lambda k: "-".join(k))
def test_state_dict_keys_and_shapes_equal_the_official_listings(key, official_keys):
    parts = meta_parts(*key)
    checked = 0
    for part, module in parts.items():
        listing = official_keys / f"{LISTINGS[key]}_{part}.txt"
        if not listing.exists():
            continue
        ours = {k: tuple(v.shape) for k, v in module.state_dict().items()}
        theirs = read_listing(listing)
        assert list(ours) == list(theirs), f"{listing.name}: key names or order differ"
        assert ours == theirs, f"{listing.name}: shapes differ"
        checked += 1
    assert checked >= 2


def test_official_layout_checkpoint_loads_strictly_and_reproduces_outputs(tmp_path):
    """A file with exactly the official keys (DataParallel prefix included) and random values round-trips."""
    torch.manual_seed(0)
    source = build_model("groupdnet", "deepfashion").eval()
    for p in source.netG.parameters():
        p.data.normal_(0, 0.02)
    path = tmp_path / "latest_net_G.pth"
    torch.save({"module." + k: v for k, v in source.netG.state_dict().items()}, path)

    target = build_model("groupdnet", "deepfashion").eval()
    report = load_into(target.netG, path)
    assert report.fits and report.stripped_prefix == "module."
    label = torch.randint(0, 8, (1, 256, 256))
    semantics = source.semantics(label)
    z = source.sample_z(1, torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = source.generate(semantics, z)
        got = target.generate(semantics, z)
    assert expected.shape == (1, 3, 256, 256)
    assert torch.equal(expected, got)


def test_a_checkpoint_that_does_not_fit_names_the_keys(tmp_path):
    model = build_model("vspade", "synthetic")
    state = model.netG.state_dict()
    state.pop("conv_img.bias")
    state["extra.weight"] = torch.zeros(1)
    state["fc.weight"] = torch.zeros(3, 3)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError) as err:
        load_into(model.netG, path)
    text = str(err.value)
    assert "conv_img.bias" in text and "extra.weight" in text and "fc.weight" in text and "(3, 3)" in text


def test_corrupt_checkpoint_is_reported(tmp_path):
    path = tmp_path / "latest_net_G.pth"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot read checkpoint"):
        load_into(build_model("groupdnet", "synthetic").netG, path)


@pytest.mark.parametrize(
    "name,dataset,size,z_shape",
    [
        ("groupdnet", "deepfashion", (256, 256), (64, 4, 4)),
        ("groupdnet", "cityscapes", (256, 512), (280, 4, 8)),
        ("groupdnet", "ade20k", (256, 256), (1208, 4, 4)),
        ("vspade", "deepfashion", (256, 256), (256,)),
    ],
)
def test_forward_shapes_at_the_real_resolution(name, dataset, size, z_shape):
    torch.set_num_threads(2)
    model = build_model(name, dataset).eval()
    label = torch.randint(0, model.dataset.label_nc, (1, *size))
    semantics = model.semantics(label, torch.randint(0, 3, (1, *size)) if model.dataset.use_instance else None)
    image = torch.rand(1, 3, *size) * 2 - 1
    with torch.no_grad():
        mu, logvar = model.encode(image, semantics)
        assert mu.shape == logvar.shape == (1, *z_shape)
        out = model.generate(semantics, mu)
    assert out.shape == (1, 3, *size)
    assert out.abs().max() <= 1


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = build_model("groupdnet", "synthetic").eval()
    label = torch.zeros(1, 64, 64, dtype=torch.long)
    label[:, 10:40, 5:30] = 1
    label[:, 30:60, 35:60] = 2
    return model, label


def test_smis_sampling_leaves_other_classes_codes_bit_identical(tiny):
    model, label = tiny
    gen = torch.Generator().manual_seed(3)
    base = model.sample_z(1, gen)
    codes = smis.class_codes(model, 4, 2, gen, base)
    view, base_view = model.class_view(codes), model.class_view(base)
    others = [c for c in range(view.shape[1]) if c != 2]
    assert torch.equal(view[:, others], base_view[:, others].expand(4, -1, -1, -1))
    assert not torch.equal(view[0, 2], base_view[0, 2])
    assert not torch.equal(view[0, 2], view[1, 2])


def test_sampling_is_deterministic_given_a_seed(tiny):
    model, label = tiny
    semantics = model.semantics(label)
    a = smis.sample_class(model, semantics, 1, 2, torch.Generator().manual_seed(5))
    b = smis.sample_class(model, semantics, 1, 2, torch.Generator().manual_seed(5))
    c = smis.sample_class(model, semantics, 1, 2, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_mixture_and_morphing_shapes_and_endpoints(tiny):
    model, label = tiny
    semantics = model.semantics(label)
    gen = torch.Generator().manual_seed(0)
    images = [torch.rand(1, 3, 64, 64, generator=gen) * 2 - 1 for _ in range(2)]
    z_a, z_b = (smis.encode(model, img, semantics) for img in images)
    morph = smis.morph_codes(model, z_a, z_b, [0.0, 0.5, 1.0, 1.5])
    out = smis.render(model, semantics, morph)
    assert out.shape == (4, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(out[0:1], model.generate(semantics, z_a), atol=1e-6)
        assert torch.allclose(out[2:3], model.generate(semantics, z_b), atol=1e-6)
    assert not torch.allclose(out[3], out[2])  # extrapolation moves past z_b
    mixed = smis.mix_codes(model, [z_a, z_b], {1: 1})
    view = model.class_view(mixed)
    assert torch.equal(view[:, 1], model.class_view(z_b)[:, 1])
    assert torch.equal(view[:, 0], model.class_view(z_a)[:, 0])
    assert torch.equal(view[:, 2], model.class_view(z_a)[:, 2])
    only_one = model.class_view(smis.morph_codes(model, z_a, z_b, [1.0], classes=[2]))
    assert torch.equal(only_one[:, 2], model.class_view(z_b)[:, 2])
    assert torch.equal(only_one[:, 1], model.class_view(z_a)[:, 1])


def test_split_crops_each_class_to_its_bounding_box(tiny):
    from smisbench.models.groupdnet import split_by_class

    _, label = tiny
    model = build_model("groupdnet", "synthetic")
    semantics = model.semantics(label)
    image = torch.arange(64.0).view(1, 1, 1, 64).expand(1, 3, 64, 64).contiguous()
    crops = split_by_class(image, semantics[:, : model.dataset.semantic_nc])
    class1 = crops[0, 3:6]
    # class 1 spans columns 5..29: the crop stretches them over the full width, left edge = column 5
    assert class1[0, 0, 0] == 5 and class1[0, 0, -1] == 29
    absent = model.dataset.semantic_nc - 1
    assert crops[0, 3 * absent : 3 * absent + 3].abs().sum() == 0


def test_global_models_refuse_per_class_operations():
    model = build_model("vspade", "synthetic")
    with pytest.raises(Exception, match="per-class"):
        smis.sample_class(model, model.semantics(torch.zeros(1, 64, 64, dtype=torch.long)), 0, 1, torch.Generator())


@pytest.mark.parametrize(
    "label,match",
    [
        (torch.full((1, 64, 64), 99, dtype=torch.long), r"label values \[99\].*outside"),
        (torch.rand(1, 64, 64), "integer class ids"),
        (torch.zeros(2, 3, 64, 64, dtype=torch.long), "shape"),
        (torch.full((64, 64), -1, dtype=torch.long), r"\[-1\]"),
    ],
)
def test_bad_label_maps_raise_documented_errors(label, match):
    model = build_model("groupdnet", "synthetic")
    with pytest.raises(LabelMapError, match=match) as err:
        model.semantics(label, source="frame_0001.png")
    assert "frame_0001.png" in str(err.value) and "fix:" in str(err.value)


def test_image_label_size_mismatch_is_refused():
    from smisbench.labels import check_same_size

    with pytest.raises(LabelMapError, match=r"\(64, 64\).*\(32, 64\)"):
        check_same_size(torch.zeros(3, 64, 64), torch.zeros(32, 64), "pair 7")


def test_unknown_names_list_the_known_ones():
    with pytest.raises(KeyError, match="groupdnet"):
        build_model("groupdnett", "deepfashion")
    with pytest.raises(Exception, match="deepfashion"):
        model_config("groupdnet", "celeba")


def test_bundle_round_trip(tmp_path, tiny):
    model, label = tiny
    path = tmp_path / "m.pt"
    save_bundle(path, model, model.config, {"note": "x"})
    again, info = load_bundle(path)
    assert again.config == model.config and info["note"] == "x" and len(info["sha256"]) == 64
    z = model.sample_z(1, torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(model.eval().generate(model.semantics(label), z), again.eval().generate(model.semantics(label), z))


def test_cli_models_json_lists_counts(capsys):
    assert main(["models", "--json", "--dataset", "deepfashion"]) == 0
    rows = {(r["model"], r["dataset"]): r for r in json.loads(capsys.readouterr().out)}
    assert rows[("groupdnet", "deepfashion")]["G"] == 96_324_451
    assert rows[("groupdnet", "deepfashion")]["E"] == 12_835_712
    assert rows[("vspade", "deepfashion")]["G+E"] == 96_345_283 + 10_463_424


def test_cli_inspect_checkpoint_exit_codes(tmp_path, capsys):
    model = build_model("groupdnet", "synthetic")
    good, bad = tmp_path / "good.pth", tmp_path / "bad.pth"
    torch.save(model.netE.state_dict(), good)
    torch.save(model.netG.state_dict(), bad)
    assert main(["inspect-checkpoint", str(good), "--model", "groupdnet", "--dataset", "synthetic", "--part", "E"]) == 0
    assert "OK" in capsys.readouterr().out
    assert main(["inspect-checkpoint", str(bad), "--model", "groupdnet", "--dataset", "synthetic", "--part", "E"]) == 1
    out = capsys.readouterr().out
    assert "missing keys" in out and "layer1.0.weight_orig" in out and "unexpected keys" in out
