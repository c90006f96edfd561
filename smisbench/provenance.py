"""Where a number came from: code version, library versions, hardware and numeric settings."""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
from pathlib import Path
from typing import Any

from smisbench.host_memory import host_malloc_mode

_PACKAGES = ("smisbench", "torch", "torchvision", "numpy", "lpips", "torch-fidelity", "pandas")


def git_commit(start: str | Path | None = None) -> str | None:
    """The commit of the source tree smisbench runs from (None outside a git checkout)."""
    where = Path(start) if start else Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=where, capture_output=True, text=True, timeout=10,
    ).stdout.strip()
    return out.stdout.strip() + ("+dirty" if dirty else "")


def package_versions(names: tuple[str, ...] = _PACKAGES) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def device_description(device: Any) -> str:
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()})"


def environment(device: Any = "cpu") -> dict[str, Any]:
    """Everything about the running process that can change a measured number."""
    import torch

    return {
        "git_commit": git_commit(),
        "versions": package_versions(),
        "python": platform.python_version(),
        "device": str(device),
        "device_name": device_description(device),
        "threads": torch.get_num_threads(),
        "host_malloc": host_malloc_mode(),  # CPU speed only: "reuse" keeps freed memory (smisbench.host_memory)
        "platform": platform.platform(),
    }
