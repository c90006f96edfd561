"""KID, precision/recall, density/coverage and clean/legacy FID: the same numbers as torch-fidelity, prdc and
clean-fid on the same images, from one feature extraction per evaluation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from conftest_weights import TOY_DATASET, inception, provisioned_weights, random_inception_path  # noqa: F401
from smisbench.errors import SmisbenchError
from smisbench.metrics.evaluate import evaluate
from smisbench.metrics.protocol import EvalProtocol
from smisbench.models.base import CodesKind, SMISModel

SIZE = 64  # the toy dataset's label size; Inception sees every image at 299x299 anyway


def _images(seed: int, count: int, size: int = SIZE) -> torch.Tensor:
    """uint8 (count, 3, size, size): smooth colour fields with a little noise (no two alike)."""
    generator = torch.Generator().manual_seed(seed)
    smooth = F.interpolate(torch.rand(count, 3, 6, 6, generator=generator), size=(size, size), mode="bicubic",
                           align_corners=False)
    noisy = smooth * 200 + 25 + torch.randn(count, 3, size, size, generator=generator) * 8
    return noisy.clamp(0, 255).round().to(torch.uint8)


def _write_pngs(images: torch.Tensor, folder: Path) -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / f"{i:03d}.png")
    return folder


def _read_pngs(folder: Path) -> torch.Tensor:
    from PIL import Image

    return torch.stack([torch.from_numpy(np.asarray(Image.open(p).convert("RGB")).copy()).permute(2, 0, 1)
                        for p in sorted(folder.glob("*.png"))])


class _RealFolder(Dataset):
    """The real images of a folder as the evaluator reads datasets ([-1, 1] floats, a label map each)."""

    def __init__(self, images: torch.Tensor):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        return {"label": torch.zeros(SIZE, SIZE, dtype=torch.long), "image": self.images[index].float() / 127.5 - 1}


class _Replay(SMISModel):
    """A 'generator' that returns the images of the fake folder in order, one batch per call."""

    codes_kind = CodesKind.NONE
    model_name = "replay"

    def __init__(self, images: torch.Tensor):
        super().__init__(TOY_DATASET)
        self.images = images.float() / 127.5 - 1
        self.cursor = 0
        self.anchor = nn.Parameter(torch.zeros(1))
        self.netG = self._next

    def _next(self, semantics, z):
        out = self.images[self.cursor:self.cursor + semantics.shape[0]]
        self.cursor += semantics.shape[0]
        return out.to(semantics.device)


COUNT = 10
PROTOCOL = EvalProtocol(batch_size=COUNT, kid_subsets=10, kid_subset_size=6, kid_seed=7, prc_neighborhood=3,
                        nearest_k=3, stats_cache=False)


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("folders")
    real = _images(0, COUNT)
    fake = _images(1, COUNT)
    fake[: COUNT // 2] = real[: COUNT // 2] // 2 + fake[: COUNT // 2] // 2  # half the fakes near real images
    return {"real": _write_pngs(real, root / "real"), "fake": _write_pngs(fake, root / "fake")}


def _ours(folders: dict, metrics: list[str], extractor, protocol: EvalProtocol = PROTOCOL, cache=None):
    real, fake = _read_pngs(folders["real"]), _read_pngs(folders["fake"])
    return evaluate(_Replay(fake), _RealFolder(real), TOY_DATASET, metrics, protocol,
                    networks={"inception": extractor}, stats_cache_dir=cache, progress=False)


@pytest.mark.weights
def test_kid_precision_recall_density_coverage_equal_the_libraries_on_the_same_folders(folders, inception,
                                                                                      provisioned_weights):
    import torch_fidelity
    from prdc import compute_prdc

    from smisbench.metrics.fid import extract_features

    theirs = torch_fidelity.calculate_metrics(
        input1=str(folders["fake"]), input2=str(folders["real"]), kid=True, prc=True,
        feature_extractor="inception-v3-compat", feature_extractor_weights_path=_inception_path(provisioned_weights),
        kid_subsets=10, kid_subset_size=6, rng_seed=7, prc_neighborhood=3, batch_size=COUNT, cuda=False,
        cache=False, save_cpu_ram=True, verbose=False)
    ours = _ours(folders, ["kid", "precision_recall", "density_coverage"], inception)
    assert ours.values["kid"] == pytest.approx(theirs["kernel_inception_distance_mean"], rel=1e-5, abs=1e-9)
    assert ours.values["kid_std"] == pytest.approx(theirs["kernel_inception_distance_std"], rel=1e-5, abs=1e-9)
    assert ours.values["precision"] == theirs["precision"] and ours.values["recall"] == theirs["recall"]
    assert 0 < ours.values["precision"] < 1 or 0 < ours.values["recall"] < 1  # a case that can tell them apart
    assert ours.values["kid"] > 0 and ours.values["kid_std"] > 0

    features = {name: extract_features(inception, _read_pngs(folders[name]), COUNT).numpy() for name in folders}
    prdc = compute_prdc(real_features=features["real"], fake_features=features["fake"], nearest_k=3)
    assert ours.values["density"] == pytest.approx(float(prdc["density"]), abs=1e-7)
    assert ours.values["coverage"] == pytest.approx(float(prdc["coverage"]), abs=1e-7)
    assert ours.details["kid"]["subset_size"] == 6 and ours.details["density_coverage"]["nearest_k"] == 3
    assert ours.details["kid"]["fid_resize"] == "legacy_tf"


def _inception_path(store: Path) -> str:
    from smisbench.weights import require

    return str(require("fid-inception", store)[0])


class _CountingExtractor(nn.Module):
    """Wraps an extractor and counts the images it is given."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner
        self.feature_extractor_internal_dtype = inner.feature_extractor_internal_dtype
        self.weights_sha256 = inner.weights_sha256
        self.images = 0

    def forward(self, x):
        self.images += x.shape[0]
        return self.inner(x)


def test_metrics_on_the_same_features_share_one_extraction(folders, random_inception_path):
    from smisbench.metrics.fid import load_inception

    counting = _CountingExtractor(load_inception(weights_path=random_inception_path))
    result = _ours(folders, ["kid", "precision_recall", "density_coverage"], counting)
    assert counting.images == 2 * COUNT  # real and generated once each, for three metrics
    assert set(result.values) == {"kid", "kid_std", "precision", "recall", "density", "coverage"}
    assert {result.details[m]["features"] for m in ("kid", "precision_recall", "density_coverage")} == {
        result.details["kid"]["features"]}


def test_real_features_are_cached_for_the_metrics_that_need_them(folders, random_inception_path, tmp_path):
    from smisbench.metrics.fid import load_inception

    counting = _CountingExtractor(load_inception(weights_path=random_inception_path))
    protocol = PROTOCOL.replace(stats_cache=True, dataset_root="/toy/folder", split="val")
    first = _ours(folders, ["kid", "density_coverage"], counting, protocol, tmp_path)
    again = _ours(folders, ["kid", "density_coverage"], counting, protocol, tmp_path)
    assert counting.images == 2 * COUNT + COUNT  # the second run extracts the generated images only
    assert first.details["kid"]["real_stats_cached"] is False and again.details["kid"]["real_stats_cached"] is True
    assert again.values == first.values
    other = _ours(folders, ["kid"], counting.inner, protocol.replace(fid_resize="clean"), tmp_path)
    assert other.details["kid"]["real_stats_cached"] is False  # the resize is part of the key
    assert len(list(tmp_path.glob("*.npz"))) == 2


def test_feature_metrics_refuse_too_few_images():
    from smisbench.metrics.feature_distances import density_coverage, kid, precision_recall

    few = torch.rand(3, 8)
    with pytest.raises(SmisbenchError, match="precision/recall needs at least 4"):
        precision_recall(few, few, 3)
    with pytest.raises(SmisbenchError, match="density/coverage needs at least 7"):
        density_coverage(few, torch.rand(9, 8), 5)
    with pytest.raises(SmisbenchError, match="KID needs at least 2"):
        kid(few[:1], few, 10, 1000, 0)
    out = kid(torch.rand(5, 8), torch.rand(7, 8), 4, 1000, 0)
    assert out["subset_size"] == 5  # capped at the smaller set


# ----------------------------------------------------------------------------- clean and legacy resizing
def test_clean_resize_is_clean_fids_own_output(tmp_path):
    """Our clean path's 299x299 float input is exactly what clean-fid's dataset gives for the saved PNGs."""
    from cleanfid.utils import ResizeDataset

    from smisbench.metrics.inception_input import clean_resize

    square = _images(3, 2, 48)
    for images in (square, F.pad(square, (0, 20, 0, 0), value=77), _images(4, 1, 400)):  # up and down, non-square
        files = [str(_write_pngs(image[None], tmp_path / f"{images.shape[-1]}-{i}") / "000.png")
                 for i, image in enumerate(images)]
        theirs = torch.stack([ResizeDataset(files, mode="clean")[i] for i in range(len(files))])
        ours = clean_resize(images)
        assert ours.dtype == torch.float32 and ours.shape == (len(files), 3, 299, 299)
        assert torch.equal(ours, theirs)
        assert not torch.equal(ours, ours.round())  # float values: nothing quantised after the resize


def test_float_input_path_gives_torch_fidelitys_own_features(random_inception_path):
    from smisbench.metrics.fid import extract_features, load_inception
    from smisbench.metrics.inception_input import pool_features_of_floats

    extractor = load_inception(weights_path=random_inception_path)
    images = torch.randint(0, 256, (2, 3, 299, 299), dtype=torch.uint8)
    assert torch.equal(pool_features_of_floats(extractor, images.float()), extract_features(extractor, images))


def _aliasing_pair(count: int, size: int = 384) -> tuple[torch.Tensor, torch.Tensor]:
    """Smooth images, and the same with a 1-pixel checkerboard: point-sampled bilinear downsizing to 299
    folds the checkerboard into visible moire, clean-fid's bicubic (a low-pass filter) mostly removes it."""
    generator = torch.Generator().manual_seed(0)
    smooth = F.interpolate(torch.rand(count, 3, 12, 12, generator=generator), size=(size, size), mode="bicubic",
                           align_corners=False).clamp(0, 1)
    real = (smooth * 200 + 20).round().to(torch.uint8)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    checker = ((yy + xx) % 2).float() * 2 - 1
    return real, (real.float() + 30 * checker).clamp(0, 255).round().to(torch.uint8)


@pytest.mark.weights
def test_clean_and_legacy_resizing_see_a_planted_aliasing_pattern_differently(inception):
    from smisbench.metrics.inception_input import inception_features

    real, fake = _aliasing_pair(2)
    shift = {}
    for mode in ("legacy_tf", "clean"):
        a, b = inception_features(inception, real, mode), inception_features(inception, fake, mode)
        shift[mode] = float(((a - b).norm(dim=1) / a.norm(dim=1)).mean())
    assert shift["legacy_tf"] > 1.2 * shift["clean"] > 0


@pytest.mark.weights
@pytest.mark.slow  # two 2048x2048 eigen-decompositions and 24 Inception passes at 299x299
def test_clean_and_legacy_fid_differ_on_the_planted_aliasing_pattern(inception):
    from smisbench.metrics.fid import frechet_distance, statistics
    from smisbench.metrics.inception_input import inception_features

    real, fake = _aliasing_pair(6)
    fid = {mode: frechet_distance(statistics(inception_features(inception, real, mode)),
                                  statistics(inception_features(inception, fake, mode)))
           for mode in ("legacy_tf", "clean")}
    assert fid["legacy_tf"] > 1.5 * fid["clean"] > 1.0


@pytest.mark.slow  # four 2048x2048 eigen-decompositions (torch-fidelity's FID), random Inception weights
def test_fid_resize_reaches_fid_and_fid_clean_stands_beside_it(folders, random_inception_path, tmp_path):
    from smisbench.metrics.fid import load_inception

    extractor = load_inception(weights_path=random_inception_path)
    protocol = PROTOCOL.replace(stats_cache=True, dataset_root="/toy/folder", split="val")
    both = _ours(folders, ["fid", "fid_clean"], extractor, protocol, tmp_path)
    assert set(both.values) == {"fid", "fid_clean"} and both.values["fid"] != both.values["fid_clean"]
    assert both.details["fid"]["fid_resize"] == "legacy_tf" and both.details["fid_clean"]["fid_resize"] == "clean"
    assert both.details["fid"]["stats_key"] != both.details["fid_clean"]["stats_key"]
    assert len(list(tmp_path.glob("*.npz"))) == 2  # one cache entry per resize
    clean = _ours(folders, ["fid"], extractor, PROTOCOL.replace(fid_resize="clean"))
    assert clean.values["fid"] == pytest.approx(both.values["fid_clean"], rel=1e-9)
    assert clean.details["fid"]["fid_resize"] == "clean"
