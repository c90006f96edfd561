"""One [-1, 1] <-> uint8 conversion with one rounding rule, used by every writer and metric; one VOC palette."""

from __future__ import annotations

import ast
import io
import tokenize
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from smisbench import imaging
from smisbench.errors import SmisbenchError

PACKAGE = Path(imaging.__file__).resolve().parent


def exact_pixel(x: float) -> int:
    """Round half up of (x + 1) * 127.5 in exact rational arithmetic, after clamping to [-1, 1]."""
    v = (min(max(Fraction(x), Fraction(-1)), Fraction(1)) + 1) * Fraction(255, 2)
    return int(v + Fraction(1, 2))  # v >= 0, so int() is floor


def near_half_steps(dtype: torch.dtype = torch.float32, ulps: int = 4) -> torch.Tensor:
    """For every pixel boundary k + 0.5, the representable x just below, at and just above it."""
    centres = torch.tensor([(k + 0.5) / 127.5 - 1 for k in range(255)], dtype=dtype)
    values, up, down = [centres], centres.clone(), centres.clone()
    for _ in range(ulps):
        up = torch.nextafter(up, torch.full_like(up, 2.0))
        down = torch.nextafter(down, torch.full_like(down, -2.0))
        values += [up, down]
    return torch.cat(values)


def tricky_images(shape: tuple[int, int, int, int] = (2, 3, 8, 12)) -> torch.Tensor:
    """Images filled with values next to pixel boundaries, where float32 shortcuts round wrongly."""
    values = near_half_steps()
    count = int(np.prod(shape))
    return values.repeat(count // len(values) + 1)[:count].reshape(shape)


def test_boundaries_and_out_of_range_values():
    x = torch.tensor([-1.0, 0.0, 1.0, -1.5, 2.0, float("inf"), float("-inf"), -0.0])
    assert imaging.to_uint8(x).tolist() == [0, 128, 255, 0, 255, 255, 0, 128]
    assert imaging.to_uint8(x).dtype == torch.uint8


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_values_next_to_every_half_step_follow_the_exact_rule(dtype):
    x = near_half_steps(dtype)
    expected = [exact_pixel(float(v)) for v in x]
    assert imaging.to_uint8(x).tolist() == expected


def test_values_where_the_former_float32_copies_rounded_wrongly():
    # (x + 1) * 127.5 exactly: 0.49999997..., 64.5000038..., 66.4999998...; the former copies gave 1, 64, 67
    x = torch.tensor([-0.99607843, -0.49411762, -0.47843137], dtype=torch.float32)
    assert imaging.to_uint8(x).tolist() == [0, 65, 66]
    assert [exact_pixel(float(v)) for v in x] == [0, 65, 66]


def test_inverse_round_trips_every_pixel_value():
    pixels = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16).expand(2, 3, 16, 16)
    floats = imaging.from_uint8(pixels)
    assert floats.dtype == torch.float32 and floats.shape == pixels.shape
    assert float(floats.min()) == -1.0 and float(floats.max()) == 1.0 and float(floats[0, 0, 8, 0]) == pytest.approx(128 / 127.5 - 1, abs=1e-6)
    assert torch.equal(imaging.to_uint8(floats), pixels)
    from_numpy = imaging.from_uint8(pixels.numpy())
    assert torch.equal(from_numpy, floats)


def test_array_form_is_channels_last_with_the_same_bytes():
    images = tricky_images()
    array = imaging.to_uint8_array(images)
    assert array.shape == (2, 8, 12, 3) and array.dtype == np.uint8
    assert np.array_equal(array, imaging.to_uint8(images).permute(0, 2, 3, 1).numpy())
    assert imaging.to_uint8_array(images[0]).shape == (8, 12, 3)


def test_refuses_integer_images_and_nan():
    with pytest.raises(SmisbenchError, match="float tensor"):
        imaging.to_uint8(torch.zeros(3, 2, 2, dtype=torch.uint8))
    with pytest.raises(SmisbenchError, match="NaN"):
        imaging.to_uint8(torch.tensor([0.0, float("nan")]))


# ----------------------------------------------------------------------------- every call site uses it
def test_fid_input_is_the_same_bytes():
    from smisbench.metrics import fid

    images = tricky_images()
    pixels = fid.to_uint8(images)
    assert torch.equal(pixels, imaging.to_uint8(images))
    assert pixels.flatten().tolist() == [exact_pixel(float(v)) for v in images.flatten()]


def test_plain_grid_writer_is_the_same_bytes():
    images = tricky_images((3, 3, 6, 5))
    label = torch.zeros(6, 5, dtype=torch.long)
    grid = imaging.smis_grid(label, {0: images}, num_classes=2, pad=2)
    expected = imaging.to_uint8_array(images)
    for i in range(3):
        y = (i + 1) * (6 + 2)
        assert np.array_equal(grid[y: y + 6, 0:5], expected[i])


def test_benchmark_grid_is_the_same_bytes():
    from smisbench.benchmark.grids import smis_grid
    from smisbench.data.synthetic import SyntheticSMIS
    from smisbench.models.base import CodesKind

    data = SyntheticSMIS("test", length=1)
    item = data[0]
    h, w = item["label"].shape
    image = tricky_images((1, 3, h, w))

    class Fixed:
        """A deterministic model whose every output is ``image``."""

        codes_kind, latent = CodesKind.NONE, None

        def semantics(self, label, instance):
            return label

        def sample_z(self, n, generator):
            return None

        def generate(self, semantics, z):
            return image

    grid = smis_grid(Fixed(), item, data.config, rows=2, seed=0)
    expected = imaging.to_uint8_array(image)[0]
    assert np.array_equal(grid["base"], expected)
    assert all(np.array_equal(tile, expected) for row in grid["images"] for tile in row)


def test_training_sample_grid_is_the_same_bytes():
    from smisbench.training.samples import grid_image

    images = tricky_images((2, 3, 6, 5))
    array = np.asarray(grid_image({"generated": images}, pad=2))
    expected = imaging.to_uint8_array(images)
    for c in range(2):
        left = 2 + c * (5 + 2)
        assert np.array_equal(array[2:8, left: left + 5], expected[c])
    assert (array[0] == 255).all()  # the padding stays white


def test_no_module_converts_with_its_own_127_5():
    """127.5 as a number (not in a message) appears only in smisbench/imaging.py."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "imaging.py" and path.parent == PACKAGE:
            continue
        tokens = tokenize.tokenize(io.BytesIO(path.read_bytes()).readline)
        offenders += [f"{path.relative_to(PACKAGE)}:{t.start[0]}" for t in tokens
                      if t.type == tokenize.NUMBER and ast.literal_eval(t.string) == 127.5]
    assert offenders == []


# ----------------------------------------------------------------------------- palette
def test_one_voc_palette():
    from smisbench.data import palette
    from smisbench.datasets_config import get_dataset_config

    assert palette.voc_palette is imaging.voc_palette
    assert not hasattr(imaging, "palette")
    colours = imaging.voc_palette(6)
    assert colours.tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0], [0, 0, 128], [128, 0, 128]]
    config = get_dataset_config("deepfashion")
    assert np.array_equal(palette.palette_for(config), imaging.voc_palette(config.label_nc))
    label = torch.tensor([[0, 1], [2, 3]])
    assert np.array_equal(imaging.colorize(label, 4), colours[[[0, 1], [2, 3]]])
    as_float = palette.colorize(label, config)
    assert torch.equal(imaging.to_uint8(as_float).permute(1, 2, 0), torch.from_numpy(colours[[[0, 1], [2, 3]]]))
