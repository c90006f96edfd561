"""The static HTML report: self-contained, holds the tables and figures; renders in headless Chromium."""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import benchmark_fakes as fakes
from smisbench.benchmark.runner import run_spec
from smisbench.benchmark.spec import load_spec
from smisbench.benchmark.store import Store
from smisbench.reports.build import write_report
from smisbench.reports.html import TABLE_HEADER_RGB

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report")
    with Store(out / "demo.sqlite") as store:
        run_spec(load_spec("demo"), store, fakes.execute, progress=False, stream=io.StringIO(),
                 environment=fakes.fake_environment)
        write_report(store, out, ["demo", "table1"], title="test report")
    return out


def embedded_images(text: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)]


def test_html_is_self_contained(demo_report: Path):
    text = (demo_report / "index.html").read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert "<script" not in text and "<link" not in text and "http://" not in text and "https://" not in text
    assert re.findall(r'src="([^"]*)"', text) and all(s.startswith("data:image/png;base64,")
                                                       for s in re.findall(r'src="([^"]*)"', text))
    images = embedded_images(text)
    # demo: 3 plots + 3 grids; table1 (nothing measured): no plots beyond the paper's scatter points
    on_disk = sorted(p.read_bytes() for p in (demo_report / "plots").glob("*.png")) + \
        sorted(p.read_bytes() for p in (demo_report / "grids").glob("*.png"))
    assert sorted(images) == sorted(on_disk)
    for png in images:
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert text.count('<table class="results">') == 2
    assert "GroupDNet" in text and "VSPADE" in text and "—" in text


def test_html_tables_match_markdown(demo_report: Path):
    text = (demo_report / "index.html").read_text(encoding="utf-8")
    md = (demo_report / "demo.md").read_text(encoding="utf-8")
    row = next(line for line in md.splitlines() if line.startswith("| GroupDNet |"))
    values = [c.strip() for c in row.strip("|").split("|")[1:]]
    html_row = re.search(r"<tr><th>GroupDNet</th>(.*?)</tr>", text).group(1)
    assert re.findall(r"<td[^>]*>(.*?)</td>", html_row) == values


def find_patch(haystack: np.ndarray, patch: np.ndarray) -> bool:
    """Whether ``patch`` (h, w, 3) appears pixel-exactly in ``haystack``."""
    h, w = patch.shape[:2]
    ys, xs = np.nonzero(np.all(haystack[: haystack.shape[0] - h + 1, : haystack.shape[1] - w + 1] == patch[0, 0],
                               axis=-1))
    for y, x in zip(ys, xs):
        if np.array_equal(haystack[y:y + h, x:x + w], patch):
            return True
    return False


@pytest.mark.slow
def test_html_report_renders_in_headless_chromium(demo_report: Path, tmp_path: Path):
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is absent: install Debian's chromium package "
                    "(apt-get install -y chromium) to run the browser check")
    shot = tmp_path / "shot.png"
    profile = tmp_path / "profile"
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           "--force-device-scale-factor=1", "--force-color-profile=srgb", f"--user-data-dir={profile}",
           "--window-size=1600,9000", f"--screenshot={shot}", (demo_report / "index.html").as_uri()]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    screen = np.asarray(Image.open(shot).convert("RGB"))
    assert screen.shape[1] == 1600
    # the tables: their header cells are painted in the report's distinctive header colour
    header = np.all(screen == np.array(TABLE_HEADER_RGB, dtype=np.uint8), axis=-1)
    header_rows = np.nonzero(header.sum(axis=1) > 200)[0]
    assert header.sum() > 5000 and len(header_rows) > 20, "no rendered table headers in the screenshot"
    # a grid: a patch of the GroupDNet SMIS grid figure appears pixel-exactly on the page
    grid = np.asarray(Image.open(demo_report / "grids" / "demo_groupdnet.png").convert("RGB"))
    h, w = grid.shape[:2]
    patch = grid[h // 2: h // 2 + 40, w // 2: w // 2 + 40]
    assert patch.std() > 10  # a patch with content, not background
    assert find_patch(screen, patch), "the SMIS grid is not visible in the screenshot"
    # and the page is not blank around them
    assert len(np.unique(screen.reshape(-1, 3), axis=0)) > 200
    shutil.rmtree(profile, ignore_errors=True)
