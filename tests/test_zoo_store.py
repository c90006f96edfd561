"""Zoo checkpoints: float16 storage loads back strictly as float32, manifests' sha256 are checked, verify tells
ok / failed / stale / not shipped apart, and every shipped checkpoint matches its manifest and loads strictly."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from smisbench.data.synthetic import SyntheticSMIS
from smisbench.errors import SmisbenchError, WeightsError
from smisbench.io import sha256_file
from smisbench.models.registry import build_model
from smisbench.zoo.definition import load_zoo, settings_for
from smisbench.zoo.store import (
    checked_file, checkpoint_path, float16_check, load_checkpoint, load_zoo_model, manifests, save_float16,
    shipped_dir, total_bytes, write_manifest,
)
from smisbench.zoo.verify import verify

ZOO = load_zoo()


def _ship(folder: Path, ident: str = "dscgan", **train_changes) -> Path:
    """A zoo entry 'trained' to random weights: file in float16 and a manifest recording the zoo's settings."""
    m = ZOO.model(ident)
    torch.manual_seed(0)
    model = build_model(m.model, ZOO.dataset, **m.config)
    path = checkpoint_path(folder, ident)
    save_float16(model, path, {"zoo_id": ident})
    settings = {**settings_for(ZOO, ident).to_dict(), **train_changes}
    write_manifest(folder, ident, {"id": ident, "kind": "model", "train": settings, "steps": settings["steps"],
                                   "file": {"sha256": sha256_file(path), "bytes": path.stat().st_size}})
    return path


def test_float16_storage_loads_strictly_back_as_float32(tmp_path):
    torch.manual_seed(0)
    model = build_model("groupdnet", "synthetic")
    path = tmp_path / "g.pt"
    save_float16(model, path, {})
    raw = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    floats = [v for v in raw.values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float16 for v in floats)
    assert any(not v.is_floating_point() for v in raw.values())  # BatchNorm's num_batches_tracked stays an integer
    assert next(model.parameters()).dtype == torch.float32  # the original is untouched
    loaded, _ = load_checkpoint(path)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    for key, value in loaded.state_dict().items():
        if value.is_floating_point():
            assert torch.equal(value, model.state_dict()[key].half().float()), key
    check = float16_check(model, path, SyntheticSMIS("test", length=4))  # random weights saturate: no bound here
    assert check["items"] == 4 and 0 <= check["mean_abs"] <= check["max_abs"] <= 2


def test_sha256_mismatch_and_missing_files_are_refused(tmp_path):
    path = _ship(tmp_path)
    checked_file(tmp_path, "dscgan")
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256"):
        checked_file(tmp_path, "dscgan")
    path.unlink()
    with pytest.raises(WeightsError, match="missing"):
        load_zoo_model("dscgan", tmp_path)
    with pytest.raises(SmisbenchError, match="no zoo checkpoint 'groupdnet'"):
        load_zoo_model("groupdnet", tmp_path)


def test_verify_tells_ok_failed_stale_and_not_shipped_apart(tmp_path):
    _ship(tmp_path, "dscgan")
    _ship(tmp_path, "bicyclegan", seed=5)  # trained with settings zoo.toml no longer has
    broken = _ship(tmp_path, "spade")
    broken.write_bytes(broken.read_bytes()[:100])
    checks, problems = verify(ZOO, tmp_path)
    status = {c.id: c.status for c in checks}
    assert status["dscgan"] == "ok" and status["bicyclegan"] == "stale" and status["spade"] == "failed"
    assert status["groupdnet"] == "not shipped" and status["synthetic-fcn"] == "not shipped"
    assert "seed" in next(c.detail for c in checks if c.id == "bicyclegan")
    assert problems == []
    small = dataclasses.replace(ZOO, max_total_bytes=1000)
    assert "more than" in verify(small, tmp_path)[1][0]


def test_zoo_verify_command_exit_codes(tmp_path, capsys):
    from smisbench.cli import main

    _ship(tmp_path, "dscgan")
    assert main(["zoo", "verify", "--dir", str(tmp_path)]) == 0
    assert "dscgan                   ok" in capsys.readouterr().out
    _ship(tmp_path, "bicyclegan", steps=3)
    assert main(["zoo", "verify", "--dir", str(tmp_path)]) == 1


SHIPPED = manifests(shipped_dir())


def test_shipped_folder_is_within_the_size_budget():
    assert total_bytes(shipped_dir()) <= ZOO.max_total_bytes


@pytest.mark.parametrize("ident", sorted(SHIPPED) or ["(none shipped)"])
def test_every_shipped_checkpoint_matches_its_manifest_and_loads_strictly(ident):
    if ident not in SHIPPED:
        pytest.skip("no zoo checkpoint is shipped yet (train them with `smisbench zoo train`)")
    checks, _ = verify(ZOO, shipped_dir())
    (check,) = [c for c in checks if c.id == ident]
    assert check.status == "ok", f"{ident}: {check.status} {check.detail}"
    manifest = json.loads((shipped_dir() / f"{ident}.json").read_text())
    assert sha256_file(shipped_dir() / f"{ident}.pt") == manifest["file"]["sha256"]
