"""The synthetic data's own generative process as an SMIS model: the known truth every metric can be run on.

``SyntheticTruth`` has per-class codes whose entries *are* the style fields of
:mod:`smisbench.data.synthetic`: a standard-normal code entry z becomes the style value
``low + (high - low) * Phi(z)`` (Phi the normal CDF), which is exactly that field's uniform
distribution. ``generate`` paints each label map with those styles through the dataset's own
renderer (8-bit, as the real images are stored), so its images *are* images of the synthetic set,
and redrawing class c's code redraws class c's style and nothing else. Scored with the same
protocol code as any model (mCSD/mOCD, LPIPS diversity, redraw locality), it gives the data's true
class-specific and other-class diversity: the ceiling rows of the demo.

``GlobalTruth`` is its counterpart with one global code: a redraw redraws every class's style,
as a model without per-class control does (the known-truth tests use the pair).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from smisbench.data.synthetic import CONFIG, NUM_CLASSES, STYLE_FIELDS, STYLE_RANGES, render_image
from smisbench.datasets_config import DatasetConfig
from smisbench.imaging import from_uint8
from smisbench.models.base import CodesKind, LatentLayout, SMISModel


def styles_from_codes(z: torch.Tensor) -> np.ndarray:
    """(B, classes, fields) codes -> (B, classes, fields) float64 styles, each uniform on its range."""
    u = 0.5 * (1.0 + torch.erf(z.detach().double().cpu() / np.sqrt(2.0)))
    low, high = torch.from_numpy(STYLE_RANGES[..., 0]), torch.from_numpy(STYLE_RANGES[..., 1])
    return (low + (high - low) * u).numpy()


def codes_from_styles(style: np.ndarray) -> torch.Tensor:
    """The inverse of :func:`styles_from_codes` for (classes, fields) or (B, classes, fields) styles."""
    low, high = STYLE_RANGES[..., 0], STYLE_RANGES[..., 1]
    u = np.clip((np.asarray(style, dtype=np.float64) - low) / (high - low), 1e-12, 1 - 1e-12)
    return torch.from_numpy(np.sqrt(2.0) * _erfinv(2.0 * u - 1.0)).float()


def _erfinv(x: np.ndarray) -> np.ndarray:
    return torch.erfinv(torch.from_numpy(np.asarray(x, dtype=np.float64))).numpy()


class SyntheticTruth(SMISModel):
    """Renders label maps exactly as the synthetic dataset does; per-class codes are the classes' styles."""

    codes_kind = CodesKind.PER_CLASS
    model_name = "synthetic-truth"

    def __init__(self, dataset: DatasetConfig = CONFIG):
        super().__init__(dataset)
        if dataset.label_nc != NUM_CLASSES:
            raise ValueError(f"the synthetic truth has {NUM_CLASSES} classes, the config {dataset.label_nc}")
        # no weights at all: one frozen number only tells callers which device the model is on
        self.anchor = nn.Parameter(torch.zeros(1), requires_grad=False)
        self.latent = LatentLayout((NUM_CLASSES, len(STYLE_FIELDS)), (NUM_CLASSES * len(STYLE_FIELDS),),
                                   per_class=True)
        self.netG = nn.Identity()  # the renderer is not a network; kept so every model has a netG

    def generate(self, semantics: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        label = semantics[:, :NUM_CLASSES].argmax(1).cpu().numpy().astype(np.uint8)
        styles = styles_from_codes(z.reshape(z.shape[0], NUM_CLASSES, len(STYLE_FIELDS)))
        if styles.shape[0] == 1 and label.shape[0] > 1:
            styles = np.repeat(styles, label.shape[0], axis=0)
        images = [torch.from_numpy(render_image(lab, sty)).permute(2, 0, 1) for lab, sty in zip(label, styles)]
        return from_uint8(torch.stack(images)).to(semantics.device)


class GlobalTruth(SyntheticTruth):
    """The same renderer with one global code: every redraw changes every class's style."""

    codes_kind = CodesKind.GLOBAL
    model_name = "synthetic-truth-global"

    def __init__(self, dataset: DatasetConfig = CONFIG):
        super().__init__(dataset)
        self.latent = LatentLayout((NUM_CLASSES * len(STYLE_FIELDS),), (NUM_CLASSES * len(STYLE_FIELDS),),
                                   per_class=False)
