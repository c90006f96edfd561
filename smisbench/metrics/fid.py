"""FID through torch-fidelity's own Inception extractor and statistics, fed with the provisioned weights.

Real-image statistics are cached on disk, keyed by a hash of everything that changes them,
so a cache made at another image size, filter, Inception resize (``fid_resize``), weights file,
sample count, dtype or reader setting (load/crop size, crop position, flip, augmentation seed,
files) is never reused, and nothing that leaves the real images alone (the resize filter when
they are not resized, the synthetic dataset's length) forces a recomputation. Metrics that need
the real features themselves (KID, precision/recall, density/coverage) store them in the same
file; a file without them serves FID only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F

from smisbench import imaging
from smisbench.errors import SmisbenchError, WeightsError
from smisbench.io import atomic_open
from smisbench.metrics.lpips_metric import check_image_range
from smisbench.metrics.protocol import RESIZE_FILTERS, EvalProtocol
from smisbench.weights import register_check

FEATURE_LAYER = "2048"
EXTRACTOR_NAME = "inception-v3-compat"
ENV_STATS_DIR = "SMISBENCH_FID_CACHE_DIR"


# ----------------------------------------------------------------------------- extractor
def _extractor_class():
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    return FeatureExtractorInceptionV3


def check_inception_state(state: dict[str, torch.Tensor]) -> None:
    """Install-time check: torch-fidelity's extractor loads the converted state strictly."""
    import tempfile

    from smisbench.weights import serialize_state_dict

    with tempfile.NamedTemporaryFile(suffix=".pth") as tmp:
        tmp.write(serialize_state_dict(state))
        tmp.flush()
        try:
            _extractor_class()(EXTRACTOR_NAME, [FEATURE_LAYER], feature_extractor_weights_path=tmp.name)
        except RuntimeError as err:  # load_state_dict's key/shape report
            raise WeightsError(f"converted Inception weights do not fit torch-fidelity: {err}") from None


register_check("fid-inception", lambda _name, state: check_inception_state(state))


def load_inception(store_dir: str | os.PathLike | None = None, device: torch.device | str = "cpu",
                   dtype: str = "float32", weights_path: str | os.PathLike | None = None) -> torch.nn.Module:
    """torch-fidelity's FeatureExtractorInceptionV3 (2048-d pool features) on the store's verified weights.

    ``weights_path`` bypasses the store (tests with random weights); torch-fidelity loads it strictly.
    """
    if weights_path is None:
        from smisbench.weights import require

        weights_path, sha = require("fid-inception", store_dir)
    else:
        from smisbench.io import sha256_file

        sha = sha256_file(weights_path)
    extractor = _extractor_class()(
        EXTRACTOR_NAME, [FEATURE_LAYER], feature_extractor_weights_path=str(weights_path),
        feature_extractor_internal_dtype=dtype,
    )
    extractor.weights_sha256 = sha
    return extractor.to(device).eval()


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] -> uint8 as a PNG writer stores them (``smisbench.imaging.to_uint8``).

    The range check first: FID must refuse [0, 255] or [0, 1] inputs rather than clamp them.
    """
    check_image_range(images)
    return imaging.to_uint8(images)


def resize_images(images: torch.Tensor, size: tuple[int, int], resize_filter: str) -> torch.Tensor:
    """Float images to ``size`` with a named filter (no-op at the same size)."""
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    if resize_filter not in RESIZE_FILTERS:
        from smisbench.errors import UnknownNameError

        raise UnknownNameError("resize filter", resize_filter, list(RESIZE_FILTERS))
    mode, _, anti = resize_filter.partition("-")
    kwargs: dict[str, Any] = {}
    if mode in ("bilinear", "bicubic"):
        kwargs = {"align_corners": False, "antialias": bool(anti)}
    out = F.interpolate(images.float(), size=tuple(size), mode=mode, **kwargs)
    return out.clamp(-1, 1)


@torch.inference_mode()
def extract_features(extractor: torch.nn.Module, images_uint8: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    """(N, 2048) float32 pool features of uint8 (N, 3, H, W) images, computed in batches."""
    device = next(extractor.parameters()).device
    out = []
    for start in range(0, images_uint8.shape[0], batch_size):
        chunk = images_uint8[start:start + batch_size].to(device)
        out.append(extractor(chunk)[0].float().cpu())
    return torch.cat(out) if out else torch.zeros(0, 2048)


# ----------------------------------------------------------------------------- statistics
def statistics(features: torch.Tensor) -> dict[str, np.ndarray]:
    """mu and sigma exactly as torch-fidelity computes them."""
    from torch_fidelity.metric_fid import fid_features_to_statistics

    if features.shape[0] < 2:
        raise SmisbenchError(f"FID needs at least 2 images per set, got {features.shape[0]}", "use more samples")
    return fid_features_to_statistics(features.float().cpu())


def frechet_distance(stats_a: dict[str, np.ndarray], stats_b: dict[str, np.ndarray]) -> float:
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_statistics_to_metric

    return float(fid_statistics_to_metric(stats_a, stats_b, verbose=False)[KEY_METRIC_FID])


class FeatureBank:
    """Features gathered batch by batch, each block at the index of its first item, read in item order.

    Under sharded evaluation each rank holds the blocks of its batches; :meth:`gather` gives every
    rank all of them, so the statistics are those of one process.
    """

    def __init__(self, capacity: int | None = None):
        self._blocks: list[tuple[int, torch.Tensor]] = []
        self.count = 0
        self.capacity = capacity

    def add(self, features: torch.Tensor, start: int | None = None) -> None:
        """Add features of the items from ``start`` on (default: right after those added so far)."""
        at = self.count if start is None else int(start)
        if self.capacity is not None:
            features = features[: max(0, self.capacity - at)]
        if features.shape[0]:
            self._blocks.append((at, features.float().cpu()))
            self.count += features.shape[0]

    @property
    def full(self) -> bool:
        return self.capacity is not None and self.count >= self.capacity

    def gather(self) -> "FeatureBank":
        """Every rank's blocks on every rank (a no-op in one process); returns self."""
        from smisbench.metrics.sharding import merge_indexed

        merged = merge_indexed(dict(self._blocks))
        self._blocks = list(merged.items())
        self.count = sum(block.shape[0] for block in merged.values())
        return self

    def tensor(self) -> torch.Tensor:
        blocks = [block for _, block in sorted(self._blocks, key=lambda item: item[0])]
        return torch.cat(blocks) if blocks else torch.zeros(0, 2048)


# ----------------------------------------------------------------------------- real-statistics cache
@dataclass(frozen=True)
class RealStatsKey:
    """Everything that changes real-image FID statistics; its digest names the cache file."""

    dataset: str
    root: str
    split: str
    image_size: tuple[int, int]
    resize_filter: str
    weights_sha256: str
    num_samples: int
    dtype: str
    reader: dict[str, Any] = field(default_factory=dict)  # the dataset's image_identity(num_samples)
    feature_layer: str = FEATURE_LAYER
    extractor: str = EXTRACTOR_NAME
    input_resize: str = "legacy_tf"  # how images reach the extractor's input size (protocol.fid_resize)

    def digest(self) -> str:
        payload = json.dumps(dataclasses.asdict(self), sort_keys=True, default=list)
        return hashlib.sha256(payload.encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self), default=list))


def real_stats_key(dataset: Any, dataset_name: str, protocol: EvalProtocol, real_size: tuple[int, int],
                   weights_sha256: str, num_samples: int, input_resize: str | None = None) -> RealStatsKey | None:
    """The cache key of the first ``num_samples`` real images' statistics; None when nothing names them.

    ``reader`` is the dataset's ``image_identity(num_samples)`` (preprocessing, files, and the
    augmentation seed where a crop or flip is drawn); a dataset that describes itself so needs no
    root. The resize filter counts only when the real images (``real_size``) are resized.
    ``input_resize`` overrides ``protocol.fid_resize`` (the metric ``fid_clean`` always resizes cleanly).
    """
    identity = getattr(dataset, "image_identity", None)
    reader = identity(num_samples) if callable(identity) else {}
    root = getattr(dataset, "root", None)
    if root is None:
        root = "" if reader else protocol.dataset_root
    split = getattr(dataset, "split", None) or protocol.split
    if root is None or split is None:
        return None
    size = tuple(protocol.image_size) if protocol.image_size else tuple(real_size)
    return RealStatsKey(
        dataset=dataset_name, root=str(root), split=str(split), image_size=size,
        resize_filter=protocol.resize_filter if size != tuple(real_size) else "none",
        weights_sha256=weights_sha256, num_samples=num_samples, dtype=protocol.fid_dtype, reader=reader,
        input_resize=input_resize or protocol.fid_resize,
    )


def stats_cache_dir(override: str | os.PathLike | None = None) -> Path:
    """Where real-image statistics are cached: ``override``, ``$SMISBENCH_FID_CACHE_DIR``, else the machine's
    cache (``cache_root()/fid_stats``), one for every store and call (the key names the content)."""
    if override:
        return Path(override).expanduser()
    env = os.environ.get(ENV_STATS_DIR)
    if env:
        return Path(env).expanduser()
    from smisbench.paths import cache_root

    return cache_root() / "fid_stats"


def _cache_path(key: RealStatsKey, cache_dir: Path) -> Path:
    return cache_dir / f"{key.dataset}-{key.split}-{key.digest()[:20]}.npz"


def load_cached_stats(key: RealStatsKey, cache_dir: str | os.PathLike | None = None,
                      with_features: bool = False) -> dict[str, np.ndarray] | None:
    """Cached statistics for exactly this key, or None (a file whose stored key differs is ignored).

    ``with_features``: the real features themselves are needed too ("features" in the result);
    a file holding statistics only is then a miss.
    """
    path = _cache_path(key, stats_cache_dir(cache_dir))
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            if json.loads(str(data["key"])) != key.to_dict():
                return None
            out = {"mu": data["mu"].copy(), "sigma": data["sigma"].copy()}
            if with_features:
                if "features" not in data.files:
                    return None
                out["features"] = data["features"].copy()
            return out
    except (OSError, ValueError, KeyError):
        return None


def save_cached_stats(key: RealStatsKey, stats: dict[str, np.ndarray], cache_dir: str | os.PathLike | None = None,
                      features: np.ndarray | None = None) -> Path:
    """Write the statistics (and, when given, the real features they came from) under the key's file."""
    path = _cache_path(key, stats_cache_dir(cache_dir))
    buffer = io.BytesIO()
    arrays = {"mu": stats["mu"], "sigma": stats["sigma"], "key": np.array(json.dumps(key.to_dict(), sort_keys=True))}
    if features is not None:
        arrays["features"] = np.asarray(features, dtype=np.float32)
    np.savez(buffer, **arrays)
    with atomic_open(path, "wb") as handle:
        handle.write(buffer.getvalue())
    return path


def real_statistics(
    key: RealStatsKey,
    batches: Callable[[], Iterable[torch.Tensor]],
    features_of: Callable[[torch.Tensor], torch.Tensor],
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
) -> tuple[dict[str, np.ndarray], bool]:
    """Statistics of the real images (uint8 batches from ``batches()``), from the cache when the key matches.

    Returns (stats, from_cache). Only the first ``key.num_samples`` images are used.
    """
    if use_cache:
        cached = load_cached_stats(key, cache_dir)
        if cached is not None:
            return cached, True
    bank = FeatureBank(key.num_samples)
    for batch in batches():
        bank.add(features_of(batch))
        if bank.full:
            break
    stats = statistics(bank.tensor())
    if use_cache:
        save_cached_stats(key, stats, cache_dir)
    return stats, False


# ----------------------------------------------------------------------------- folders (the CLI)
def default_resize_filter() -> str:
    """The protocol's filter (one place for the fact: :class:`EvalProtocol`)."""
    from smisbench.metrics.protocol import EvalProtocol

    return EvalProtocol.__dataclass_fields__["resize_filter"].default


class ImageFolder(torch.utils.data.Dataset):
    """A folder's images as uint8 (3, H, W) at one size, decoded lazily by the shared reader.

    Files of another size are resized with ``resize_filter`` (as float in [-1, 1], then rounded
    back to uint8 like a PNG writer), so a folder of real photos of mixed sizes can be scored.
    """

    def __init__(self, files: list[Path], size: tuple[int, int], resize_filter: str):
        self.files, self.size, self.resize_filter = files, (int(size[0]), int(size[1])), resize_filter

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> torch.Tensor:
        from smisbench.image_io import read_rgb

        image = torch.from_numpy(read_rgb(self.files[index])).permute(2, 0, 1)
        if tuple(image.shape[-2:]) != self.size:
            floats = imaging.from_uint8(image[None])
            image = to_uint8(resize_images(floats, self.size, self.resize_filter))[0]
        return image


def _list_images(folder: Path) -> tuple[list[Path], list[str]]:
    """The image files of ``folder`` (natural order) and the names of the other entries."""
    from smisbench.data.files import natural_key
    from smisbench.image_io import IMAGE_SUFFIXES

    if not folder.exists():
        raise SmisbenchError(f"image folder {folder} does not exist", "pass two folders of PNG/JPEG images")
    if not folder.is_dir():
        raise SmisbenchError(f"{folder} is a file, not a folder of images", "pass two folders of PNG/JPEG images")
    entries = sorted(folder.iterdir(), key=lambda p: natural_key(p.name))
    images = [p for p in entries if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    others = [p.name + ("/" if p.is_dir() else "") for p in entries if p not in images]
    if len(images) < 2:
        found = "no image files" if not images else f"only 1 image file ({images[0].name})"
        raise SmisbenchError(
            f"{folder} holds {found}; FID needs at least 2 images per folder (files ending in "
            f"{', '.join(IMAGE_SUFFIXES)})",
            "pass folders with many images each (FID of a few images is dominated by its bias; "
            "the paper scores the whole validation split)",
        )
    return images, others


def image_folders(dir_a: str | os.PathLike, dir_b: str | os.PathLike, size: tuple[int, int] | None = None,
                  resize_filter: str | None = None) -> tuple[ImageFolder, ImageFolder, list[str]]:
    """Both folders at one size, and note lines saying what was ignored or resized.

    The size rule: ``size`` (H, W) when given, else the size of the first image of ``dir_a`` in
    natural name order. Every image of another size is resized to it with ``resize_filter``
    (default: the evaluation protocol's). Headers are read here, so a folder holding a non-image
    or empty file is refused before any feature is computed; truncated data is found on decoding.
    """
    from smisbench.image_io import image_size

    resize_filter = resize_filter or default_resize_filter()
    if resize_filter not in RESIZE_FILTERS:
        from smisbench.errors import UnknownNameError

        raise UnknownNameError("resize filter", resize_filter, list(RESIZE_FILTERS))
    notes: list[str] = []
    listed = []
    for folder in (Path(dir_a), Path(dir_b)):
        images, others = _list_images(folder)
        if others:
            from smisbench.data.files import first_few

            notes.append(f"ignored {len(others)} {'entry' if len(others) == 1 else 'entries'} of {folder} "
                         "that are not image files by name: "
                         f"{first_few(others)}")
        listed.append((folder, images, [image_size(p) for p in images]))
    target = (int(size[0]), int(size[1])) if size else listed[0][2][0]
    rule = "as asked" if size else f"the size of {listed[0][1][0].name}, the first image of {listed[0][0]}"
    resized = [(folder, sum(s != target for s in sizes), len(sizes)) for folder, _, sizes in listed]
    if any(count for _, count, _ in resized):
        counts = ", ".join(f"{count} of {total} in {folder}" for folder, count, total in resized)
        notes.append(f"resized {counts} to {target[0]}x{target[1]} (H x W; {rule}) with {resize_filter}; "
                     "pass --size HxW to choose the size")
    folders = [ImageFolder(images, target, resize_filter) for _, images, _ in listed]
    return folders[0], folders[1], notes


def fid_of_image_sets(set_a: torch.utils.data.Dataset, set_b: torch.utils.data.Dataset,
                      store_dir: str | os.PathLike | None = None, device: str = "cpu", batch_size: int = 32,
                      verbose: bool = False, fid_resize: str = "legacy_tf") -> float:
    """FID between two datasets of uint8 (3, H, W) images with the provisioned Inception.

    ``legacy_tf``: torch-fidelity's own pipeline end to end. Another ``fid_resize`` (protocol field):
    the features of :func:`smisbench.metrics.inception_input.inception_features`, then torch-fidelity's
    statistics and distance.
    """
    import torch_fidelity

    from smisbench.weights import require

    if batch_size < 1:
        raise SmisbenchError(f"batch size must be at least 1, got {batch_size}", "pass --batch-size 32 (or any N >= 1)")
    weights_path, _ = require("fid-inception", store_dir)
    if fid_resize != "legacy_tf":
        from smisbench.metrics.inception_input import features_of_image_set

        extractor = load_inception(store_dir, device)
        stats = [statistics(features_of_image_set(extractor, images, fid_resize, batch_size))
                 for images in (set_a, set_b)]
        return frechet_distance(stats[0], stats[1])
    metrics = torch_fidelity.calculate_metrics(
        input1=set_a, input2=set_b, fid=True, cuda=str(device).startswith("cuda"),
        feature_extractor_weights_path=str(weights_path), batch_size=batch_size, cache=False,
        save_cpu_ram=True, verbose=verbose,  # save_cpu_ram: no worker processes, so read errors arrive as raised
    )
    return float(metrics["frechet_inception_distance"])


def fid_of_folders(dir_a: str | os.PathLike, dir_b: str | os.PathLike, store_dir: str | os.PathLike | None = None,
                   device: str = "cpu", batch_size: int = 32, verbose: bool = False,
                   size: tuple[int, int] | None = None, resize_filter: str | None = None,
                   fid_resize: str = "legacy_tf") -> float:
    """FID between two image folders (see :func:`image_folders` for the size rule)."""
    set_a, set_b, _ = image_folders(dir_a, dir_b, size, resize_filter)
    return fid_of_image_sets(set_a, set_b, store_dir, device, batch_size, verbose, fid_resize)
