"""Sample grids written with each checkpoint: label map, real image, generated images, one column per item."""

from __future__ import annotations

import io
from pathlib import Path

import torch
from PIL import Image

from smisbench.data.palette import colorize
from smisbench.imaging import to_uint8_array
from smisbench.io import atomic_write_bytes
from smisbench.models.base import SMISModel


@torch.no_grad()
def sample_rows(model: SMISModel, batch: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """Rows of the grid in [-1, 1]: label colours, real images, a prior sample (fixed seed), and the
    reconstruction from the encoded real image where the model has an encoder. Runs in eval mode."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        label = batch["label"].to(device)
        real = batch["image"].to(device)
        semantics = model.semantics(label, batch.get("instance"), "sample batch")
        z = model.sample_z(label.shape[0], torch.Generator().manual_seed(seed), device)
        rows = {
            "label": colorize(label, model.dataset),
            "real": real,
            "generated": model.generate(semantics, z).float(),
        }
        if model.netE is not None:
            mu, _ = model.encode(real, semantics)
            rows["encoded"] = model.generate(semantics, mu).float()
    finally:
        model.train(was_training)
    return {k: v.detach().float().cpu().clamp(-1, 1) for k, v in rows.items()}


def grid_image(rows: dict[str, torch.Tensor], pad: int = 2) -> Image.Image:
    """Stack the rows (each (B, 3, H, W)) into one RGB image with ``pad`` white pixels between cells."""
    tensors = list(rows.values())
    b, _, h, w = tensors[0].shape
    canvas = torch.ones(3, len(tensors) * (h + pad) + pad, b * (w + pad) + pad)  # white in [-1, 1]
    for r, row in enumerate(tensors):
        for c in range(b):
            top, left = pad + r * (h + pad), pad + c * (w + pad)
            canvas[:, top: top + h, left: left + w] = row[c]
    return Image.fromarray(to_uint8_array(canvas))


def save_grid(path: Path, rows: dict[str, torch.Tensor], scale: int = 1) -> Path:
    """Write the grid PNG atomically (``scale`` enlarges small images with nearest neighbour)."""
    image = grid_image(rows)
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())
    return path
