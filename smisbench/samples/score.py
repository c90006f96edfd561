"""``smisbench score-samples``: every metric of a sample folder, by the in-memory route's own pieces.

mCSD/mOCD go through :class:`smisbench.metrics.diversity_scoring.ClassDiversity` (the same pairs, masks
and pair scores as in memory), LPIPS diversity through ``pairs_lpips``, and FID, mIoU and accuracy
through the registered metric objects themselves, fed with ``global/000.png`` of each map where
the in-memory pass feeds the image it generated. The result is an
:class:`~smisbench.metrics.evaluate.EvaluationResult`, as ``evaluate`` returns.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch.utils.data import Dataset
from smisbench.progress import progress_bar

from smisbench.benchmark.catalog import catalog
from smisbench.benchmark.origin import ORIGIN_KEY, SAMPLES
from smisbench.datasets_config import DatasetConfig
from smisbench.errors import SmisbenchError, UnknownNameError
from smisbench.metrics.base import EvalContext
from smisbench.metrics.diversity_draws import GLOBAL_SET, DiversitySettings, local_pairs, needed_images, set_pairs
from smisbench.metrics.diversity_scoring import NOTE_NONE, ClassDiversity, pairs_lpips
from smisbench.metrics.evaluate import EvaluationResult
from smisbench.metrics.protocol import EvalProtocol
from smisbench.samples.folder import SampleFolder, SampleMap

DIVERSITY = ("mcsd_mocd", "lpips_diversity")
PER_IMAGE = ("fid", "miou", "accuracy")  # fed with one sample per map, by the registered metric objects
SUPPORTED = DIVERSITY + PER_IMAGE


def metric_names(asked: list[str]) -> list[str]:
    """Metric names from names or value keys (``mcsd`` -> ``mcsd_mocd``); a model-only metric is refused."""
    by_value = {key: name for name, info in catalog().metrics.items() for key in info.produces}
    out = []
    for word in asked:
        name = word if word in catalog().metrics else by_value.get(word)
        if name is None:
            raise UnknownNameError("metric", word, list(SUPPORTED))
        if name not in SUPPORTED:
            raise SmisbenchError(f"{name} cannot be computed from samples: it measures the model itself",
                                 "score the model with `smisbench score` (or `run`), or leave it out of --metrics")
        if name not in out:
            out.append(name)
    return out


def default_metrics(protocol: EvalProtocol, has_dataset: bool) -> list[str]:
    """Every metric the inputs allow: diversity always, FID with real images, mIoU/accuracy with a segmenter
    that can run (its checkpoint files given, or the suite-trained synthetic one): a preset names the
    paper's segmenters, whose files only the user has."""
    segmentable = protocol.segmenter and (protocol.segmenter_checkpoints or protocol.segmenter == "synthetic-fcn")
    return [*DIVERSITY, *(["fid"] if has_dataset else []), *(["miou", "accuracy"] if segmentable else [])]


def check_against_dataset(folder: SampleFolder, dataset: Dataset) -> None:
    """Refuse label maps that are not the dataset's (another split, size, option or dataset)."""
    if len(dataset) < len(folder.maps):
        raise SmisbenchError(f"sample folder {folder.root} has {len(folder.maps)} label maps, the dataset "
                             f"{folder.manifest.dataset}/{folder.manifest.split} only {len(dataset)}",
                             "pass the --root, split and options the samples were generated from")
    differ = []
    for sample_map in folder.maps:
        real = dataset[sample_map.index]["label"]
        if tuple(real.shape[-2:]) != tuple(sample_map.label.shape) or not torch.equal(
                real.reshape(sample_map.label.shape), sample_map.label):
            differ.append(sample_map.folder.name)
    if differ:
        raise SmisbenchError(
            f"{len(differ)} label maps of {folder.root} are not those of {folder.manifest.dataset}/"
            f"{folder.manifest.split} (first: {', '.join(differ[:5])})",
            "pass the --dataset, --root and --split the samples were generated from, or export them again")


class _FolderScorer:
    """One pass over the folder's maps, feeding each asked metric."""

    def __init__(self, folder: SampleFolder, ctx: EvalContext, metrics: list[str], progress: bool):
        self.folder, self.ctx, self.metrics, self.progress = folder, ctx, metrics, progress
        m = folder.manifest
        p = ctx.protocol
        pairs = dict(n=2, m=1) if m.codes == "none" else dict(n=m.n, m=p.m)  # "none" draws no pairs
        self.settings = DiversitySettings(**pairs, mask_mode=p.mask_mode, seed=m.seed, batch_size=p.batch_size)
        self.lpips = ctx.lpips() if any(name in DIVERSITY for name in metrics) else None

    def diversity_maps(self) -> list[SampleMap]:
        limit = self.ctx.protocol.diversity_maps
        return self.folder.maps if limit is None else self.folder.maps[:limit]

    def mcsd_mocd(self, device: torch.device) -> dict[str, float]:
        from smisbench.metrics.builtin import smis_values

        m = self.folder.manifest
        scores = ClassDiversity(self.lpips, self.settings, m.codes)
        read = 0
        for sample_map in progress_bar(self.diversity_maps(), desc="mcsd/mocd", unit="map", enabled=self.progress):
            if m.codes == "none":
                scores.add_map({c: (0.0, 0.0) for c in sorted(set(torch.unique(sample_map.label).tolist()))})
                continue
            found = {}
            for c in sample_map.classes:
                pairs = set_pairs(m.n, self.settings.m, m.seed, sample_map.index, c)
                needed = needed_images(pairs)
                images = self.folder.images(sample_map, c, needed).to(device)
                read += needed.numel()
                score = scores.score_set(sample_map.label, c, images, local_pairs(needed, pairs), sample_map.index)
                if score is not None:
                    found[c] = score
            scores.add_map(found)
        self.ctx.details["samples_read"] = read
        return smis_values(self.ctx, scores.result())

    def lpips_diversity(self, device: torch.device) -> dict[str, float]:
        m, p = self.folder.manifest, self.ctx.protocol
        if m.codes == "none":
            self.ctx.note(f"lpips_diversity: {NOTE_NONE}")
            return {"lpips": 0.0}
        if p.m > m.k * (m.k - 1) // 2:
            raise SmisbenchError(f"LPIPS diversity draws m={p.m} distinct pairs, the folder has k={m.k} global "
                                 "samples per map", "write more global samples (k = n, the default of "
                                                    "export-samples) or leave lpips_diversity out of --metrics")
        values = []
        for sample_map in progress_bar(self.diversity_maps(), desc="lpips", unit="map", enabled=self.progress):
            pairs = set_pairs(m.k, p.m, m.seed, sample_map.index, GLOBAL_SET)
            needed = needed_images(pairs)
            images = self.folder.images(sample_map, GLOBAL_SET, needed).to(device)
            values.append(pairs_lpips(self.lpips, images, local_pairs(needed, pairs), p.batch_size))
        return {"lpips": sum(values) / len(values)}

    def per_image(self, names: list[str], dataset: Dataset | None) -> dict[str, float]:
        """FID, mIoU, accuracy: ``global/000.png`` of each map where the in-memory pass has its generated image."""
        from smisbench.metrics.registry import get_metric

        ctx = self.ctx
        objects = [get_metric(name)(ctx) for name in names]
        maps = self.folder.maps
        visit = max(len(maps) if (n := o.items_needed(ctx)) is None else min(n, len(maps)) for o in objects)
        size = ctx.protocol.batch_size
        for start in progress_bar(range(0, visit, size), desc="fid/segmentation", unit="batch", enabled=self.progress):
            chunk = maps[start:start + size]
            batch: dict[str, Any] = {"label": torch.stack([s.label for s in chunk]),
                                     "name": [s.folder.name for s in chunk]}
            if dataset is not None:
                batch["image"] = torch.stack([dataset[s.index]["image"] for s in chunk])
            generated = torch.cat([self.folder.images(s, GLOBAL_SET, [0]) for s in chunk]).to(ctx.device)
            for metric in objects:
                metric.on_batch(ctx, batch, start, generated)
        values: dict[str, float] = {}
        for metric in objects:
            values.update(metric.finish(ctx))
        return values


def _protocol_for(folder: SampleFolder, protocol: EvalProtocol, dataset: Dataset | None, device: str,
                  metrics: list[str]) -> tuple[EvalProtocol, list[str]]:
    """The protocol as the folder fixes it (its n and seed; its map count bounds the others), with notes."""
    m, count = folder.manifest, len(folder.maps)
    notes, changes = [], {"seed": m.seed, "device": device, "split": m.split}
    if m.codes != "none":  # a deterministic model's folder has no class sets, so no n
        changes["n"] = m.n
    if dataset is not None and getattr(dataset, "root", None) is not None:
        changes["dataset_root"] = str(dataset.root)
    if "fid" in metrics:
        usable = min(count, len(dataset))
        if protocol.fid_samples is None or protocol.fid_samples > usable:
            asked = "the whole split" if protocol.fid_samples is None else protocol.fid_samples
            notes.append(f"fid: {usable} generated images (global/000.png of each map) vs as many real ones; "
                         f"the protocol asks for {asked}")
            changes["fid_samples"] = usable
    if protocol.diversity_maps is None or protocol.diversity_maps > count:
        if any(name in DIVERSITY for name in metrics):
            asked = "all" if protocol.diversity_maps is None else protocol.diversity_maps
            notes.append(f"diversity: the folder holds {count} label maps, the protocol asks for {asked}")
        changes["diversity_maps"] = count
    if protocol.segmentation_samples is None or protocol.segmentation_samples > count:
        changes["segmentation_samples"] = count
    return protocol.replace(**changes), notes


def score_samples(folder: SampleFolder, config: DatasetConfig, metrics: list[str], protocol: EvalProtocol | None = None,
                  device: torch.device | str = "cpu", dataset: Dataset | None = None, *,
                  weights_dir: str | os.PathLike | None = None, stats_cache_dir: str | os.PathLike | None = None,
                  networks: dict[str, Any] | None = None, progress: bool = True) -> EvaluationResult:
    """Score ``folder`` (opened against ``config``) with ``metrics``; ``dataset`` gives FID its real images.

    The folder's manifest fixes n and the seed (the pairs are drawn from it as in memory); the
    protocol gives m, the masking, the LPIPS network, FID's and the segmenter's settings.
    """
    from smisbench.provenance import environment

    names = metric_names(metrics)
    if "fid" in names and dataset is None:
        raise SmisbenchError("FID needs the dataset's real images", "pass --root DIR of the dataset "
                                                                  "(or leave fid out of --metrics)")
    if dataset is not None:
        check_against_dataset(folder, dataset)
    device = torch.device(device)
    protocol, notes = _protocol_for(folder, protocol or EvalProtocol(), dataset, str(device), names)
    ctx = EvalContext(None, dataset, config, protocol, device, None, weights_dir, stats_cache_dir)
    ctx.shared.update(networks or {})
    for note in notes:
        ctx.note(note)
    m = folder.manifest
    ctx.provenance.update(environment(device))
    ctx.provenance.update({
        "model": m.model_name, "codes_kind": m.codes, ORIGIN_KEY: SAMPLES, "dataset": config.name,
        "dataset_items": None if dataset is None else len(dataset), "metrics": names,
        "samples": {"folder": str(folder.root.resolve()), "maps": len(folder.maps), "n": m.n, "k": m.k,
                    "seed": m.seed, "image_size": list(folder.image_size), "model": m.model},
    })
    scorer = _FolderScorer(folder, ctx, names, progress)
    values: dict[str, float] = {}
    if "mcsd_mocd" in names:
        values.update(scorer.mcsd_mocd(device))
    if "lpips_diversity" in names:
        values.update(scorer.lpips_diversity(device))
    per_image = [name for name in names if name in PER_IMAGE]
    if per_image:
        values.update(scorer.per_image(per_image, dataset))
    return EvaluationResult(values, protocol.to_dict(), ctx.provenance, ctx.notes, ctx.details)
