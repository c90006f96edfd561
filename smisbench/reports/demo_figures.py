"""The demo's applications figures (the paper's Sec. 4.4): appearance mixture and style morphing with
the GroupDNet this run scored (the zoo's checkpoint, or the one trained now)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from smisbench.benchmark.spec import BenchmarkSpec
from smisbench.benchmark.store import Store
from smisbench.errors import SmisbenchError
from smisbench.reports.build import Figure
from smisbench.reports.demo_spec import Row

MORPH_RANGE = (-0.5, 1.5)
MORPH_STEPS = 7


def _trained_bundle(store: Store, spec: BenchmarkSpec, model_id: str) -> Path | None:
    """The bundle a cell of ``model_id`` trained (its provenance names it), if any."""
    for result in store.table_results(spec.table):
        if result["model_id"] == model_id:
            path = store.cell(result["cell_id"])["provenance"].get("checkpoint")
            if path and Path(path).is_file():
                return Path(path)
    return None


def _model(store: Store, spec: BenchmarkSpec, row: Row | None) -> tuple[Any, str]:
    from smisbench.zoo.store import load_checkpoint

    if row is None or row.source == "missing":
        raise SmisbenchError("this run has no GroupDNet", "ship the zoo's groupdnet checkpoint (smisbench zoo train)")
    if row.checkpoint is not None:
        return load_checkpoint(row.checkpoint)[0], f"the zoo's GroupDNet ({row.source})"
    bundle = _trained_bundle(store, spec, row.id)
    if bundle is None:
        raise SmisbenchError("the GroupDNet trained by this run left no model file",
                             "rerun `smisbench demo` (the training resumes) or ship the zoo's checkpoint")
    return load_checkpoint(bundle)[0], f"GroupDNet trained now ({row.detail})"


def _classes(item: dict) -> set[int]:
    return set(torch.unique(item["label"]).tolist())


def pick_sources(dataset: Any, target: int, limit: int = 64) -> dict[int, int]:
    """For every foreground class of item ``target``, the first other item that contains it."""
    wanted = sorted(_classes(dataset[target]) - {0})
    sources: dict[int, int] = {}
    for k in range(min(limit, len(dataset))):
        if k == target:
            continue
        for c in wanted:
            if c not in sources and c in _classes(dataset[k]):
                sources[c] = k
        if len(sources) == len(wanted):
            break
    return sources


def pick_partner(dataset: Any, a: int, limit: int = 64) -> int:
    """The first other item holding every class of item ``a`` (so each morphed code is an encoded one)."""
    need = _classes(dataset[a])
    for k in range(min(limit, len(dataset))):
        if k != a and need <= _classes(dataset[k]):
            return k
    return (a + 1) % len(dataset)


def application_figures(store: Store, spec: BenchmarkSpec, row: Row | None) -> list[Figure]:
    from smisbench.applications.mixture import mixture, mixture_row, morph, morph_row, row_png, steps_between
    from smisbench.data.registry import build_dataset

    model, where = _model(store, spec, row)
    model = model.eval()
    data = spec.datasets[0]
    dataset = build_dataset(data.name, None, data.split, **data.options)
    target = int(spec.protocol.get("grid_label_index", 0))
    sources = pick_sources(dataset, target)
    names = dataset.config.class_names
    mix = mixture(model, dataset, target, sources)
    partner = pick_partner(dataset, target)
    ts = steps_between(*MORPH_RANGE, MORPH_STEPS)
    mor = morph(model, dataset, target, partner, ts)
    said = ", ".join(f"{names[c]} from item {k}" for c, k in sorted(sources.items()))
    return [
        Figure("Appearance mixture", row_png(mixture_row(mix, dataset.config), 3), "figures/mixture.png",
               f"{where}. Columns: label map of test item {target}; the real images used (item {target} first, then "
               f"{', '.join(str(k) for k in dict.fromkeys(sources.values()))}); item {target} reconstructed from its "
               f"own codes; the mixture ({said}; background from item {target})."),
        Figure("Style morphing", row_png(morph_row(mor, dataset.config), 3), "figures/morph.png",
               f"{where}. Columns: label map of item {target}; real item {target}; (1 - t) z_a + t z_b for t = "
               f"{', '.join(f'{t:.3g}' for t in ts)} (outside [0, 1] extrapolates); real item {partner}."),
    ]
