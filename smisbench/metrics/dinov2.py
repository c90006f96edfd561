"""DINOv2 ViT backbones (the ViT-L/14 of FD-DINOv2) written with torch modules, loaded from the release file.

The architecture is that of ``facebookresearch/dinov2``'s hub backbones (``dinov2_vitl14``:
embed 1024, 24 blocks, 16 heads of 64, MLP ratio 4, LayerScale, LayerNorm eps 1e-6, patch 14,
position embeddings for a 37x37 grid resized bicubically with the release's 0.1 offset, no
register tokens), with the parameter names of its released ``dinov2_vitl14_pretrain.pth`` so
that file loads strictly. The features are the normalised class token (the hub model's output).

torch-fidelity ships the preprocessing (TF1-compatible bilinear to 224, ImageNet mean/std) but
builds the network only through ``torch.hub`` (a download); :class:`DinoV2Features` keeps its
forward and swaps in this network, loaded from a file given by path and pinned by sha256.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from smisbench.errors import WeightsError

HEAD_DIM = 64  # every DINOv2 size has 64-wide heads (S 384/6, B 768/12, L 1024/16, g 1536/24)
POS_OFFSET = 0.1  # the release's interpolation offset (interpolate_offset)
FEATURE = "dinov2"


@dataclass(frozen=True)
class ViTShape:
    """What a state dict says about its network."""

    embed_dim: int
    depth: int
    patch: int
    grid: int
    mlp_hidden: int

    @property
    def heads(self) -> int:
        return self.embed_dim // HEAD_DIM

    @property
    def name(self) -> str:
        sizes = {384: "S", 768: "B", 1024: "L", 1536: "g"}
        return f"ViT-{sizes.get(self.embed_dim, self.embed_dim)}/{self.patch}"


VIT_L14 = ViTShape(embed_dim=1024, depth=24, patch=14, grid=37, mlp_hidden=4096)


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)  # softmax(q k^T / sqrt(64)) v
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class _LayerScale(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = _Attention(dim, heads)
        self.ls1 = _LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = _Mlp(dim, hidden)
        self.ls2 = _LayerScale(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class _PatchEmbed(nn.Module):
    def __init__(self, patch: int, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, H/p * W/p, D)


class DinoV2ViT(nn.Module):
    """A DINOv2 vision transformer; ``forward`` gives the normalised class token (B, embed_dim)."""

    def __init__(self, shape: ViTShape = VIT_L14):
        super().__init__()
        self.shape = shape
        d = shape.embed_dim
        self.patch_embed = _PatchEmbed(shape.patch, d)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, shape.grid * shape.grid + 1, d))
        self.mask_token = nn.Parameter(torch.zeros(1, d))  # in the release file; only training masks patches
        self.blocks = nn.ModuleList(_Block(d, shape.heads, shape.mlp_hidden) for _ in range(shape.depth))
        self.norm = nn.LayerNorm(d, eps=1e-6)

    def position_embedding(self, height: int, width: int) -> torch.Tensor:
        """The (1, 1 + h*w, D) position embeddings for a (height, width) input, as the release resizes them.

        The stored grid is resized bicubically (no antialiasing) by the scale factors
        ((h + 0.1) / grid, (w + 0.1) / grid), not to a size: the scale factor sets where the
        bicubic taps fall, so this is what the released network computes.
        """
        h, w = height // self.shape.patch, width // self.shape.patch
        grid = self.shape.grid
        if h == w == grid:
            return self.pos_embed
        pos = self.pos_embed.float()
        patches = pos[:, 1:].reshape(1, grid, grid, -1).permute(0, 3, 1, 2)
        patches = F.interpolate(patches, scale_factor=((h + POS_OFFSET) / grid, (w + POS_OFFSET) / grid),
                                mode="bicubic", antialias=False)
        if tuple(patches.shape[-2:]) != (h, w):
            raise WeightsError(f"position embeddings resized to {tuple(patches.shape[-2:])}, not {(h, w)}",
                               "feed images whose sides are multiples of the patch size")
        patches = patches.permute(0, 2, 3, 1).reshape(1, h * w, -1)
        return torch.cat([pos[:, :1], patches], dim=1).to(self.pos_embed.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patch_embed(x)
        tokens = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        tokens = tokens + self.position_embedding(x.shape[-2], x.shape[-1]).to(tokens.dtype)
        for block in self.blocks:
            tokens = block(tokens)
        return self.norm(tokens)[:, 0]


def shape_of_state(state: dict[str, torch.Tensor]) -> ViTShape:
    """The architecture a DINOv2 state dict describes (raises WeightsError for anything else)."""
    needed = ("cls_token", "pos_embed", "patch_embed.proj.weight", "blocks.0.mlp.fc1.weight")
    missing = [k for k in needed if k not in state]
    if missing:
        raise WeightsError(f"not a DINOv2 ViT state dict (no {', '.join(missing)})",
                           "pass the released dinov2_vit*14_pretrain.pth file (a plain state dict)")
    if any(k.startswith("register_tokens") or ".mlp.w12." in k for k in state):
        raise WeightsError("the file is a DINOv2 variant with register tokens or a SwiGLU MLP",
                           "pass the plain dinov2_vitl14_pretrain.pth release file")
    tokens = state["pos_embed"].shape[1] - 1
    grid = math.isqrt(tokens)
    if grid * grid != tokens:
        raise WeightsError(f"position embeddings for {tokens} patches are not a square grid",
                           "pass the released DINOv2 file")
    depth = len({k.split(".")[1] for k in state if k.startswith("blocks.")})
    return ViTShape(embed_dim=int(state["cls_token"].shape[-1]), depth=depth,
                    patch=int(state["patch_embed.proj.weight"].shape[-1]), grid=grid,
                    mlp_hidden=int(state["blocks.0.mlp.fc1.weight"].shape[0]))


def build_from_state(state: dict[str, torch.Tensor], expect: ViTShape | None = VIT_L14) -> DinoV2ViT:
    """The network for ``state``, loaded strictly; ``expect`` refuses any other architecture."""
    shape = shape_of_state(state)
    if expect is not None and shape != expect:
        raise WeightsError(f"the DINOv2 file holds a {shape.name} ({shape}), not the {expect.name} this metric means",
                           "pass the official dinov2_vitl14_pretrain.pth")
    model = DinoV2ViT(shape)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise WeightsError(f"the DINOv2 file does not fit {shape.name}: {err}",
                           "pass the official release file, unmodified") from None
    return model


def _extractor_base():
    from torch_fidelity.feature_extractor_dinov2 import FeatureExtractorDinoV2

    return FeatureExtractorDinoV2


class DinoV2Features(_extractor_base()):
    """torch-fidelity's DINOv2 feature extractor (its preprocessing and forward) on a network from a file.

    torch-fidelity's own constructor only downloads through torch.hub; this one takes the network.
    """

    def __init__(self, model: DinoV2ViT, name: str = "dinov2-vit-l-14"):
        from torch_fidelity.feature_extractor_base import FeatureExtractorBase

        FeatureExtractorBase.__init__(self, name, [FEATURE])
        self.feature_extractor_internal_dtype = torch.float32
        self.model = model
        self.requires_grad_(False)
        self.eval()


def load_dinov2(path: str | os.PathLike, sha256: str | None, device: torch.device | str = "cpu",
                expect: ViTShape | None = VIT_L14) -> DinoV2Features:
    """The feature extractor for a released DINOv2 file, its sha256 checked first (never downloaded)."""
    from smisbench.metrics.extra_spaces import verified_path

    checked, digest = verified_path(path, sha256, "DINOv2", "fd_dinov2")
    try:
        state = torch.load(checked, map_location="cpu", weights_only=True)
    except Exception as err:  # a corrupt or non-tensor file: torch.load's own reason
        raise WeightsError(f"{checked} is not a loadable state dict ({type(err).__name__}: {err})",
                           "pass the released dinov2_vitl14_pretrain.pth") from None
    if not isinstance(state, dict):
        raise WeightsError(f"{checked} holds a {type(state).__name__}, not a state dict",
                           "pass the released dinov2_vitl14_pretrain.pth")
    extractor = DinoV2Features(build_from_state(dict(state), expect))
    extractor.weights_sha256 = digest
    extractor.architecture = extractor.model.shape.name
    return extractor.to(device).eval()
