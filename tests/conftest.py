"""Shared test fixtures: where the real sample data lives, and how to skip without it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SMISBENCH_SHARED", REPO.parent / "shared"))
SAMPLES = SHARED / "data" / "samples"
OFFICIAL_KEYS = SHARED / "spec" / "official_keys"


def need(path: Path) -> Path:
    """Skip (with the reason) when a file from ../shared is absent, as in a user's clone."""
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared data folder ../shared is not beside this checkout")
    return path


@pytest.fixture
def samples() -> Path:
    return need(SAMPLES)


@pytest.fixture
def official_keys() -> Path:
    return need(OFFICIAL_KEYS)


# Session fixtures for the provisioned LPIPS/FID weights, shared by every test module (set up once per run).
from conftest_weights import (  # noqa: E402,F401
    inception,
    lpips_alex,
    lpips_random,
    provisioned_weights,
    random_inception_path,
)
