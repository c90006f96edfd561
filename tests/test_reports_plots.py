"""Figures: scatter and bar plots only from numbers that exist; SMIS grids from real models and stored files."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import benchmark_fakes as fakes
from smisbench.benchmark.grids import load_grid, save_grid, smis_grid
from smisbench.benchmark.paper import Column
from smisbench.benchmark.runner import run_spec
from smisbench.benchmark.spec import load_spec
from smisbench.benchmark.store import Store
from smisbench.reports import plots
from smisbench.reports.tables import ReportTable, build_table


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return Image.open(io.BytesIO(data)).size


def test_plots_need_numbers(tmp_path: Path):
    with Store(tmp_path / "s.sqlite") as store:
        empty_demo = build_table(store, "demo")
        assert plots.mcsd_vs_mocd(empty_demo) is None
        assert plots.fid_vs_fps(empty_demo) is None
        assert plots.diversity_bars(empty_demo) is None
        table1 = build_table(store, "table1")  # the paper's points alone still make a scatter
        width, height = png_size(plots.mcsd_vs_mocd(table1))
        assert width > 200 and height > 200
        assert plots.diversity_bars(table1) is None  # bars are ours only
        table2 = build_table(store, "table2")
        assert plots.mcsd_vs_mocd(table2) is None and plots.fid_vs_fps(table2) is None


def test_plots_from_measured_values(tmp_path: Path):
    with Store(tmp_path / "s.sqlite") as store:
        run_spec(load_spec("demo"), store, fakes.plain, progress=False, stream=io.StringIO(),
                 environment=fakes.fake_environment)
        table = build_table(store, "demo")
    for draw in (plots.mcsd_vs_mocd, plots.fid_vs_fps, plots.diversity_bars):
        width, height = png_size(draw(table))
        assert width > 200 and height > 150


def test_scatter_points_are_only_pairs_that_exist():
    column = lambda v: Column("d", v)  # noqa: E731
    table = ReportTable("x", "x", ["A", "B", "C"], [column("mocd"), column("mcsd")], {"d": "d"},
                        ours={("A", column("mocd")): 0.1, ("A", column("mcsd")): 0.2, ("B", column("mocd")): 0.3})
    assert plots._points(table, column("mocd"), column("mcsd"), paper=False) == [("A", 0.1, 0.2)]
    assert plots.scatter(table, "mocd", "mcsd", "t") is not None


@pytest.fixture(scope="module")
def synthetic_item():
    from smisbench.data.registry import build_dataset

    dataset = build_dataset("synthetic", None, "test", length=2)
    return dataset[0], dataset.config


@pytest.mark.parametrize("name, per_class", [("groupdnet", True), ("vspade", False)])
def test_smis_grid_from_a_real_model(synthetic_item, name: str, per_class: bool, tmp_path: Path):
    import torch

    from smisbench.models.registry import build_model

    torch.set_num_threads(1)
    item, config = synthetic_item
    torch.manual_seed(0)
    model = build_model(name, "synthetic").eval()
    grid = smis_grid(model, item, config, rows=2, seed=5)
    classes = sorted(int(c) for c in np.unique(item["label"].numpy()))
    assert grid["classes"].tolist() == classes
    assert grid["class_names"].tolist() == [config.class_names[c] for c in classes]
    assert grid["images"].shape == (2, len(classes), config.height, config.width, 3)
    assert grid["images"].dtype == np.uint8 and bool(grid["per_class"]) is per_class
    assert not np.array_equal(grid["images"][0, 0], grid["images"][1, 0])  # rows are different samples
    again = smis_grid(model, item, config, rows=2, seed=5)
    assert np.array_equal(again["images"], grid["images"])  # reproducible from the seed
    save_grid(grid, tmp_path / "g.npz")
    loaded = load_grid(tmp_path / "g.npz")
    assert all(np.array_equal(loaded[k], grid[k]) for k in grid)
    width, height = png_size(plots.smis_grid_figure(loaded, name))
    assert width > 100 * (len(classes) + 1) and height > 100 * 3
