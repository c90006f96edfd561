"""The paper's applications on dataset items: appearance mixture and style morphing of encoded real images.

Mixture (the paper's Sec. 4.4): every class's code is encoded from a chosen real image (each image
encoded with its own label map), and one label map is rendered with the mixed codes. Morphing:
the codes of two encoded images are interpolated, ``(1 - t) z_a + t z_b``, t outside [0, 1]
extrapolating. Both work on any model with an encoder; mixture needs per-class codes.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch

from smisbench.errors import SmisbenchError
from smisbench.models import smis


def require_encoder(model: Any) -> None:
    if getattr(model, "netE", None) is None:
        raise SmisbenchError(f"{model.model_name or type(model).__name__} has no encoder: mixture and morphing "
                             "encode real images", "use a model with an encoder (groupdnet, vspade, groupnet, ...)")


def _item(dataset: Any, index: int, what: str) -> dict:
    if not 0 <= index < len(dataset):
        raise SmisbenchError(f"{what} index {index} is outside the split ({len(dataset)} items)",
                             f"use an index in 0..{len(dataset) - 1}")
    return dataset[index]


def _semantics(model: Any, item: dict) -> torch.Tensor:
    instance = item.get("instance")
    return model.semantics(item["label"][None], None if instance is None else instance[None], item.get("name", "item"))


@torch.no_grad()
def encode_item(model: Any, dataset: Any, index: int) -> torch.Tensor:
    """The posterior-mean codes (1, ...) of item ``index``, encoded with its own label map."""
    require_encoder(model)
    item = _item(dataset, index, "image")
    device = next(model.parameters()).device
    return smis.encode(model, item["image"][None].to(device), _semantics(model, item))


@dataclass
class Mixture:
    label: torch.Tensor  # (H, W) the label map rendered
    base_index: int
    sources: dict[int, int]  # class -> item index its code came from
    real: dict[int, torch.Tensor]  # item index -> its real image (3, H, W)
    reconstruction: torch.Tensor  # (3, H, W) the label map with the base image's codes
    mixed: torch.Tensor  # (3, H, W) with the mixed codes
    base_codes: torch.Tensor
    mixed_codes: torch.Tensor


@torch.no_grad()
def mixture(model: Any, dataset: Any, label_index: int, sources: Mapping[int, int],
            base_index: int | None = None) -> Mixture:
    """Render item ``label_index``'s label map with class c's code from item ``sources[c]`` (others: the base's)."""
    require_encoder(model)
    base_index = label_index if base_index is None else base_index
    target = _item(dataset, label_index, "label")
    for c, k in sources.items():
        present = torch.unique(_item(dataset, k, "source")["label"]).tolist()
        if c not in present:
            raise SmisbenchError(f"class {c} does not occur in item {k} (it has classes {present})",
                                 f"take class {c}'s code from an item whose label map contains it")
    order = [base_index] + sorted({k for k in sources.values()} - {base_index})
    codes = [encode_item(model, dataset, k) for k in order]
    mixed = smis.mix_codes(model, codes, {c: order.index(k) for c, k in sources.items()}, default=0)
    semantics = _semantics(model, target)
    images = smis.render(model, semantics, torch.cat([codes[0], mixed])).float().cpu()
    real = {k: _item(dataset, k, "image")["image"] for k in order}
    return Mixture(target["label"], base_index, dict(sources), real, images[0], images[1], codes[0], mixed)


@dataclass
class Morph:
    label: torch.Tensor
    ts: list[float]
    images: torch.Tensor  # (T, 3, H, W)
    real_a: torch.Tensor
    real_b: torch.Tensor
    codes: torch.Tensor  # (T, ...)


@torch.no_grad()
def morph(model: Any, dataset: Any, a: int, b: int, ts: Sequence[float], label_index: int | None = None,
          classes: Sequence[int] | None = None) -> Morph:
    """Images of item ``label_index``'s label map (default ``a``'s) along the codes between items a and b."""
    require_encoder(model)
    z_a, z_b = encode_item(model, dataset, a), encode_item(model, dataset, b)
    codes = smis.morph_codes(model, z_a, z_b, list(ts), classes)
    target = _item(dataset, a if label_index is None else label_index, "label")
    images = smis.render(model, _semantics(model, target), codes).float().cpu()
    return Morph(target["label"], [float(t) for t in ts], images, dataset[a]["image"], dataset[b]["image"], codes)


def steps_between(low: float, high: float, steps: int) -> list[float]:
    if steps < 2:
        raise SmisbenchError(f"--steps must be at least 2, got {steps}", "pass e.g. --steps 7")
    return [low + (high - low) * i / (steps - 1) for i in range(steps)]


def row_png(images: Sequence[torch.Tensor], scale: int = 2) -> bytes:
    """One row of (3, H, W) images in [-1, 1] as PNG bytes (white gaps, nearest-neighbour enlarged)."""
    from PIL import Image

    from smisbench.training.samples import grid_image

    image = grid_image({"row": torch.stack([im.detach().float().cpu().clamp(-1, 1) for im in images])})
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def mixture_row(result: Mixture, config: Any) -> list[torch.Tensor]:
    """Label map, the real images used (base first), the base reconstruction, the mixture."""
    from smisbench.data.palette import colorize

    return [colorize(result.label, config), *result.real.values(), result.reconstruction, result.mixed]


def morph_row(result: Morph, config: Any) -> list[torch.Tensor]:
    """Label map, real a, every step, real b."""
    from smisbench.data.palette import colorize

    return [colorize(result.label, config), result.real_a, *result.images, result.real_b]
