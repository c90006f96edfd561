"""Protocol presets as data: listed with every field, accepted everywhere, and reaching the metric code."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from conftest_weights import provisioned_weights  # noqa: F401
from smisbench.cli import main
from smisbench.errors import SmisbenchError
from smisbench.metrics.presets import PRESETS, get_preset
from smisbench.metrics.protocol import EvalProtocol, protocol_fields

REPO = Path(__file__).resolve().parents[1]
SHARED_SAMPLES = REPO.parent / "shared" / "data" / "samples"
COCO = SHARED_SAMPLES / "spade_coco_stuff" / "datasets" / "coco_stuff"
FOUR = ["groupdnet2020", "spade2019", "oasis2021", "clean"]
SPEC = """\
name = "p"
metrics = ["fid"]
{top}
[protocol]
{protocol}
[[datasets]]
name = "cityscapes"
{dataset}
[[datasets]]
name = "synthetic"
[[models]]
name = "groupdnet"
"""
USER_PRESET = """\
name = "mine"
description = "clean FID, our own Cityscapes size"
base = "spade2019"
metrics = ["fid"]
[protocol]
fid_resize = "clean"
m = 7
[datasets.cityscapes]
image_size = [128, 256]
segmenter_checkpoints = ["drn.pth"]
[sources]
m = "our lab"
"""


def _spec(top: str = "", protocol: str = "", dataset: str = "", source: str = "<spec>"):
    from smisbench.benchmark.spec import parse_spec

    return parse_spec(SPEC.format(top=top, protocol=protocol, dataset=dataset), source)


# ----------------------------------------------------------------------------- the table and its renderings
def test_protocols_json_lists_the_four_presets_with_every_field(capsys):
    assert main(["protocols", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["presets"]
    assert [p["name"] for p in listed] == FOUR
    names = {f.name for f in protocol_fields()}
    for preset in listed:
        assert set(preset["fields"]) == names and preset["sources"] and preset["description"]
        assert set(preset["datasets"]) == {"deepfashion", "cityscapes", "ade20k"}
        assert all(set(fields) == names for fields in preset["datasets"].values())
    by_name = {p["name"]: p for p in listed}
    assert by_name["clean"]["fields"]["fid_resize"] == "clean"
    assert by_name["groupdnet2020"]["fields"]["fid_resize"] == "legacy_pytorch"
    assert by_name["spade2019"]["fields"]["dont_care"] == "counted"
    assert by_name["groupdnet2020"]["fields"]["dont_care"] == "ignored"
    city = by_name["oasis2021"]["datasets"]["cityscapes"]
    assert city["image_size"] == [256, 512] and city["fid_samples"] == 500 and city["scoring_protocol"] == \
        "cityscapes-drn105"
    assert by_name["oasis2021"]["datasets"]["ade20k"]["scoring_protocol"] == "ade20k-upernet101-256"


def test_protocols_table_has_a_row_for_every_field(capsys):
    assert main(["protocols"]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("field "))
    assert header.split() == ["field", *FOUR]
    rows = {line.split()[0] for line in out.splitlines()[out.splitlines().index(header) + 2:] if line}
    assert {f.name for f in protocol_fields()} - {"preset"} <= rows
    assert re.search(r"^scoring_protocol \[cityscapes\]\s+cityscapes-drn105-fullres\s+cityscapes-drn105-fullres"
                     r"\s+cityscapes-drn105\s", out, re.M)


def test_every_builtin_preset_names_its_sources_and_makes_valid_records():
    from smisbench.segmenters.protocol import get_protocol
    from smisbench.segmenters.registry import get_spec

    for preset in PRESETS.values():
        set_fields = set(preset.protocol) | {k for f in preset.datasets.values() for k in f}
        assert set_fields <= set(preset.sources), f"{preset.name}: a value without a source"
        for dataset in (None, *preset.datasets):
            protocol = preset.eval_protocol(dataset)
            assert protocol.preset == preset.name
            if protocol.scoring_protocol:  # a scoring protocol of the preset's segmenter, on the dataset
                scoring = get_protocol(protocol.scoring_protocol)
                assert scoring.segmenter == protocol.segmenter and get_spec(scoring.segmenter).dataset == dataset


def test_docs_presets_md_is_generated_from_the_table():
    from smisbench.metrics.presets_docs import docs_markdown

    docs = REPO / "docs" / "presets.md"
    if not docs.is_file():
        pytest.skip(f"{docs} is not part of this installation")
    assert docs.read_text(encoding="utf-8") == docs_markdown(), "regenerate it with presets_docs.docs_markdown()"


def test_readme_holds_the_generated_preset_table():
    from smisbench.metrics.presets_docs import readme_section

    readme = REPO / "README.md"
    if not readme.is_file():
        pytest.skip(f"{readme} is not part of this installation")
    text = readme.read_text(encoding="utf-8")
    assert "## Protocol presets" in text and readme_section() in text, "paste presets_docs.readme_section()"


# ----------------------------------------------------------------------------- names and files
def test_unknown_preset_is_an_error_whose_fix_lists_the_names(capsys, tmp_path):
    with pytest.raises(SmisbenchError, match="unknown preset 'cvpr2019'") as err:
        get_preset("cvpr2019")
    assert all(name in err.value.fix for name in FOUR)
    for argv in (["protocols", "cvpr2019"], ["fid", str(tmp_path), str(tmp_path), "--preset", "cvpr2019"],
                 ["score", "--model", "groupdnet", "--dataset", "synthetic", "--preset", "cvpr2019"],
                 ["segment", "--images", "a", "--labels", "b", "--preset", "cvpr2019", "--dataset", "ade20k"]):
        assert main(argv) == 2, argv
        err_text = capsys.readouterr().err
        assert "error: unknown preset 'cvpr2019'" in err_text and "fix: use one of: groupdnet2020" in err_text
        assert "Traceback" not in err_text


def test_a_user_preset_file_derives_from_a_base_and_works_everywhere(tmp_path):
    from smisbench.metrics.cli import fid_settings
    from smisbench.samples.cli import protocol_from

    path = tmp_path / "mine.toml"
    path.write_text(USER_PRESET)
    preset = get_preset(str(path))
    assert preset.name == "mine" and preset.metrics == ("fid",) and preset.source == str(path)
    city = preset.eval_protocol("cityscapes")
    assert (city.fid_resize, city.m, city.dont_care, city.image_size) == ("clean", 7, "counted", (128, 256))
    assert city.scoring_protocol == "cityscapes-drn105-fullres"  # from its base, spade2019
    assert preset.sources["m"] == "our lab" and preset.sources["dont_care"].startswith("as spade2019: ")
    # a spec, score-samples, fid and segment take it as they take a built-in name
    spec = _spec(top=f'preset = "{path}"')
    assert spec.protocol["preset"] == "mine" and spec.protocol["m"] == 7
    assert spec.datasets[0].protocol["image_size"] == [128, 256]
    assert protocol_from(str(path), ["m=3"], "cityscapes")[0].replace(m=7) == city
    args = type("Args", (), {"preset": str(path), "dataset": "cityscapes", "size": None, "resize_filter": None,
                             "fid_resize": None})()
    assert fid_settings(args) == {"preset": "mine", "fid_resize": "clean", "resize_filter": "bilinear",
                                  "image_size": (128, 256)}
    seg = _segment_args(preset=str(path), dataset="cityscapes")
    _apply(seg)
    assert (seg.segmenter, seg.protocol, seg.dont_care, seg.checkpoint) == (
        "drn_d_105_cityscapes", "cityscapes-drn105-fullres", "counted", ["drn.pth"])


@pytest.mark.parametrize("text, problem", [
    ("[datasets.cityscapes]\nseed = 1\n", "datasets.cityscapes.seed cannot differ per dataset"),
    ("[protocol]\npreset = \"x\"\n", "protocol.preset is not a protocol field a preset may set"),
    ("[datasets]\ncityscapes = 3\n", "datasets must hold one table per dataset"),
    ("base = \"cvpr\"\n", "unknown preset 'cvpr'"),
    ("[datasets.ade20k]\nfid_resize = \"bicubic\"\n", "datasets.ade20k.fid_resize 'bicubic' is not allowed"),
    ("[sources]\nm = 3\n", "sources must map field names to strings"),
])
def test_bad_user_presets_are_refused(tmp_path, text, problem):
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(SmisbenchError, match=re.escape(problem)):
        get_preset(str(path))


# ----------------------------------------------------------------------------- specs
def test_a_spec_with_a_preset_gets_its_fields_under_the_ones_it_writes():
    spec = _spec(top='preset = "oasis2021"', protocol="n = 4\nresize_filter = \"area\"")
    p = spec.protocol
    assert (p["preset"], p["n"], p["m"], p["lpips_net"], p["fid_resize"], p["resize_filter"]) == (
        "oasis2021", 4, 19, "vgg", "legacy_pytorch", "area")
    city, synthetic = spec.datasets
    assert city.protocol == {"fid_samples": 500, "image_size": [256, 512], "segmenter": "drn_d_105_cityscapes",
                             "scoring_protocol": "cityscapes-drn105"}
    assert synthetic.protocol == {}
    # in [protocol] instead of at the top: the same
    assert _spec(protocol='preset = "oasis2021"\nn = 4\nresize_filter = "area"').protocol == p
    # a field the spec writes at the top level is not replaced by the preset's per-dataset value
    written = _spec(top='preset = "oasis2021"', protocol="image_size = [64, 64]")
    assert "image_size" not in written.datasets[0].protocol and written.protocol["image_size"] == [64, 64]
    # nor one the dataset writes itself
    mine = _spec(top='preset = "oasis2021"', dataset="protocol = { fid_samples = 10 }")
    assert mine.datasets[0].protocol["fid_samples"] == 10
    assert _spec().protocol["preset"] is None


def test_spec_preset_mistakes_are_named_at_their_key(tmp_path):
    from smisbench.benchmark.spec import SpecError

    with pytest.raises(SpecError, match=r"<spec>: preset: unknown preset 'cvpr'") as err:
        _spec(top='preset = "cvpr"')
    assert "groupdnet2020" in err.value.fix
    with pytest.raises(SpecError, match="is set both here and under"):
        _spec(top='preset = "clean"', protocol='preset = "clean"')
    with pytest.raises(SpecError, match=r"datasets\[0\]\.protocol\.preset: can only be set for the whole spec"):
        _spec(dataset='protocol = { preset = "clean" }')
    # a relative preset file is found beside the spec file
    (tmp_path / "mine.toml").write_text(USER_PRESET)
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(SPEC.format(top='preset = "mine.toml"', protocol="", dataset=""))
    assert _spec(top='preset = "mine.toml"', source=str(spec_file)).protocol["preset"] == "mine"


def test_cell_keys_follow_the_fields_not_the_preset_name(tmp_path):
    from smisbench.benchmark.cells import expand_cells

    def keys(spec):
        return [c.key for c in expand_cells(spec)]

    named = _spec(top='preset = "clean"')
    fields = "\n".join(f"{k} = {json.dumps(v)}" for k, v in PRESETS["clean"].protocol.items())
    cityscapes = ", ".join(f"{k} = {json.dumps(v)}" for k, v in PRESETS["clean"].datasets["cityscapes"].items())
    written = _spec(protocol=fields, dataset=f"protocol = {{ {cityscapes} }}")
    assert named.protocol["preset"] == "clean" and written.protocol["preset"] is None
    assert keys(named) == keys(written)  # same fields, same keys: the name is recorded, not keyed
    (tmp_path / "copy.toml").write_text('base = "clean"\nname = "copy"\n')
    assert keys(_spec(top=f'preset = "{tmp_path / "copy.toml"}"')) == keys(named)
    other = keys(_spec(top='preset = "groupdnet2020"'))
    assert other[0] != keys(named)[0] and other[1] != keys(named)[1]  # fid_resize differs for every dataset


def test_score_writes_the_preset_into_its_spec_and_records_its_name():
    from smisbench.benchmark.score import ScoreRequest, build_spec

    spec = build_spec(ScoreRequest(model="groupdnet", dataset="synthetic", preset="oasis2021", device="cpu"))
    assert 'preset = "oasis2021"' in spec.text
    assert spec.protocol["preset"] == "oasis2021" and spec.protocol["lpips_net"] == "vgg"
    assert spec.metrics == PRESETS["oasis2021"].metrics


def test_score_samples_preset_is_a_protocol_preset_and_spec_a_spec():
    from smisbench.samples.cli import protocol_from

    protocol, table = protocol_from("oasis2021", ["m=3"], "cityscapes")
    assert (protocol.preset, protocol.m, protocol.lpips_net, protocol.image_size, table) == (
        "oasis2021", 3, "vgg", (256, 512), None)
    protocol, table = protocol_from(None, [], "synthetic", spec="demo")
    assert table == "demo" and protocol.n == 8 and protocol.segmenter == "synthetic-fcn"
    with pytest.raises(SmisbenchError, match="unknown preset 'demo'"):
        protocol_from("demo", [], "synthetic")


def test_a_preset_names_segmenters_but_scores_mIoU_only_where_one_can_run():
    from smisbench.samples.score import default_metrics

    city = get_preset("groupdnet2020").eval_protocol("cityscapes")
    assert city.segmenter == "drn_d_105_cityscapes" and "miou" not in default_metrics(city, True)
    assert "miou" in default_metrics(city.replace(segmenter_checkpoints=("drn.pth",)), True)


# ----------------------------------------------------------------------------- segment --preset
def _segment_args(**given):
    from smisbench.segmenters.cli import register

    import argparse

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    argv = ["segment", "--images", "a", "--labels", "b"]
    for key, value in given.items():
        argv += [f"--{key.replace('_', '-')}", value]
    return parser.parse_args(argv)


def _apply(args):
    from smisbench.segmenters.cli import apply_preset

    return apply_preset(args)


def test_segment_takes_the_scoring_fields_of_the_preset_for_the_dataset():
    args = _segment_args(preset="oasis2021", dataset="ade20k")
    assert _apply(args) == "oasis2021"
    assert (args.segmenter, args.protocol, args.dont_care) == (
        "csail_upernet101_ade20k", "ade20k-upernet101-256", "ignored")
    args = _segment_args(preset="spade2019", segmenter="drn_d_105_cityscapes")  # the dataset from the segmenter
    _apply(args)
    assert (args.protocol, args.dont_care) == ("cityscapes-drn105-fullres", "counted")
    args = _segment_args(preset="spade2019", protocol="cityscapes-drn105", dont_care="ignored")  # flags win
    _apply(args)
    assert (args.segmenter, args.protocol, args.dont_care) == (None, "cityscapes-drn105", "ignored")


def test_segment_predictions_under_spade2019_count_the_dont_care_pixels(samples, tmp_path, capsys):
    """The ADE20K sample's predictions equal its annotations: accuracy 1 with "other" ignored, less counted."""
    from smisbench.segmenters.label_conventions import get_label_convention
    from smisbench.segmenters.score_folder import read_label

    root = samples / "ade20k_sceneparsing" / "sampleData"
    labels = [read_label(p) for p in sorted((root / "annotations").glob("*.png"))]
    other = sum(int((label == 0).sum()) for label in labels) / sum(label.size for label in labels)
    assert get_label_convention("ade20k_sceneparsing").ignore_index == 255 and 0 < other < 1
    accuracy = {}
    for preset in ("groupdnet2020", "spade2019"):
        out = tmp_path / preset
        assert main(["segment", "--predictions", "--images", str(root / "predictions"), "--labels",
                     str(root / "annotations"), "--preset", preset, "--dataset", "ade20k", "--out", str(out),
                     "--no-progress"]) == 0
        scores = json.loads((out / "scores.json").read_text())
        assert scores["protocol"]["preset"] == preset
        accuracy[preset] = scores["summary"]["pixel_accuracy"]
        assert scores["summary"]["mIoU"] == pytest.approx(0.1)  # sceneparsing rule, from the preset's protocol
    capsys.readouterr()
    assert accuracy["groupdnet2020"] == 1.0
    assert accuracy["spade2019"] == pytest.approx(1.0 - other)


# ----------------------------------------------------------------------------- don't-care pixels
def test_dont_care_counted_or_ignored_on_a_known_matrix():
    from smisbench.segmenters.confusion import ConfusionMatrix

    confusion = ConfusionMatrix(3, ignore_index=255)
    target = torch.tensor([[0, 0, 1, 1, 2], [2, 255, 255, 255, 255]])
    prediction = torch.tensor([[0, 1, 1, 1, 2], [0, 0, 1, 2, 0]])
    confusion.update(prediction, target)
    # 6 scored pixels, 4 of them right; 4 don't-care pixels, never right
    assert confusion.total == 6 and confusion.ignored == 4
    assert confusion.pixel_accuracy("ignored") == pytest.approx(4 / 6) == confusion.pixel_accuracy()
    assert confusion.pixel_accuracy("counted") == pytest.approx(4 / 10)
    assert confusion.mean_iou() == ConfusionMatrix.from_dict(confusion.to_dict()).mean_iou()
    again = ConfusionMatrix.from_dict(confusion.to_dict()) + confusion
    assert again.ignored == 8 and again.pixel_accuracy("counted") == pytest.approx(8 / 20)
    summary = confusion.summary("nanmean", "counted")
    assert summary["pixel_accuracy"] == pytest.approx(0.4) and summary["dont_care_pixels"] == 4
    with pytest.raises(SmisbenchError, match="don't-care rule 'both'"):
        confusion.pixel_accuracy("both")


def test_the_dont_care_field_reaches_the_segmentation_metric(monkeypatch):
    """EvalProtocol.dont_care (a preset's) decides the accuracy the metric reports from the same matrix;
    the scoring protocol's loading options (one short side of 256) reach the segmenter's loader."""
    from smisbench.data.synthetic import SyntheticSMIS
    from smisbench.metrics.registry import EvalContext
    from smisbench.segmenters import metric, registry
    from smisbench.segmenters.confusion import ConfusionMatrix

    loaded = []

    class Fake:
        classes = tuple(str(i) for i in range(150))

        def describe(self):
            return {"segmenter": "fake"}

    def fake_load(name, checkpoints, **options):
        loaded.append(options)
        return Fake()

    monkeypatch.setattr(registry, "load_segmenter", fake_load)
    data = SyntheticSMIS("test", length=2)
    values = {}
    for preset in ("groupdnet2020", "spade2019", "oasis2021"):
        protocol = get_preset(preset).eval_protocol("ade20k", segmenter_checkpoints=("enc.pth", "dec.pth"))
        ctx = EvalContext(None, data, data.config, protocol, torch.device("cpu"))
        state = metric._segmenter(ctx)
        state["confusion"] = ConfusionMatrix(150, 255, torch.diag(torch.full((150,), 3, dtype=torch.int64)), 450)
        ctx.shared["segmentation"] = state
        values[preset] = metric.SegmentationMetric(ctx).finish(ctx)
        assert ctx.provenance["scoring_protocol"]["dont_care"] == protocol.dont_care
    assert values["groupdnet2020"]["accuracy"] == 1.0 and values["spade2019"]["accuracy"] == pytest.approx(0.5)
    assert values["groupdnet2020"]["miou"] == values["spade2019"]["miou"] == 1.0
    assert loaded[0] == {"device": "cpu", "expected_sha256": {}, "multi_scale": True}  # CSAIL's multi-scale
    assert loaded[2] == {"device": "cpu", "expected_sha256": {}, "multi_scale": False, "short_sides": (256,)}


# ----------------------------------------------------------------------------- FID: the resize reaches Inception
def _high_frequency(count: int = 3, size: int = 64) -> torch.Tensor:
    """uint8 images of fine stripes and noise: where resize filters differ most."""
    generator = torch.Generator().manual_seed(3)
    stripes = (torch.arange(size) % 2 * 200 + 25).float().view(1, 1, 1, size).expand(count, 3, size, size)
    noise = torch.randint(-25, 25, (count, 3, size, size), generator=generator)
    return (stripes + noise).clamp(0, 255).to(torch.uint8)


def test_each_fid_resize_feeds_inception_differently(inception_weights):
    from smisbench.metrics.fid import load_inception
    from smisbench.metrics.inception_input import inception_features, pool_features_of_floats

    extractor = load_inception(inception_weights)
    images = _high_frequency()
    features = {mode: inception_features(extractor, images, mode) for mode in ("legacy_tf", "legacy_pytorch", "clean")}
    # legacy_pytorch is pytorch-fid's resize and scaling, written out here
    by_hand = F.interpolate(images.float(), size=(299, 299), mode="bilinear", align_corners=False)
    assert torch.allclose(features["legacy_pytorch"], pool_features_of_floats(extractor, by_hand, (127.5, 127.5)),
                          atol=1e-4)
    for a, b in (("legacy_tf", "legacy_pytorch"), ("legacy_pytorch", "clean"), ("legacy_tf", "clean")):
        gap = (features[a] - features[b]).norm() / features[a].norm()
        assert gap > 1e-2, f"{a} and {b} gave the same features"


@pytest.fixture(scope="module")
def inception_weights(provisioned_weights):  # noqa: F811
    return provisioned_weights


def _fid(capsys, *argv: str) -> tuple[float, str]:
    assert main(["fid", *argv]) == 0
    out = capsys.readouterr().out
    return float(out.strip().splitlines()[-1]), out


def _folders(tmp_path: Path) -> tuple[Path, Path]:
    from PIL import Image

    folders = []
    for name, seed in (("a", 0), ("b", 1)):
        folder = tmp_path / name
        folder.mkdir()
        generator = torch.Generator().manual_seed(seed)
        for i in range(4):
            size = 48 + 16 * i  # mixed sizes: the preset's resize_filter is used too
            image = torch.randint(0, 256, (size, size, 3), generator=generator, dtype=torch.uint8)
            Image.fromarray(image.numpy()).save(folder / f"{i}.png")
        folders.append(folder)
    return folders[0], folders[1]


@pytest.mark.slow  # two 2048x2048 eigen-decompositions (torch-fidelity's FID)
def test_the_same_folders_give_another_fid_under_clean_than_under_groupdnet2020(inception_weights, tmp_path,
                                                                                  capsys):
    a, b = _folders(tmp_path)
    weights = ["--weights-dir", str(inception_weights)]
    clean, out = _fid(capsys, str(a), str(b), "--preset", "clean", *weights)
    assert "preset clean, fid_resize clean" in out and "with bicubic-antialias" in out
    paper, out = _fid(capsys, str(a), str(b), "--preset", "groupdnet2020", *weights)
    assert "preset groupdnet2020, fid_resize legacy_pytorch" in out and "with bilinear" in out
    assert math.isfinite(clean) and math.isfinite(paper) and abs(clean - paper) > 1e-3 * max(clean, paper)


@pytest.mark.slow  # four FIDs on 21 real photos
@pytest.mark.parametrize("preset", FOUR)
def test_the_mixed_size_coco_photos_score_under_every_preset(preset, inception_weights, capsys):
    if not COCO.exists():
        pytest.skip(f"{COCO} is absent: the shared data folder ../shared is not beside this checkout")
    from PIL import Image

    assert len({Image.open(p).size for p in (COCO / "val_img").iterdir()}) > 1  # really of mixed sizes
    value, out = _fid(capsys, str(COCO / "val_img"), str(COCO / "train_img"), "--preset", preset,
                      "--weights-dir", str(inception_weights))
    assert math.isfinite(value) and value > 0
    assert f"protocol: preset {preset}, fid_resize {PRESETS[preset].eval_protocol().fid_resize}" in out
    assert "resized" in out  # the photos of other sizes were brought to one, with the preset's filter
    assert f"with {PRESETS[preset].eval_protocol().resize_filter};" in out


def test_fid_flags_win_over_the_preset():
    from smisbench.metrics.cli import fid_settings

    def settings(**given):
        base = {"preset": None, "dataset": None, "size": None, "resize_filter": None, "fid_resize": None}
        return fid_settings(type("Args", (), {**base, **given})())

    assert settings() == {"preset": None, "fid_resize": "legacy_tf", "resize_filter": "bicubic-antialias",
                          "image_size": None}
    assert settings(preset="groupdnet2020", dataset="cityscapes") == {
        "preset": "groupdnet2020", "fid_resize": "legacy_pytorch", "resize_filter": "bilinear",
        "image_size": (256, 512)}
    assert settings(preset="clean", dataset="ade20k", size=(64, 64), fid_resize="legacy_tf") == {
        "preset": "clean", "fid_resize": "legacy_tf", "resize_filter": "bicubic-antialias", "image_size": (64, 64)}


def test_protocol_records_only_name_the_preset_and_accept_the_new_fields():
    assert EvalProtocol(preset="x", dont_care="counted").to_dict()["dont_care"] == "counted"
    with pytest.raises(SmisbenchError, match="protocol dont_care 'some' is not allowed"):
        EvalProtocol(dont_care="some")
    assert EvalProtocol(fid_resize="legacy_pytorch").fid_resize == "legacy_pytorch"
