"""The shared image / label-map reader: every PIL mode converted correctly or refused, and a fuzz test.

"Correct" is computed here independently of PIL's conversions (16-bit keeps its high byte, a palette
is looked up, alpha is dropped, CMYK and YCbCr by their textbook formulas).
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import SAMPLES
from smisbench.errors import SmisbenchError
from smisbench.image_io import image_size, read_ids, read_rgb

SEED = 20240612
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------------- helpers
def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def raw_png(width: int, height: int, depth: int, colour_type: int, rows: bytes) -> bytes:
    """A PNG written by hand (PIL cannot write 16-bit RGB, and bombs need a false header)."""
    header = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    return PNG_MAGIC + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(rows)) + _chunk(b"IEND", b"")


def _rows(values: np.ndarray) -> bytes:
    """PNG scanlines (filter 0) of a big-endian (H, W[, C]) array."""
    return b"".join(b"\x00" + row.tobytes() for row in values)


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def outcome(reader, path: Path):
    """The array a reader returns, or the SmisbenchError it raises; any other exception fails the test."""
    try:
        return reader(path)
    except SmisbenchError as err:
        assert err.fix and str(path) in err.problem, f"error without the file or the fix: {err}"
        return err


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _grey3(values: np.ndarray) -> np.ndarray:
    return np.repeat(values.astype(np.uint8)[..., None], 3, axis=-1)


def _cmyk_to_rgb(cmyk: np.ndarray) -> np.ndarray:
    c, k = cmyk[..., :3].astype(float), cmyk[..., 3:].astype(float)
    return np.round((255 - c) * (255 - k) / 255)


def _ycbcr_to_rgb(ycc: np.ndarray) -> np.ndarray:
    y, cb, cr = (ycc[..., i].astype(float) for i in range(3))
    rgb = np.stack([y + 1.402 * (cr - 128), y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128),
                    y + 1.772 * (cb - 128)], -1)
    return np.clip(np.round(rgb), 0, 255)


# ----------------------------------------------------------------------------- the reported defect
def test_sixteen_bit_grey_png_is_not_read_as_white(tmp_path):
    grey = np.full((8, 8), 32768, dtype=np.uint16)
    Image.fromarray(grey).save(tmp_path / "grey16.png")
    assert Image.open(tmp_path / "grey16.png").mode == "I;16"
    assert (read_rgb(tmp_path / "grey16.png") == 128).all()  # PIL's convert("RGB") gives 255
    assert (read_ids(tmp_path / "grey16.png") == 32768).all()


# ----------------------------------------------------------------------------- every PIL mode
def _mode_cases(rng: np.random.Generator, h: int, w: int):
    """(name, file bytes, expected RGB or None = must refuse, expected ids or None = must refuse, tolerance)."""
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    grey = rng.integers(0, 256, (h, w), dtype=np.uint8)
    alpha = rng.integers(0, 256, (h, w), dtype=np.uint8)
    bits = rng.random((h, w)) < 0.5
    palette = rng.integers(0, 256, (256, 3), dtype=np.uint8)
    index = rng.integers(0, 256, (h, w), dtype=np.uint8)
    sixteen = rng.integers(0, 65536, (h, w), dtype=np.uint16)
    wide = rng.integers(0, 1 << 20, (h, w)).astype(np.int32)
    cmyk = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    ycc = rng.integers(16, 240, (h, w, 3), dtype=np.uint8)

    p_image = Image.fromarray(index, "L").convert("P")
    p_image.putpalette(palette.flatten().tolist())
    pa_image = p_image.convert("PA")
    pa_image.putalpha(Image.fromarray(alpha, "L"))
    rgba = np.dstack([rgb, alpha])
    grey_alpha = np.dstack([sixteen, sixteen[::-1]]).astype(">u2")
    four_bit = (grey % 16).astype(np.uint8)

    yield "1", _encode(Image.fromarray(bits), "PNG"), _grey3(bits * 255), bits.astype(np.uint8), 0
    yield "L", _encode(Image.fromarray(grey), "PNG"), _grey3(grey), grey, 0
    yield "L 4-bit", _encode(Image.fromarray(four_bit), "PNG", bits=4), _grey3(four_bit * 17), four_bit, 0
    yield "LA", _encode(Image.fromarray(np.dstack([grey, alpha]), "LA"), "PNG"), _grey3(grey), None, 0
    yield "P", _encode(p_image, "PNG"), palette[index], index, 0
    yield "PA", _encode(pa_image, "TIFF"), palette[index], None, 0
    yield "RGB", _encode(Image.fromarray(rgb), "PNG"), rgb, None, 0
    yield "RGB lossless WebP", _encode(Image.fromarray(rgb), "WEBP", lossless=True), rgb, None, 0
    yield "RGBA", _encode(Image.fromarray(rgba, "RGBA"), "PNG"), rgb, None, 0
    yield "RGBX", _encode(Image.fromarray(rgb).convert("RGBX"), "TIFF"), rgb, None, 0
    yield "CMYK", _encode(Image.fromarray(cmyk, "CMYK"), "TIFF"), _cmyk_to_rgb(cmyk), None, 1
    yield "YCbCr", _encode(Image.fromarray(ycc, "YCbCr"), "TIFF"), _ycbcr_to_rgb(ycc), None, 2
    yield "LAB", _encode(Image.fromarray(rgb, "LAB"), "TIFF"), None, None, 0
    yield "I;16", _encode(Image.fromarray(sixteen), "PNG"), _grey3(sixteen >> 8), sixteen, 0
    yield "I;16 TIFF", _encode(Image.fromarray(sixteen), "TIFF"), _grey3(sixteen >> 8), sixteen, 0
    yield "I (32-bit)", _encode(Image.fromarray(wide, "I"), "TIFF"), None, wide, 0
    yield "F", _encode(Image.fromarray(grey.astype(np.float32), "F"), "TIFF"), None, None, 0
    yield "L JPEG", _encode(Image.fromarray(grey), "JPEG", quality=100), "decoded", None, 0
    yield ("RGB 16-bit", raw_png(w, h, 16, 2, _rows(np.dstack([sixteen] * 3).astype(">u2"))),
           _grey3(sixteen >> 8), None, 0)
    yield "LA 16-bit", raw_png(w, h, 16, 4, _rows(grey_alpha)), _grey3(sixteen >> 8), None, 0


@pytest.mark.parametrize("size", [(1, 1), (5, 7)], ids=["1x1", "5x7"])
def test_every_mode_is_read_correctly_or_refused(tmp_path, size):
    rng = np.random.default_rng(SEED)
    for name, data, want_rgb, want_ids, tolerance in _mode_cases(rng, *size):
        path = _write(tmp_path, name.replace(" ", "_").replace(";", "") + ".img", data)
        got = outcome(read_rgb, path)
        if want_rgb is None:
            assert isinstance(got, SmisbenchError), f"{name}: read as RGB instead of refused"
        else:
            assert isinstance(got, np.ndarray), f"{name}: refused: {got}"
            assert got.dtype == np.uint8 and got.shape == (*size, 3), name
            if not isinstance(want_rgb, str):  # a JPEG decodes to what its codec says
                assert np.abs(got.astype(int) - want_rgb).max() <= tolerance, name
        got = outcome(read_ids, path)
        if want_ids is None:
            assert isinstance(got, SmisbenchError), f"{name}: read as label ids instead of refused"
        else:
            assert isinstance(got, np.ndarray), f"{name}: refused as labels: {got}"
            assert got.shape == size and np.issubdtype(got.dtype, np.integer), name
            assert np.array_equal(got.astype(np.int64), want_ids.astype(np.int64)), name


# ----------------------------------------------------------------------------- fuzz
def _sources(rng: np.random.Generator) -> list[tuple[str, bytes, object]]:
    """Real encoded files (and one real photo where the shared samples are present) and their reader."""
    smooth = np.linspace(0, 255, 48 * 64 * 3).reshape(48, 64, 3)
    photo = np.clip(smooth + rng.normal(0, 30, smooth.shape), 0, 255).astype(np.uint8)
    label = (np.arange(48 * 64).reshape(48, 64) // 97 % 9).astype(np.uint8)
    sources = [
        ("photo.png", _encode(Image.fromarray(photo), "PNG"), read_rgb),
        ("photo.jpg", _encode(Image.fromarray(photo), "JPEG", quality=90), read_rgb),
        ("progressive.jpg", _encode(Image.fromarray(photo), "JPEG", progressive=True), read_rgb),
        ("interlaced.png", _encode(Image.fromarray(photo), "PNG", interlace=1), read_rgb),
        ("photo.webp", _encode(Image.fromarray(photo), "WEBP"), read_rgb),
        ("label.png", _encode(Image.fromarray(label), "PNG"), read_ids),
        ("label16.png", _encode(Image.fromarray(label.astype(np.uint16) * 4000), "PNG"), read_ids),
    ]
    real = SAMPLES / "spade_coco_stuff" / "datasets" / "coco_stuff" / "val_img" / "000000001503.jpg"
    if real.exists():
        sources.append(("coco.jpg", real.read_bytes(), read_rgb))
    return sources


def test_fuzz_truncated_files_are_refused_or_read_whole(tmp_path):
    rng = np.random.default_rng(SEED)
    cases = 0
    for name, data, reader in _sources(rng):
        reference = reader(_write(tmp_path, "whole_" + name, data))
        cuts = {0, 1, 8, 16, 33, len(data) // 2, len(data) - 12, len(data) - 1}
        cuts |= {int(c) for c in rng.integers(1, len(data), 30)}
        for cut in sorted(cuts):
            got = outcome(reader, _write(tmp_path, f"cut{cut}_{name}", data[:cut]))
            cases += 1
            if isinstance(got, np.ndarray):  # PIL may not need the last bytes (IEND, EOI): then it is whole
                assert got.shape == reference.shape and np.array_equal(got, reference), f"{name} cut at {cut}"
    assert cases > 200


def test_fuzz_random_bytes_are_refused(tmp_path):
    rng = np.random.default_rng(SEED)
    prefixes = [b"", PNG_MAGIC, b"\xff\xd8\xff\xe0", b"BM", b"GIF89a", b"II*\x00", b"MM\x00*", b"P6\n", b"RIFF",
                PNG_MAGIC + _chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 0, 0, 0, 0))]
    for i in range(120):
        blob = prefixes[i % len(prefixes)] + rng.bytes(int(rng.integers(0, 400)))
        path = _write(tmp_path, f"random{i}.png", blob)
        for reader in (read_rgb, read_ids, image_size):
            assert isinstance(outcome(reader, path), SmisbenchError), f"random bytes {i} read by {reader.__name__}"


def _jpeg_with_size(height: int, width: int) -> bytes:
    data = bytearray(_encode(Image.new("RGB", (16, 16), (10, 20, 30)), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


@pytest.mark.parametrize("width,height", [(100_000, 100_000), (10_000, 9_000), ((1 << 31) - 1, 1), (65_500, 65_500)])
def test_huge_declared_sizes_are_refused_without_decoding(tmp_path, width, height):
    files = [_write(tmp_path, "bomb.png", raw_png(width, height, 8, 0, b"\x00" * 64))]
    if width < 65536 and height < 65536:
        files.append(_write(tmp_path, "bomb.jpg", _jpeg_with_size(height, width)))
    for path in files:
        for reader in (read_rgb, read_ids, image_size):
            got = outcome(reader, path)
            assert isinstance(got, SmisbenchError)
            assert "too large" in got.problem or "more than the limit" in got.problem, got.problem


def test_a_one_pixel_file_reads(tmp_path):
    path = _write(tmp_path, "one.png", raw_png(1, 1, 8, 0, b"\x00\x07"))
    assert read_ids(path).tolist() == [[7]] and read_rgb(path).tolist() == [[[7, 7, 7]]]
    assert image_size(path) == (1, 1)


# ----------------------------------------------------------------------------- unreadable paths
@pytest.mark.parametrize("reader", [read_rgb, read_ids, image_size])
def test_missing_empty_and_folder_paths_name_the_file(tmp_path, reader):
    empty = _write(tmp_path, "empty.png", b"")
    for path, words in ((tmp_path / "absent.png", "does not exist"), (empty, "empty"), (tmp_path, "is a folder")):
        got = outcome(reader, path)
        assert isinstance(got, SmisbenchError) and words in got.problem


def test_label_maps_refuse_jpeg_and_colour_with_the_fix(tmp_path):
    grey = np.zeros((4, 4), dtype=np.uint8)
    Image.fromarray(grey).save(tmp_path / "ids.jpg", quality=100)
    Image.fromarray(np.zeros((4, 4, 3), dtype=np.uint8)).save(tmp_path / "colour.png")
    with pytest.raises(SmisbenchError, match="JPEG: lossy") as jpeg:
        read_ids(tmp_path / "ids.jpg")
    assert "PNG" in jpeg.value.fix
    with pytest.raises(SmisbenchError, match="colour image") as colour:
        read_ids(tmp_path / "colour.png")
    assert "mode L" in colour.value.fix
