"""Semantically multi-modal synthesis on any registered model: per-class resampling, encoding, mixture, morphing.

All functions take the network input (``model.semantics(label)``) for one label map (batch 1) and a
``torch.Generator`` so every output is reproducible from a seed.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch

from smisbench.errors import SmisbenchError
from smisbench.models.base import CodesKind, SMISModel


def _require_per_class(model: SMISModel, what: str) -> None:
    if model.codes_kind != CodesKind.PER_CLASS:
        raise SmisbenchError(
            f"{what} needs per-class codes; {model.model_name or type(model).__name__} has codes kind {model.codes_kind.value}",
            "use a model with per-class codes (groupdnet, groupnet, mulnet, groupenc) or global resampling",
        )


def _require_count(n: int) -> None:
    if int(n) < 1:
        raise SmisbenchError(f"asked for {n} samples; at least 1 is needed", "ask for one or more samples (-n 3)")


def _generate_many(model: SMISModel, semantics: torch.Tensor, z: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Run the generator on many codes for one label map, ``batch_size`` at a time."""
    outputs = []
    for start in range(0, z.shape[0], batch_size):
        chunk = z[start : start + batch_size]
        outputs.append(model.generate(semantics.expand(chunk.shape[0], *semantics.shape[1:]), chunk))
    return torch.cat(outputs)


@torch.no_grad()
def class_codes(model: SMISModel, n: int, c: int | None, generator: torch.Generator, base: torch.Tensor | None = None) -> torch.Tensor:
    """``n`` codes equal to ``base`` except for class ``c`` (or everything, when ``c`` is None)."""
    if base is None:
        base = model.sample_z(1, generator)
    rows = [model.redraw(base, None if c is None else [c], generator) for _ in range(n)]
    return torch.cat(rows)


@torch.no_grad()
def sample_class(
    model: SMISModel, semantics: torch.Tensor, c: int, n: int, generator: torch.Generator,
    base: torch.Tensor | None = None, batch_size: int = 8,
) -> torch.Tensor:
    """``n`` images where only class ``c``'s code is redrawn; every other class keeps ``base``'s code."""
    _require_per_class(model, "per-class sampling")
    _require_count(n)
    classes = model.dataset.label_nc
    if not 0 <= int(c) < classes:
        raise SmisbenchError(f"class {c} is not a {model.dataset.name} class (ids 0..{classes - 1})",
                             f"choose classes between 0 and {classes - 1} (e.g. the ids present in the label map)")
    return _generate_many(model, semantics, class_codes(model, n, c, generator, base), batch_size)


@torch.no_grad()
def sample_global(model: SMISModel, semantics: torch.Tensor, n: int, generator: torch.Generator, batch_size: int = 8) -> torch.Tensor:
    """``n`` images with the whole code redrawn each time (plain multi-modal sampling)."""
    _require_count(n)
    if model.latent is None:  # deterministic model: every "sample" is the same image
        return torch.cat([model.generate(semantics, None) for _ in range(n)])
    return _generate_many(model, semantics, class_codes(model, n, None, generator), batch_size)


@torch.no_grad()
def encode(model: SMISModel, image: torch.Tensor, semantics: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Codes of a real image: the posterior mean, or a posterior sample when a generator is given."""
    mu, logvar = model.encode(image, semantics)
    if generator is None:
        return mu
    eps = torch.randn(mu.shape, generator=generator, device="cpu").to(mu.device, mu.dtype)
    return mu + eps * torch.exp(0.5 * logvar)


@torch.no_grad()
def mix_codes(model: SMISModel, codes: Sequence[torch.Tensor], source_of_class: Mapping[int, int], default: int = 0) -> torch.Tensor:
    """Appearance mixture: class c takes its code from ``codes[source_of_class[c]]`` (others from ``codes[default]``)."""
    _require_per_class(model, "appearance mixture")
    mixed = model.class_view(codes[default].clone())
    for c, k in source_of_class.items():
        if not 0 <= k < len(codes):
            raise SmisbenchError(f"class {c} asks for image {k}, but only {len(codes)} were encoded", "index the encoded images from 0")
        mixed[:, c] = model.class_view(codes[k])[:, c]
    return mixed.reshape(codes[default].shape)


@torch.no_grad()
def morph_codes(
    model: SMISModel, z_a: torch.Tensor, z_b: torch.Tensor, ts: Sequence[float], classes: Sequence[int] | None = None,
) -> torch.Tensor:
    """Style morphing: ``(1 - t) z_a + t z_b`` for each t (t outside [0, 1] extrapolates).

    With ``classes``, only those classes move (per-class models); the rest keep ``z_a``.
    """
    steps = []
    for t in ts:
        z = (1 - t) * z_a + t * z_b
        if classes is not None:
            _require_per_class(model, "per-class morphing")
            keep = model.class_view(z_a.clone())
            moved = model.class_view(z)
            for c in classes:
                keep[:, c] = moved[:, c]
            z = keep.reshape(z_a.shape)
        steps.append(z)
    return torch.cat(steps)


@torch.no_grad()
def render(model: SMISModel, semantics: torch.Tensor, codes: torch.Tensor, batch_size: int = 8) -> torch.Tensor:
    """Images for a stack of codes on one label map."""
    return _generate_many(model, semantics, codes, batch_size)
