"""A small segmenter the suite trains itself on the synthetic SMIS data.

No pretrained segmenter exists for the synthetic shapes, and the paper's segmenters cannot be had
offline, so the demo scores mIoU/accuracy with this network: a dilated FCN trained on the
synthetic *train* split's real images (the generated images it scores come from the *test* maps).
Its checkpoint is an ordinary file whose sha256 goes into every result's provenance.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from smisbench.imaging import from_uint8
from smisbench.io import atomic_torch_save, sha256_file
from smisbench.progress import progress_bar
from smisbench.segmenters.base import Segmenter, SegmenterSpec, as_pil_rgb, pil_to_float
from smisbench.segmenters.checkpoints import CheckpointFile
from smisbench.segmenters.registry import register

NAME = "synthetic-fcn"


class SyntheticFCN(nn.Module):
    """Dilated conv net with one skip: enough context to tell shapes apart at 64x64."""

    def __init__(self, num_classes: int, width: int = 32):
        super().__init__()

        def block(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, dilation, dilation), nn.BatchNorm2d(cout), nn.ReLU())

        self.stem = nn.Sequential(block(3, width), block(width, width, dilation=2))
        self.context = nn.Sequential(block(width, 2 * width, stride=2), block(2 * width, 2 * width, dilation=2),
                                     block(2 * width, 2 * width, dilation=4), block(2 * width, 2 * width, dilation=8))
        self.head = nn.Sequential(block(3 * width, width), nn.Conv2d(width, num_classes, 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """``image`` in [-1, 1]; returns logits at the input size."""
        skip = self.stem(image)
        context = F.interpolate(self.context(skip), size=skip.shape[2:], mode="bilinear", align_corners=False)
        return self.head(torch.cat([skip, context], dim=1))


class SyntheticFCNSegmenter(Segmenter):
    """RGB uint8 -> logits of the synthetic classes (image scaled to [-1, 1] like the generators' output)."""

    def scores(self, image: Any, out_size: tuple[int, int] | None = None) -> torch.Tensor:
        x = from_uint8(pil_to_float(as_pil_rgb(image))).to(self.device)[None]
        logits = self.network(x)
        if out_size is not None and tuple(out_size) != tuple(logits.shape[2:]):
            logits = F.interpolate(logits, size=tuple(out_size), mode="bilinear", align_corners=False)
        return logits[0]


def _classes() -> tuple[str, ...]:
    from smisbench.data.synthetic import CLASS_NAMES

    return tuple(CLASS_NAMES)


def train_synthetic_fcn(out: str | os.PathLike, steps: int = 300, batch_size: int = 16, seed: int = 0,
                        size: int = 64, progress: bool = True) -> dict[str, Any]:
    """Train on the synthetic train split and write the state dict atomically; returns its provenance."""
    from smisbench.data.synthetic import SyntheticSMIS

    torch.manual_seed(seed)
    data = SyntheticSMIS("train", size=size, seed=seed)
    network = SyntheticFCN(len(_classes()))
    optimizer = torch.optim.Adam(network.parameters(), lr=2e-3)
    order = torch.Generator().manual_seed(seed)
    network.train()
    losses = []
    for _ in progress_bar(range(steps), desc="train synthetic segmenter", enabled=progress, unit="step"):
        index = torch.randint(0, len(data), (batch_size,), generator=order).tolist()
        items = [data[i] for i in index]
        images = torch.stack([item["image"] for item in items])
        labels = torch.stack([item["label"] for item in items])
        loss = F.cross_entropy(network(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    atomic_torch_save(network.state_dict(), out)
    return {"file": str(out), "sha256": sha256_file(out), "steps": steps, "batch_size": batch_size, "seed": seed,
            "final_loss": sum(losses[-10:]) / max(1, len(losses[-10:]))}


def trained_checkpoint(cache_dir: str | os.PathLike, steps: int, seed: int = 0, size: int = 64,
                       progress: bool = True) -> dict[str, Any]:
    """The checkpoint for these settings, trained once and reused (the file name carries the settings)."""
    path = Path(cache_dir) / f"synthetic_fcn_s{steps}_seed{seed}_{size}px.pt"
    if path.is_file():
        return {"file": str(path), "sha256": sha256_file(path), "steps": steps, "seed": seed, "reused": True}
    return train_synthetic_fcn(path, steps=steps, seed=seed, size=size, progress=progress)


def _load(spec: SegmenterSpec, paths: dict[str, Path], *, device: str = "cpu", multi_scale: bool | None = None,
          expected_sha256: dict[str, str] | None = None, **_: Any) -> SyntheticFCNSegmenter:
    from smisbench.segmenters.checkpoints import (
        extract_state_dict, load_checkpoint_file, load_state_dict_strict, verify_checksum,
    )

    path = paths["model"]
    record = verify_checksum(path, "model", spec.checkpoints, spec.name, (expected_sha256 or {}).get("model"))
    network = spec.build()
    load_state_dict_strict(network, extract_state_dict(load_checkpoint_file(path), f"{spec.name} file {path}"),
                           f"{spec.name} file {path}")
    return SyntheticFCNSegmenter(spec, network, device, multi_scale=False,
                                 provenance={"checkpoint": {"file": str(path), "sha256": record.sha256}})


SPEC = register(SegmenterSpec(
    name=NAME,
    dataset="synthetic",
    classes=_classes(),
    label_convention="synthetic",
    preprocessing={"input": "RGB uint8 -> x / 127.5 - 1", "scales": [1.0], "flip": False},
    checkpoints=(CheckpointFile("model", "synthetic_fcn_s<steps>_seed<seed>_64px.pt", "trained by smisbench",
                                None, "trained by the suite on the synthetic train split (train_synthetic_fcn)"),),
    build=lambda: SyntheticFCN(len(_classes())),
    load=_load,
    reference="smisbench (this suite)",
    notes="only meaningful on the synthetic dataset; stands in for the paper's segmenters in the CPU demo",
))
