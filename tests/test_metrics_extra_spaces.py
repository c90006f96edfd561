"""FD-CLIP and FD-DINOv2: release-layout files with random weights, loaded by path through the same loaders,
sha256-checked, features computed; nothing is downloaded."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from conftest_weights import TOY_DATASET, ToyPerClassModel
from smisbench.errors import WeightsError
from smisbench.io import sha256_file
from smisbench.metrics.dinov2 import VIT_L14, DinoV2ViT, ViTShape, load_dinov2
from smisbench.metrics.evaluate import evaluate
from smisbench.metrics.extra_spaces import load_clip
from smisbench.metrics.protocol import CLIP_VIT_B32_SHA256, EvalProtocol

TINY_VIT = ViTShape(embed_dim=128, depth=2, patch=14, grid=4, mlp_hidden=512)


class _Maps(Dataset):
    def __init__(self, count: int = 4):
        self.count = count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> dict:
        generator = torch.Generator().manual_seed(index)
        return {"label": torch.randint(0, 8, (64, 64), generator=generator),
                "image": torch.rand(3, 64, 64, generator=generator) * 2 - 1}


def _uint8(count: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (count, 3, 48, 40), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


# ----------------------------------------------------------------------------- CLIP ViT-B/32
class _ClipRelease(nn.Module):
    """OpenAI's released module as far as the visual tower goes (``visual.*`` and ``text_projection``)."""

    def __init__(self, width: int = 768, layers: int = 12, patch: int = 32, embed: int = 512):
        super().__init__()
        from torch_fidelity.feature_extractor_clip import CLIPVisual

        torch.manual_seed(0)
        self.visual = CLIPVisual(embed, 224, layers, width, patch).visual
        self.text_projection = nn.Parameter(torch.randn(embed, embed) / embed ** 0.5)

    def forward(self, x):
        return self.visual(x) @ self.text_projection


def _clip_file(path: Path, **shape) -> Path:
    import warnings

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.jit.trace(_ClipRelease(**shape).eval(), torch.rand(1, 3, 224, 224)).save(str(path))
    return path


@pytest.fixture(scope="module")
def clip_file(tmp_path_factory) -> Path:
    """A TorchScript file of ViT-B/32's exact architecture with random weights (the release's format)."""
    return _clip_file(tmp_path_factory.mktemp("clip") / "ViT-B-32-random.pt")


def test_clip_vit_b32_file_loads_by_path_after_its_sha256(clip_file):
    sha = sha256_file(clip_file)
    extractor = load_clip(clip_file, sha)
    assert extractor.weights_sha256 == sha and extractor.architecture == "CLIP ViT-B/32 visual tower"
    with torch.no_grad():
        features = extractor(_uint8(2))[0]
    assert features.shape == (2, 512) and torch.isfinite(features).all() and float(features.std()) > 0
    with pytest.raises(WeightsError, match="is pinned"):
        load_clip(clip_file, CLIP_VIT_B32_SHA256)  # the official digest: a random file is refused
    with pytest.raises(WeightsError, match="not pinned"):
        load_clip(clip_file, None)
    with pytest.raises(WeightsError, match="fd_clip_weights is empty"):
        load_clip(None, sha)


def test_a_clip_file_of_another_architecture_is_refused(tmp_path):
    small = _clip_file(tmp_path / "small.pt", width=64, layers=2)
    with pytest.raises(WeightsError, match="not ViT-B/32"):
        load_clip(small, sha256_file(small))
    assert load_clip(small, sha256_file(small), expect=None).model.visual.transformer.layers == 2


def test_fd_clip_through_the_protocol(clip_file):
    protocol = EvalProtocol(batch_size=2, fid_samples=4, fd_clip_weights=str(clip_file),
                            fd_clip_sha256=sha256_file(clip_file), stats_cache=False)
    result = evaluate(ToyPerClassModel(), _Maps(4), TOY_DATASET, ["fd_clip"], protocol, progress=False)
    assert set(result.values) == {"fd_clip"} and result.values["fd_clip"] > 0
    assert result.provenance["weights"]["fd-clip"] == protocol.fd_clip_sha256
    assert result.details["fd_clip"]["features"].startswith("CLIP ViT-B/32")
    assert result.details["fd_clip"]["samples"] == 4


# ----------------------------------------------------------------------------- DINOv2
def _dinov2_file(path: Path, shape: ViTShape) -> Path:
    torch.manual_seed(0)
    model = DinoV2ViT(shape)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name in ("cls_token", "pos_embed", "mask_token") or name.endswith("gamma"):
                parameter.normal_(0, 0.5)
    torch.save(model.state_dict(), path)
    return path


def test_dinov2_file_loads_by_path_after_its_sha256_and_gives_class_token_features(tmp_path):
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x
    from torchvision.transforms.functional import normalize

    path = _dinov2_file(tmp_path / "tiny.pth", TINY_VIT)
    sha = sha256_file(path)
    extractor = load_dinov2(path, sha, expect=None)
    images = _uint8(3)
    with torch.no_grad():
        features = extractor(images)[0]
        # torch-fidelity's DINOv2 preprocessing, then the network: the class token after the last norm
        x = interpolate_bilinear_2d_like_tensorflow1x(images.float(), size=(224, 224), align_corners=False)
        x = normalize(x, (255 * 0.485, 255 * 0.456, 255 * 0.406), (255 * 0.229, 255 * 0.224, 255 * 0.225))
        direct = extractor.model(x)
    assert features.shape == (3, 128) and torch.equal(features, direct) and float(features.std()) > 0
    assert extractor.weights_sha256 == sha and extractor.architecture == "ViT-128/14"
    with pytest.raises(WeightsError, match="not the ViT-L/14"):
        load_dinov2(path, sha)  # the metric's default expects the released ViT-L/14
    with pytest.raises(WeightsError, match="is pinned"):
        load_dinov2(path, "0" * 64, expect=None)
    with pytest.raises(WeightsError, match="not pinned"):
        load_dinov2(path, None, expect=None)


def test_dinov2_position_embeddings_follow_the_input_size(tmp_path):
    path = _dinov2_file(tmp_path / "tiny.pth", TINY_VIT)
    model = load_dinov2(path, sha256_file(path), expect=None).model
    native = model.position_embedding(4 * 14, 4 * 14)
    assert native is model.pos_embed  # the stored grid itself at its own size
    resized = model.position_embedding(16 * 14, 10 * 14)
    assert resized.shape == (1, 1 + 16 * 10, 128)
    assert torch.equal(resized[:, 0], model.pos_embed[:, 0])  # the class token's embedding is not resized


def test_fd_dinov2_through_the_protocol_refuses_other_architectures_and_runs_on_a_loaded_network(tmp_path):
    path = _dinov2_file(tmp_path / "tiny.pth", TINY_VIT)
    sha = sha256_file(path)
    protocol = EvalProtocol(batch_size=2, fid_samples=4, fd_dinov2_weights=str(path), fd_dinov2_sha256=sha,
                            stats_cache=False)
    with pytest.raises(WeightsError, match="not the ViT-L/14"):
        evaluate(ToyPerClassModel(), _Maps(4), TOY_DATASET, ["fd_dinov2"], protocol, progress=False)
    network = load_dinov2(path, sha, expect=None)
    result = evaluate(ToyPerClassModel(), _Maps(4), TOY_DATASET, ["fd_dinov2"], protocol,
                      networks={"dinov2": network}, progress=False)
    assert set(result.values) == {"fd_dinov2"} and result.values["fd_dinov2"] > 0
    assert result.provenance["weights"]["fd-dinov2"] == sha


def test_the_released_vit_l14_layout_has_the_official_parameter_count():
    with torch.device("meta"):
        model = DinoV2ViT(VIT_L14)
    state = model.state_dict()
    assert sum(v.numel() for v in state.values()) == 304_368_640  # dinov2_vitl14 (pos_embed for 518 = 37 x 37)
    assert state["pos_embed"].shape == (1, 1370, 1024) and state["blocks.23.ls2.gamma"].shape == (1024,)
    assert state["blocks.0.attn.qkv.weight"].shape == (3072, 1024) and "mask_token" in state


@pytest.mark.slow  # builds, saves (1.2 GB), hashes and loads a random ViT-L/14
def test_a_vit_l14_file_loads_through_the_default_loader(tmp_path):
    path = _dinov2_file(tmp_path / "dinov2_vitl14_random.pth", VIT_L14)
    extractor = load_dinov2(path, sha256_file(path))
    assert extractor.architecture == "ViT-L/14"
    with torch.no_grad():
        features = extractor(_uint8(2))[0]
    assert features.shape == (2, 1024) and torch.isfinite(features).all()
