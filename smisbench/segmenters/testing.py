"""Random-weight checkpoints in the released layouts, for tests and benchmarks.

The released segmenter files cannot be downloaded here (nor in CI), so the loaders are exercised
with networks built by the same code, filled with random values (BN statistics included, so a
wrongly loaded buffer changes the output) and saved under the released file names and key layout.
"""

from __future__ import annotations

from pathlib import Path

import torch

from smisbench.io import atomic_torch_save
from smisbench.segmenters.registry import get_spec


def randomize_(network: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Fill every floating tensor of the state with seeded random values of a sensible scale."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in network.state_dict().items():
            if not tensor.is_floating_point() or name == "up.weight":  # DRN's fixed upsampling kernel
                continue
            if name.endswith(("running_var", "_tmp_running_var")):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) * 0.5 + 0.75)
            elif name.endswith(("running_mean", "_tmp_running_mean")):
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.1)
            elif name.endswith("_running_iter"):
                tensor.fill_(1.0)
            elif tensor.dim() == 1:  # BN affine parameters and biases
                offset = 0.75 if "weight" in name else -0.25
                tensor.copy_(torch.rand(tensor.shape, generator=generator) * 0.5 + offset)
            else:
                fan_in = max(1, tensor[0].numel())
                tensor.copy_(torch.randn(tensor.shape, generator=generator) / fan_in ** 0.5)
    return network


def save_released_layout(name: str, network: torch.nn.Module, folder: str | Path) -> dict[str, Path]:
    """Write ``network``'s weights as the released file(s) of segmenter ``name``; returns ``{role: path}``."""
    spec = get_spec(name)
    folder = Path(folder)
    paths: dict[str, Path] = {}
    for entry in spec.checkpoints:
        if entry.role in paths:
            continue
        module = getattr(network, entry.role) if len(spec.roles) > 1 else network
        state = module.state_dict()
        payload = {"meta": {}, "state_dict": state} if spec.backend == "mmseg" else state
        # a random file under a pinned release name would (rightly) fail the sha256 check
        filename = entry.filename if entry.filename and entry.sha256 is None else f"random-{name}-{entry.role}.pth"
        path = folder / filename
        atomic_torch_save(payload, path)
        paths[entry.role] = path
    return paths


def random_weight_segmenter(name: str, folder: str | Path, *, multi_scale: bool = False, seed: int = 0):
    """A ready segmenter whose random weights went through the real save/verify/strict-load path."""
    import warnings

    from smisbench.segmenters.registry import build_network, load_segmenter

    paths = save_released_layout(name, randomize_(build_network(name), seed), folder)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*not in the table of released files.*")
        return load_segmenter(name, paths, multi_scale=multi_scale)
