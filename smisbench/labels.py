"""Label maps to network input: reading with validation, precise errors, one-hot encoding, instance edges."""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F

from smisbench.datasets_config import DatasetConfig
from smisbench.errors import LabelMapError
from smisbench.image_io import read_ids


def instance_edges(instance: torch.Tensor) -> torch.Tensor:
    """1 where a pixel's instance id differs from a 4-neighbour's (SPADE/pix2pixHD's boundary map).

    ``instance``: (B, H, W) or (B, 1, H, W) integer ids. Returns (B, 1, H, W) float.
    """
    if instance.dim() == 3:
        instance = instance.unsqueeze(1)
    edge = torch.zeros_like(instance, dtype=torch.bool)
    horizontal = instance[..., :, 1:] != instance[..., :, :-1]
    vertical = instance[..., 1:, :] != instance[..., :-1, :]
    edge[..., :, 1:] |= horizontal
    edge[..., :, :-1] |= horizontal
    edge[..., 1:, :] |= vertical
    edge[..., :-1, :] |= vertical
    return edge.float()


def validate_label_map(label: torch.Tensor, config: DatasetConfig, source: str = "label map") -> torch.Tensor:
    """Check dtype, shape and value range; return the map as (B, H, W) int64.

    ``source`` names the file or tensor in the error so a user can find the bad input.
    """
    if label.is_floating_point() or label.dtype == torch.bool or label.is_complex():
        raise LabelMapError(
            f"{source}: label maps must hold integer class ids, got dtype {label.dtype}",
            "load label PNGs without colour conversion (mode L or I) and pass an integer tensor",
        )
    if label.dim() == 4 and label.shape[1] == 1:
        label = label[:, 0]
    if label.dim() == 2:
        label = label.unsqueeze(0)
    if label.dim() != 3:
        raise LabelMapError(
            f"{source}: expected a label map of shape (H, W), (B, H, W) or (B, 1, H, W), got {tuple(label.shape)}",
            "pass one integer id per pixel, not a one-hot or colour map",
        )
    label = label.long()
    low, high = int(label.min()), int(label.max())
    if low < 0 or high >= config.label_nc:
        bad = torch.unique(label[(label < 0) | (label >= config.label_nc)])[:10].tolist()
        raise LabelMapError(
            f"{source}: label values {bad} are outside the {config.name} range 0..{config.label_nc - 1}",
            f"convert the map to {config.name}'s label ids (see the dataset reader) or choose the matching --dataset",
        )
    return label


def resize_ids(ids: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbour resize of an (H, W) id map, pixel-centre aligned like PIL's NEAREST (ids never blend)."""
    if tuple(ids.shape[-2:]) == tuple(size):
        return ids
    out = F.interpolate(ids[None, None].double(), size=tuple(size), mode="nearest-exact")
    return out[0, 0].to(ids.dtype)


def read_label_map(
    path: str | os.PathLike, config: DatasetConfig, instance_path: str | os.PathLike | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(H, W) int64 label ids (and instance ids) of one file, checked against ``config`` at the file's own size.

    Checking before any resize matters: a nearest-neighbour downscale can drop the very pixels
    whose values are wrong.
    """
    label = validate_label_map(torch.from_numpy(read_ids(path, "label map").astype("int64")), config, str(path))[0]
    if instance_path is None:
        return label, None
    instance = torch.from_numpy(read_ids(instance_path, "instance map").astype("int64"))
    if tuple(instance.shape) != tuple(label.shape):
        raise LabelMapError(
            f"instance map {instance_path} is {instance.shape[1]}x{instance.shape[0]} but label map {path} is "
            f"{label.shape[1]}x{label.shape[0]} (width x height)",
            "pair each label map with the instance map of the same frame",
        )
    return label, instance


def check_same_size(image: torch.Tensor, label: torch.Tensor, source: str = "image/label pair") -> None:
    """Refuse an image whose spatial size differs from its label map's."""
    if tuple(image.shape[-2:]) != tuple(label.shape[-2:]):
        raise LabelMapError(
            f"{source}: image size {tuple(image.shape[-2:])} differs from label size {tuple(label.shape[-2:])} (H, W)",
            "resize both with the dataset's preprocessing (labels with nearest neighbour) before pairing them",
        )


def one_hot(label: torch.Tensor, num_channels: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(B, H, W) ids -> (B, num_channels, H, W) one-hot, without a Python loop."""
    out = torch.zeros(label.shape[0], num_channels, *label.shape[1:], dtype=dtype, device=label.device)
    return out.scatter_(1, label.unsqueeze(1), 1.0)


def encode_semantics(
    label: torch.Tensor,
    config: DatasetConfig,
    instance: torch.Tensor | None = None,
    source: str = "label map",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Validated label map (and instance ids) -> the network input: one-hot plus the edge channel where used."""
    label = validate_label_map(label, config, source)
    semantics = one_hot(label, config.label_nc, dtype)
    if config.use_instance:
        if instance is None:
            edges = torch.zeros_like(semantics[:, :1])
        else:
            if instance.dim() == 2:
                instance = instance.unsqueeze(0)
            if tuple(instance.shape[-2:]) != tuple(label.shape[-2:]):
                raise LabelMapError(
                    f"{source}: instance map size {tuple(instance.shape[-2:])} differs from label size "
                    f"{tuple(label.shape[-2:])}",
                    "pair each *_labelIds.png with the *_instanceIds.png of the same frame",
                )
            edges = instance_edges(instance).to(dtype)
        semantics = torch.cat([semantics, edges], dim=1)
    return semantics


def resize_semantics(semantics: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(semantics, size=size, mode="nearest")
