"""The interface every loaded segmenter offers to the scoring code.

A segmenter takes an RGB image (uint8, as read from the generated PNG) and returns class
scores resized to a requested size, or evaluation class ids. Scores stay in the network's
own classes (CIHP's 20 for the human parser); ``to_eval_classes`` maps argmax ids to the
dataset's evaluation classes, so resizing logits and mapping classes happen in the order
the original code used.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
import torch
from PIL import Image

from smisbench.segmenters.checkpoints import CheckpointFile


@dataclass(frozen=True)
class SegmenterSpec:
    """Everything needed to run and cite one segmenter.

    ``classes`` are the evaluation classes its predictions are scored in; ``label_convention``
    names how the dataset's stored label maps become those classes; ``checkpoints`` lists the
    released files per role (one role for most, ``encoder`` + ``decoder`` for CSAIL's UperNet).
    """

    name: str
    dataset: str
    classes: tuple[str, ...]
    label_convention: str
    preprocessing: Mapping[str, Any]
    checkpoints: tuple[CheckpointFile, ...]
    build: Callable[[], torch.nn.Module]
    load: Callable[..., Any]
    ignore_index: int = 255
    backend: str = "native"
    reference: str = ""
    published: str = ""
    notes: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c.role for c in self.checkpoints))

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dataset": self.dataset,
            "backend": self.backend,
            "num_classes": len(self.classes),
            "ignore_index": self.ignore_index,
            "label_convention": self.label_convention,
            "preprocessing": dict(self.preprocessing),
            "checkpoints": [
                {"role": c.role, "filename": c.filename, "url": c.url, "sha256": c.sha256, "note": c.note}
                for c in self.checkpoints
            ],
            "reference": self.reference,
            "published": self.published,
            "notes": self.notes,
        }


def as_pil_rgb(image: torch.Tensor | np.ndarray | Image.Image) -> Image.Image:
    """Accept a PIL image, an (H, W, 3) uint8 array or a (3, H, W) uint8 tensor; return PIL RGB."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, torch.Tensor):
        if image.dim() != 3 or image.shape[0] != 3:
            raise ValueError(f"expected a (3, H, W) image tensor, got {tuple(image.shape)}")
        if image.dtype != torch.uint8:
            raise ValueError("image tensors must be uint8 RGB (0..255), as read from a PNG; "
                             "convert generator outputs with smisbench.imaging.to_uint8")
        image = image.permute(1, 2, 0).cpu().numpy()
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB array, got {array.dtype} {array.shape}")
    return Image.fromarray(array, "RGB")


def pil_to_float(image: Image.Image) -> torch.Tensor:
    """(3, H, W) float32 in 0..255 from a PIL RGB image."""
    return torch.from_numpy(np.asarray(image, dtype=np.float32).copy()).permute(2, 0, 1)


class Segmenter(ABC):
    """A loaded network plus the inference procedure of its original code."""

    def __init__(self, spec: Any, network: torch.nn.Module, device: str | torch.device = "cpu",
                 multi_scale: bool = True, provenance: dict[str, Any] | None = None):
        self.spec = spec
        self.device = torch.device(device)
        self.network = network.to(self.device).eval()
        self.multi_scale = multi_scale
        self.provenance: dict[str, Any] = provenance or {}

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.spec.classes)

    @property
    def num_classes(self) -> int:
        return len(self.spec.classes)

    @abstractmethod
    def scores(self, image: Any, out_size: tuple[int, int] | None = None) -> torch.Tensor:
        """(C_native, h, w) class scores at ``out_size`` (default: the image's size)."""

    def to_eval_classes(self, native: torch.Tensor) -> torch.Tensor:
        """Map argmax ids of the network's own classes to the evaluation classes (identity by default)."""
        return native

    @torch.inference_mode()
    def predict(self, image: Any, out_size: tuple[int, int] | None = None) -> torch.Tensor:
        """(h, w) int64 evaluation class ids, the scores' argmax at ``out_size``."""
        return self.to_eval_classes(self.scores(image, out_size).argmax(0)).cpu()

    def describe(self) -> dict[str, Any]:
        return {
            "segmenter": self.spec.name,
            "backend": self.spec.backend,
            "multi_scale": self.multi_scale,
            "device": str(self.device),
            **self.provenance,
        }
