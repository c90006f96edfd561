"""`smisbench mix` and `smisbench morph` on a tiny random GroupDNet: shapes, mixing class c changes only class c's
codes, morphing at t = 0 and t = 1 reproduces the two encoded images' generations, and the refusals."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
from PIL import Image

from smisbench.applications.mixture import encode_item, mixture, morph, row_png, steps_between
from smisbench.data.synthetic import SyntheticSMIS
from smisbench.errors import SmisbenchError
from smisbench.models import smis
from smisbench.models.registry import build_model

DATA = SyntheticSMIS("test", length=12)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("groupdnet", "synthetic").eval()


def _holding(c: int, skip: int) -> int:
    return next(k for k in range(len(DATA)) if k != skip and c in torch.unique(DATA[k]["label"]).tolist())


def test_mixing_class_c_changes_only_class_c_codes(model):
    target = 0
    c = max(torch.unique(DATA[target]["label"]).tolist())
    source = _holding(c, target)
    result = mixture(model, DATA, target, {c: source})
    base, mixed = model.class_view(result.base_codes), model.class_view(result.mixed_codes)
    source_codes = model.class_view(encode_item(model, DATA, source))
    assert torch.equal(mixed[:, c], source_codes[:, c])
    others = [k for k in range(model.num_code_classes) if k != c]
    assert torch.equal(mixed[:, others], base[:, others])
    assert not torch.equal(mixed[:, c], base[:, c])
    assert result.mixed.shape == result.reconstruction.shape == (3, 64, 64)
    assert list(result.real) == [target, source]
    # the reconstruction is the base image's own codes rendered on its label map
    own = smis.render(model, model.semantics(DATA[target]["label"][None]), result.base_codes)[0]
    assert torch.allclose(result.reconstruction, own)


def test_morph_ends_reproduce_the_encoded_generations(model):
    a, b = 0, 1
    result = morph(model, DATA, a, b, [0.0, 0.5, 1.0, 1.5])
    assert result.images.shape == (4, 3, 64, 64) and result.ts == [0.0, 0.5, 1.0, 1.5]
    semantics = model.semantics(DATA[a]["label"][None])
    z_a, z_b = encode_item(model, DATA, a), encode_item(model, DATA, b)
    assert torch.allclose(result.images[0], smis.render(model, semantics, z_a)[0], atol=1e-6)
    assert torch.allclose(result.images[2], smis.render(model, semantics, z_b)[0], atol=1e-6)
    assert torch.allclose(result.codes[3], (1.5 * z_b - 0.5 * z_a)[0], atol=1e-6)  # extrapolation
    assert steps_between(-0.5, 1.5, 5) == [-0.5, 0.0, 0.5, 1.0, 1.5]


def test_refusals_name_the_problem(model):
    labels = torch.unique(DATA[0]["label"]).tolist()
    absent = next(k for k in range(1, 6) if k not in labels)
    lacking = next(k for k in range(len(DATA)) if absent not in torch.unique(DATA[k]["label"]).tolist())
    with pytest.raises(SmisbenchError, match=f"class {absent} does not occur in item {lacking}"):
        mixture(model, DATA, 0, {absent: lacking})
    with pytest.raises(SmisbenchError, match="per-class codes"):
        mixture(build_model("vspade", "synthetic", ngf=4), DATA, 0, {0: 1})
    with pytest.raises(SmisbenchError, match="no encoder"):
        morph(build_model("spade", "synthetic", ngf=4), DATA, 0, 1, [0.0, 1.0])
    with pytest.raises(SmisbenchError, match="outside the split"):
        morph(model, DATA, 0, 99, [0.0, 1.0])


def test_row_png_is_one_row_of_the_images():
    png = row_png([torch.zeros(3, 8, 8), torch.ones(3, 8, 8)], scale=2)
    image = Image.open(io.BytesIO(png))
    assert image.size == ((2 * 8 + 3 * 2) * 2, (8 + 2 * 2) * 2)


def test_mix_and_morph_commands_write_pngs(tmp_path: Path, capsys):
    from smisbench.cli import main

    mix_png, morph_png = tmp_path / "mix.png", tmp_path / "morph.png"
    c = max(torch.unique(DATA[0]["label"]).tolist())
    assert main(["mix", "--model", "groupdnet", "--dataset-option", "length=12", "--label", "0",
                 "--from", f"{DATA.config.class_names[c]}={_holding(c, 0)}", "--out", str(mix_png)]) == 0
    assert "RANDOM weights" in capsys.readouterr().out
    assert Image.open(mix_png).size[1] == (64 + 4) * 2
    assert main(["morph", "--model", "groupdnet", "--dataset-option", "length=12", "--a", "0", "--b", "1",
                 "--steps", "3", "--range", "-0.5", "1.5", "--out", str(morph_png)]) == 0
    assert "t = -0.5, 0.5, 1.5" in capsys.readouterr().out
    assert Image.open(morph_png).size[0] == (6 * 64 + 7 * 2) * 2  # label, a, 3 steps, b
    assert main(["mix", "--model", "groupdnet", "--from", "nope=1", "--out", str(mix_png)]) == 2
    assert "unknown class 'nope'" in capsys.readouterr().err
