"""SMIS sample grids as stored artifacts: rows are samples, columns say which class's code was redrawn.

The numbers are saved (``.npz``) when a cell runs, because drawing them needs the model;
reports draw the figure later from the file (``smisbench.reports.plots.smis_grid_figure``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from smisbench.imaging import to_uint8_array
from smisbench.io import atomic_open


def smis_grid(model: Any, item: dict, config: Any, rows: int, seed: int) -> dict[str, np.ndarray]:
    """Images for one label map: column c redraws class c (the whole code for models without per-class codes).

    All columns start from the same base code, so row r differs from the base only where the
    model lets class c's code reach.
    """
    import torch

    from smisbench.data.palette import palette_for
    from smisbench.models.base import CodesKind
    from smisbench.models.smis import sample_class, sample_global

    label = item["label"].long()
    instance = item.get("instance")
    with torch.no_grad():
        semantics = model.semantics(label[None], None if instance is None else instance[None])
        generator = torch.Generator().manual_seed(seed)
        base = model.sample_z(1, generator)
        classes = [int(c) for c in torch.unique(label).tolist()]
        per_class = model.codes_kind == CodesKind.PER_CLASS
        columns = []
        for c in classes:
            if per_class:
                columns.append(sample_class(model, semantics, c, rows, generator, base))
            else:
                columns.append(sample_global(model, semantics, rows, generator))
        base_image = model.generate(semantics, base)
    images = np.stack([to_uint8_array(col) for col in columns], axis=1)  # (rows, columns, H, W, 3)
    names = list(getattr(config, "class_names", ()) or ())
    return {
        "images": images,
        "base": to_uint8_array(base_image)[0],
        "label": label.cpu().numpy().astype(np.int32),
        "classes": np.array(classes, dtype=np.int32),
        "class_names": np.array([names[c] if c < len(names) else str(c) for c in classes]),
        "palette": palette_for(config).astype(np.uint8),
        "per_class": np.array(per_class),
    }


def save_grid(grid: dict[str, np.ndarray], path: Path) -> None:
    with atomic_open(path, "wb") as handle:
        np.savez_compressed(handle, **grid)


def load_grid(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}
