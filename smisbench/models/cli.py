"""Model commands: list the registry, inspect/import official checkpoints, sample SMIS grids."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list registered models x dataset configurations with parameter counts")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--dataset", help="only this dataset configuration")
    p.set_defaults(func=_models)

    p = sub.add_parser("inspect-checkpoint", help="check that a checkpoint file loads strictly into a network")
    p.add_argument("file", help="an official latest_net_{G,E,D}.pth, a release folder, or a smisbench bundle")
    p.add_argument("--model", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--part", choices=("G", "E", "D"), default="G")
    p.set_defaults(func=_inspect)

    p = sub.add_parser("import-checkpoint", help="load official latest_net_{G,E}.pth files and save a smisbench model file")
    p.add_argument("source", help="a checkpoints/<name>/ folder with latest_net_*.pth, or one latest_net_G.pth "
                   "(config read off the file where a family's releases differ)")
    p.add_argument("--model", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--out", required=True, help="smisbench model file to write (.pt)")
    p.set_defaults(func=_import)

    p = sub.add_parser("sample", help="semantically multi-modal samples for one label map, saved as a grid PNG")
    p.add_argument("--model", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--weights", help="a smisbench bundle, an official latest_net_G.pth or a release folder of "
                   "--model/--dataset; random weights if absent")
    p.add_argument("--label", required=True, help="label map PNG in the dataset's label ids")
    p.add_argument("--instance", help="instance-id PNG (Cityscapes)")
    p.add_argument("--classes", type=int, nargs="*", help="classes to redraw, one grid column each (default: every present class)")
    p.add_argument("-n", type=int, default=3, help="samples per class")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_sample)


def model_table(dataset: str | None = None) -> list[dict]:
    """Every registered model x dataset with G, E, D parameter counts (built on the meta device: no memory)."""
    import torch

    from smisbench.models.registry import build_discriminator, get_entry, model_names

    rows = []
    for name in model_names():
        entry = get_entry(name)
        for ds in entry.datasets():
            if dataset and ds != dataset:
                continue
            with torch.device("meta"):
                model = _build(name, ds)
                disc = build_discriminator(name, ds) if entry.build_discriminator else None
            g = sum(p.numel() for p in model.netG.parameters())
            e = sum(p.numel() for p in model.netE.parameters()) if model.netE is not None else 0
            rows.append({
                "model": name, "dataset": ds, "codes": entry.codes_kind.value,
                "G": g, "E": e, "G+E": g + e,
                "D": sum(p.numel() for p in disc.parameters()) if disc is not None else None,
            })
    return rows


def _build(name: str, dataset: str):
    from smisbench.models.registry import build_model

    return build_model(name, dataset)


def _models(args) -> int:
    from smisbench.formatting import fixed

    rows = model_table(args.dataset)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{'model':24} {'dataset':12} {'codes':10} {'G+E (M)':>9} {'G':>12} {'E':>11} {'D':>10}")
    for r in rows:
        d = f"{r['D']:,}" if r["D"] is not None else "-"
        print(f"{r['model']:24} {r['dataset']:12} {r['codes']:10} {fixed(r['G+E'] / 1e6, 2, 9)} {r['G']:12,} {r['E']:11,} {d:>10}")
    return 0


def _inspect(args) -> int:
    from smisbench.models.loader import check_checkpoint

    report, inferred = check_checkpoint(args.file, args.model, args.dataset, args.part)
    print(report.describe(limit=50))
    if inferred:
        print("config read off the file: " + ", ".join(f"{k}={v}" for k, v in inferred.items()))
    print(f"sha256 {report.sha256}")
    if report.fits:
        print(f"OK: {args.file} loads strictly into {args.model}/{args.dataset} part {args.part}")
        return 0
    print(f"FAIL: {args.file} does not fit {args.model}/{args.dataset} part {args.part}")
    return 1


def _import(args) -> int:
    from smisbench.models.checkpoints import save_bundle
    from smisbench.models.loader import load_model

    loaded = load_model(args.source, args.model, args.dataset)
    for report in loaded.reports:
        print(report.describe())
    if loaded.inferred:
        print("config read off the file: " + ", ".join(f"{k}={v}" for k, v in loaded.inferred.items()))
    for note in loaded.notes:
        print(f"note: {note}")
    save_bundle(args.out, loaded.model, loaded.config, {"imported": loaded.files})
    print(f"wrote {args.out}")
    return 0


def _sample(args) -> int:
    import torch

    from smisbench.labels import read_label_map, resize_ids
    from smisbench.models import smis
    from smisbench.models.loader import load_model
    from smisbench.models.registry import build_model
    from smisbench.imaging import save_smis_grid
    from smisbench.runtime import pick_device

    device = pick_device(args.device)
    if args.weights:  # must belong to --model/--dataset: a bundle of another model is refused
        loaded = load_model(args.weights, args.model, args.dataset)
        model = loaded.model
        for note in loaded.notes:
            print(f"note: {note}")
    else:
        model = build_model(args.model, args.dataset)
    model = model.to(device).eval()
    label, instance = read_label_map(args.label, model.dataset, args.instance)
    size = model.dataset.size
    if tuple(label.shape) != tuple(size):
        print(f"note: label map {args.label} is {label.shape[1]}x{label.shape[0]}; resized (nearest) to "
              f"{size[1]}x{size[0]}, the {model.dataset.name} size (width x height)")
        label = resize_ids(label, size)
        instance = resize_ids(instance, size) if instance is not None else None
    semantics = model.semantics(label, instance, source=args.label)
    classes = args.classes if args.classes else torch.unique(label).tolist()
    generator = torch.Generator().manual_seed(args.seed)
    base = model.sample_z(1, generator)
    columns = {c: smis.sample_class(model, semantics, c, args.n, generator, base) for c in classes}
    save_smis_grid(args.out, label, columns, model.dataset)
    print(f"wrote {args.out}")
    return 0
