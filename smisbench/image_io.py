"""The one reader of image and label-map files: every command and dataset opens files through here.

PIL's own conversions are silently wrong for some files: ``convert("RGB")`` of a 16-bit
greyscale PNG (mode ``I;16``) clips every value above 255 to white, a colour PNG read as
"labels" gives (H, W, 3) colours instead of ids, and a JPEG label map holds compression
noise instead of ids. So each PIL mode is either converted by a rule stated here or refused
with the fix, and every unreadable file (missing, a folder, empty, not an image, truncated,
absurdly large) is one :class:`SmisbenchError` naming the file.

Photos: 8-bit modes go through PIL's conversion (alpha is dropped, as the official SPADE/SMIS
loaders and torch-fidelity do); 16-bit greyscale keeps its high byte (``v >> 8``, the rule PIL
itself applies to 16-bit RGB PNGs, so every 16-bit file is reduced alike); 32-bit integer, float,
LAB and other modes whose range or colour space is unknown are refused.
Label maps: one integer id per pixel (modes 1, L, P, I;16*, I), stored losslessly (not JPEG).
PIL stretches 2- and 4-bit greyscale samples to 0..255 (an id 3 of a 2-bit PNG reads as 255),
so those are read back as the stored samples. Multi-frame files (GIF, TIFF pages) give their first
frame, and EXIF orientation is ignored, as in the official loaders.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from smisbench.errors import LabelMapError, SmisbenchError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
# Formats PIL may identify a file as; others (EPS runs Ghostscript, for one) are never opened.
FORMATS = ("PNG", "JPEG", "MPO", "BMP", "DIB", "WEBP", "TIFF", "PPM", "GIF")
DEFAULT_MAX_PIXELS = 89_478_485  # PIL's own decompression-bomb limit, used when Image.MAX_IMAGE_PIXELS is None
PHOTO_MODES = ("1", "L", "P", "RGB", "RGBX", "LA", "PA", "RGBA", "RGBa", "CMYK", "YCbCr")
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
LABEL_MODES = ("1", "L", "P", "I", *SIXTEEN_BIT_MODES)
LOSSY_FORMATS = ("JPEG", "MPO")
LOW_BIT_GREY = {"L;2": 85, "L;4": 17}  # PIL raw mode -> the factor PIL multiplied each sample by

PathLike = str | os.PathLike


def max_pixels() -> int:
    """Largest width x height read: PIL's decompression-bomb limit."""
    return int(Image.MAX_IMAGE_PIXELS or DEFAULT_MAX_PIXELS)


def _formats() -> list[str]:
    """The allowed formats this PIL build can open (a WebP-less build lacks "WEBP")."""
    Image.init()
    return [name for name in FORMATS if name in Image.OPEN]


def _check_file(path: Path, what: str) -> None:
    if not path.exists():
        raise SmisbenchError(f"{what} {path} does not exist", "check the path (or restore the file)")
    if path.is_dir():
        raise SmisbenchError(f"{what} {path} is a folder, not a file", f"pass the {what} file itself")
    if not path.is_file():
        raise SmisbenchError(f"{what} {path} is not a regular file", f"pass a PNG or JPEG {what} file")
    if path.stat().st_size == 0:
        raise SmisbenchError(f"{what} {path} is empty (0 bytes)", "write or download the file again")


def _check_size(image: Image.Image, path: Path, what: str) -> None:
    width, height = image.size
    if width < 1 or height < 1:
        raise SmisbenchError(f"{what} {path} declares a size of {width}x{height} pixels",
                             "write the file again (it is corrupt)")
    if width * height > max_pixels():
        raise SmisbenchError(
            f"{what} {path} declares {width}x{height} pixels, more than the limit of {max_pixels():,} "
            "(a decompression bomb or a corrupt header)",
            "downscale the image first, or raise PIL.Image.MAX_IMAGE_PIXELS if the file is genuine and trusted",
        )


def _raw_mode(image: Image.Image) -> str | None:
    """How PIL unpacks the stored samples (e.g. "L;4" for a 4-bit greyscale PNG), where it says."""
    tiles = getattr(image, "tile", None) or []
    args = tiles[0][3] if tiles else None
    if isinstance(args, tuple) and args:
        args = args[0]
    return args if isinstance(args, str) else None


def _decode(path: Path, what: str, header_only: bool, ids: bool = False) -> Image.Image:
    """The file decoded by PIL (or only its header), with every failure as one SmisbenchError.

    The returned image carries ``raw_mode`` in its ``info`` (read before decoding clears it).
    """
    _check_file(path, what)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise SmisbenchError(f"cannot read {what} {path}: {err.strerror or err}",
                             "check the file's permissions") from None
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=_formats())
            _check_size(image, path, what)
            image.info["raw_mode"] = _raw_mode(image)
            if not header_only:
                image.load()
        # PIL warns (rather than raises) on some short reads; other warnings concern metadata, not pixels
        short = [str(w.message) for w in caught if "truncat" in str(w.message).lower()]
        if short:
            raise OSError(short[0])
    except SmisbenchError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise SmisbenchError(f"cannot read {what} {path}: too large to decode safely ({err})",
                             "downscale the image first (PIL refuses it as a possible decompression bomb)") from None
    except UnidentifiedImageError:
        raise SmisbenchError(
            f"cannot read {what} {path}: it is not an image file ({', '.join(_formats())})",
            f"pass a PNG{'' if ids else ' or JPEG'} file (save it again as PNG if it was exported in another format)",
        ) from None
    except Exception as err:  # noqa: BLE001 - any decoder failure means the file's bytes are unusable
        raise SmisbenchError(
            f"cannot read {what} {path}: the file is truncated or corrupt ({type(err).__name__}: {err})",
            "write, extract or download the file again (it was cut short or damaged)",
        ) from None
    return image


def image_size(path: PathLike, what: str = "image") -> tuple[int, int]:
    """(height, width) from the header alone (fast); the file is refused here if it is not an image."""
    width, height = _decode(Path(path), what, header_only=True).size
    return height, width


def _sixteen_bit_to_8(image: Image.Image) -> Image.Image:
    values = np.asarray(image).astype(np.int64)
    if values.min() < 0 or values.max() > 65535:
        raise ValueError("values outside 0..65535")
    return Image.fromarray((values >> 8).astype(np.uint8), "L")


def load_rgb(path: PathLike, what: str = "image") -> Image.Image:
    """A photo as a PIL RGB image, by the conversion rules in the module docstring."""
    path = Path(path)
    image = _decode(path, what, header_only=False)
    mode = image.mode
    if mode in PHOTO_MODES:
        with warnings.catch_warnings():  # PIL's advice to go through RGBA: the alpha is dropped either way
            warnings.simplefilter("ignore", UserWarning)
            return image.convert("RGB")
    if mode in SIXTEEN_BIT_MODES or (mode == "I" and image.format == "PNG"):  # PNG has no 32-bit greyscale
        try:
            return _sixteen_bit_to_8(image).convert("RGB")
        except ValueError:
            pass
    raise SmisbenchError(
        f"{what} {path} has PIL mode {mode} ({image.format}): its value range or colour space is not known, "
        "so it cannot be converted to 8-bit RGB without guessing",
        "save the image as 8-bit or 16-bit RGB/greyscale PNG or JPEG",
    )


def read_rgb(path: PathLike, what: str = "image") -> np.ndarray:
    """(H, W, 3) uint8 RGB of a photo (see :func:`load_rgb`)."""
    return np.array(load_rgb(path, what), dtype=np.uint8)


def read_ids(path: PathLike, what: str = "label map") -> np.ndarray:
    """(H, W) integer ids of a label or instance map: uint8 for 8-bit files, int32 for wider ones.

    The stored values are returned unchanged (palette images give their indices, as VOC/ADE store
    them); colour, alpha, float and lossy (JPEG) files are refused, as their values are not ids.
    """
    path = Path(path)
    image = _decode(path, what, header_only=False, ids=True)
    if image.format in LOSSY_FORMATS:
        raise LabelMapError(
            f"{what} {path} is a JPEG: lossy compression changes ids along every boundary",
            f"store {what}s losslessly, one id per pixel (PNG, mode L or 16-bit)",
        )
    if image.mode not in LABEL_MODES:
        if image.mode in ("LA", "La", "PA"):
            kind = "ids with an alpha channel"
        elif image.mode in ("F", "I;16S", "I;32", "I;32S"):
            kind = "not integer ids in a known range"
        else:
            kind = "a colour image, not one class id per pixel"
        raise LabelMapError(
            f"{what} {path} has PIL mode {image.mode}: {kind}",
            f"pass {what}s that hold one id per pixel (e.g. Cityscapes *_gtFine_labelIds.png, *_instanceIds.png), "
            "not coloured visualisations; save colour-coded maps as mode L (or 16-bit) PNG ids",
        )
    raw_mode = image.info.get("raw_mode")
    if image.mode == "L" and raw_mode in LOW_BIT_GREY:
        return np.array(image, dtype=np.uint8) // LOW_BIT_GREY[raw_mode]
    if image.mode == "L" and raw_mode not in (None, "L"):
        raise LabelMapError(
            f"{what} {path} stores its samples as PIL raw mode {raw_mode}, which PIL transforms while reading",
            f"save the {what} as a plain 8-bit (mode L) or 16-bit PNG",
        )
    if image.mode in ("1", "L", "P"):
        return np.array(image, dtype=np.uint8)
    return np.array(image).astype(np.int32)
