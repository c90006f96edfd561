"""``smisbench export-samples`` (a model's samples as PNG files) and ``smisbench score-samples`` (every
metric of such a folder, optionally stored as a run), for models in any framework."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tomllib
from pathlib import Path
from typing import Any

from smisbench.errors import SmisbenchError

STORE_HELP = "also record the result as a run in this results store (compare, report and runs then show it)"


def _protocol_flags(parser: argparse.ArgumentParser) -> None:
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--preset", metavar="NAME|FILE.toml",
                       help="start from a protocol preset (`smisbench protocols`: groupdnet2020, spade2019, oasis2021, "
                            "clean) or a preset .toml file, with its values for --dataset")
    start.add_argument("--spec", metavar="NAME|FILE.toml",
                       help="start from the protocol (and table) of a spec: a shipped one (table1, table2, ablations, "
                            "demo) or a spec file")
    parser.add_argument("--protocol", action="append", default=[], metavar="FIELD=VALUE",
                        help="set one protocol field (docs/protocol.md), e.g. m=19, mask_mode=image, seed=1")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 or auto (default: cpu)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def register(sub: argparse._SubParsersAction) -> None:
    export = sub.add_parser(
        "export-samples", help="write a model's samples as a sample folder (PNG files + manifest.json)",
        description="For each of the split's first K label maps: the label map, k global samples and, per class, "
                    "n redraws of that class's code from one base code, with the seeds mCSD/mOCD use "
                    "(docs/sample_folders.md).")
    export.add_argument("--model", required=True, help="a registered model name (`smisbench models`)")
    export.add_argument("--weights", help="its weights: a smisbench model file, a latest_net_G.pth or a release "
                                          "folder (random initialisation if absent)")
    export.add_argument("--dataset", required=True, help="dataset name (`smisbench datasets`)")
    export.add_argument("--root", help="the dataset's folder (not needed for synthetic)")
    export.add_argument("--split", default="test")
    export.add_argument("--out", required=True, help="an empty or new folder")
    export.add_argument("--maps", type=int, help="label maps to export (default: the protocol's diversity_maps)")
    export.add_argument("--n", type=int, help="samples per class set (default: the protocol's n)")
    export.add_argument("--k", type=int, help="global samples per map (default: n)")
    _protocol_flags(export)
    export.set_defaults(func=_export)

    score = sub.add_parser(
        "score-samples", help="score a sample folder: mCSD, mOCD, LPIPS diversity, FID, mIoU, accuracy",
        description="Score the PNG files of a sample folder (docs/sample_folders.md) with the in-memory route's "
                    "pairs, masks and metrics. FID needs --root (the real images).")
    score.add_argument("folder", metavar="DIR")
    score.add_argument("--dataset", required=True, help="the dataset the samples were generated for")
    score.add_argument("--root", help="the dataset's folder: FID's real images, and a check of the label maps")
    score.add_argument("--metrics", nargs="+", metavar="LIST",
                       help="metric names or value keys, comma- or space-separated (default: every one the "
                            "inputs allow: mcsd_mocd, lpips_diversity, fid with a dataset, miou/accuracy with a "
                            "segmenter)")
    score.add_argument("--json", action="store_true", help="print one JSON object: values, protocol, provenance")
    score.add_argument("--store", help=STORE_HELP)
    score.add_argument("--table", help="the store table of the run (default: --spec's table, else 'samples')")
    score.add_argument("--label", help="row label in reports (default: the manifest's model name)")
    score.add_argument("--weights-dir", help="LPIPS/FID weights store (default: $SMISBENCH_WEIGHTS_DIR or the cache)")
    _protocol_flags(score)
    score.set_defaults(func=_score)


# ----------------------------------------------------------------------------- shared pieces
def _value(text: str) -> Any:
    """A command-line value as TOML reads it (19, true, [256, 256]); anything else is a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def protocol_from(preset: str | None, fields: list[str], dataset: str | None = None,
                  spec: str | None = None) -> tuple[Any, str | None]:
    """The evaluation protocol of ``--preset`` (its values for ``dataset``) or of ``--spec`` (its top-level
    protocol and that dataset's table), with ``--protocol`` fields applied; and the spec's table (else None)."""
    import dataclasses

    from smisbench.metrics.protocol import EvalProtocol

    names = {f.name for f in dataclasses.fields(EvalProtocol)}
    settings: dict[str, Any] = {}
    table = None
    if preset:
        from smisbench.metrics.presets import get_preset

        settings = get_preset(preset).fields(dataset)
    elif spec:
        from smisbench.benchmark.spec import load_spec

        loaded = load_spec(spec)
        layers = [loaded.protocol, *[d.protocol for d in loaded.datasets if d.name == dataset][:1]]
        settings = {k: v for layer in layers for k, v in layer.items() if k in names}
        settings.update(seed=loaded.seed, dtype=loaded.dtype)
        table = loaded.table
    for text in fields:
        key, sep, raw = text.partition("=")
        key = key.strip()
        if not sep or key not in names:
            raise SmisbenchError(f"--protocol {text!r} is not FIELD=VALUE with a protocol field",
                                 f"fields: {', '.join(sorted(names))} (docs/protocol.md)")
        settings[key] = _value(raw.strip())
    return EvalProtocol(**settings), table


def _device(name: str):
    from smisbench.runtime import pick_device

    return pick_device(name)


def _dataset(name: str, root: str | None, split: str, options: dict[str, Any] | None = None, required: bool = True):
    """The dataset reader's items, or None when its folder is not given and ``required`` is False."""
    from smisbench.data.registry import build_dataset, get_reader

    if root is None and get_reader(name).needs_root and not required:
        return None
    return build_dataset(name, root, split, **(options or {}))


def load_model(name: str, dataset: str, weights: str | None, seed: int) -> tuple[Any, dict[str, Any]]:
    """A registered model with its weights, and its provenance for the manifest.

    (The one call that loads a model here, through the suite's one loader, :mod:`smisbench.models.loader`.)
    """
    import torch

    from smisbench.benchmark.executor import jsonable
    from smisbench.io import sha256_file
    from smisbench.models.registry import build_model, get_entry, model_config

    entry = get_entry(name)
    torch.manual_seed(seed)
    info: dict[str, Any] = {"name": name, "codes": entry.codes_kind.value}
    if weights is None:
        model = build_model(name, dataset)
        info.update(config=jsonable(model_config(name, dataset)), weights="random initialisation")
        return model, info
    from smisbench.models.loader import load_model as load_weights

    loaded = load_weights(weights, name, dataset)
    info.update(config=jsonable(loaded.config), weights=loaded.provenance(), bundle=jsonable(loaded.info))
    return loaded.model, info


# ----------------------------------------------------------------------------- export-samples
def _export(args: argparse.Namespace) -> int:
    from smisbench.datasets_config import get_dataset_config
    from smisbench.provenance import environment
    from smisbench.samples.export import export_samples

    protocol, _ = protocol_from(args.preset, args.protocol, args.dataset, args.spec)
    device = _device(args.device)
    config = get_dataset_config(args.dataset)
    dataset = _dataset(args.dataset, args.root, args.split)
    model, info = load_model(args.model, args.dataset, args.weights, protocol.seed)
    env = environment(device)
    info["provenance"] = {"exported_by": "smisbench export-samples", "git_commit": env["git_commit"],
                          "versions": env["versions"], "device": env["device_name"]}
    n = protocol.n if args.n is None else args.n
    maps = args.maps if args.maps is not None else min(protocol.diversity_maps or len(dataset), len(dataset))
    manifest = export_samples(model.to(device), dataset, config, args.out, maps=maps, n=n, k=args.k,
                              seed=protocol.seed, batch_size=protocol.batch_size, split=args.split,
                              model_info=info, progress=not args.no_progress)
    print(f"wrote {len(manifest.maps)} label maps of {args.dataset}/{args.split} to {args.out} "
          f"({manifest.codes} codes: n={manifest.n} per class set, k={manifest.k} global, seed {manifest.seed})")
    return 0


# ----------------------------------------------------------------------------- score-samples
def _metric_list(words: list[str] | None) -> list[str] | None:
    if not words:
        return None
    return [w for word in words for w in word.split(",") if w]


def _print(result: dict[str, Any], folder: Any, as_json: bool, stored: str | None) -> None:
    if as_json:
        print(json.dumps({k: result[k] for k in ("values", "protocol", "provenance", "notes")}, sort_keys=True,
                         default=str))
        return
    from smisbench.benchmark.catalog import catalog

    m = folder.manifest
    print(f"{folder.root}: {m.model_name} ({m.codes} codes), {len(folder.maps)} label maps of {m.dataset}/{m.split}, "
          f"n={m.n}, k={m.k}, seed {m.seed}")
    order = list(catalog().values)
    for key, value in sorted(result["values"].items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 99):
        print(f"  {catalog().value(key).label:12s} {value:.6g}")
    for note in result["notes"]:
        print(f"  note: {note}")
    if stored:
        print(stored)


def _score(args: argparse.Namespace) -> int:
    from smisbench.datasets_config import get_dataset_config
    from smisbench.samples.folder import SampleFolder
    from smisbench.samples.score import default_metrics, metric_names, score_samples

    protocol, preset_table = protocol_from(args.preset, args.protocol, args.dataset, args.spec)
    device = _device(args.device)
    config = get_dataset_config(args.dataset)
    folder = SampleFolder.open(args.folder, config)
    m = folder.manifest
    asked = _metric_list(args.metrics)
    dataset = _dataset(args.dataset, args.root, m.split, m.dataset_options, required=asked is not None and "fid" in
                       metric_names(asked))
    metrics = metric_names(asked) if asked else default_metrics(protocol, dataset is not None)

    def run() -> Any:
        return score_samples(folder, config, metrics, protocol, device, dataset, weights_dir=args.weights_dir,
                             progress=not args.no_progress)

    if not args.store:
        result = run()
        _print({"values": result.values, "protocol": result.protocol, "provenance": result.provenance,
                "notes": result.notes}, folder, args.json, None)
        return 0
    from smisbench.benchmark.single import outcome_of, run_single, single_spec
    from smisbench.benchmark.store import Store

    label = args.label or m.model_name
    table = args.table or preset_table or "samples"
    spec = single_spec(
        name=f"samples-{label}", table=table, description=f"sample folder {folder.root.resolve()}",
        model={"id": m.model_name, "name": m.model_name, "label": label, "checkpoint": str(folder.root.resolve())},
        dataset={"name": args.dataset, "root": str(Path(args.root).resolve()) if args.root else args.dataset,
                 "split": m.split, "options": m.dataset_options},
        metrics=metrics, protocol=protocol.to_dict(), seed=m.seed, device=str(device))
    with Store(args.store) as store:
        cell = run_single(store, spec, lambda _cell, _ctx: outcome_of(run()), progress=not args.no_progress,
                          command="smisbench score-samples",
                          stream=sys.stderr if args.json else sys.stdout)
    _print({"values": cell["values"], "protocol": cell["protocol"], "provenance": cell["provenance"],
            "notes": cell["notes"]}, folder, args.json,
           f"stored: run {cell['run_id']}, cell {cell['cell_id']} of table {table!r} in {os.fspath(args.store)}")
    return 0
