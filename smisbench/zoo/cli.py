"""``smisbench zoo list | train | verify``: the reference zoo on the synthetic set."""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("zoo", help="the reference zoo: trained tiny models of every table on the synthetic set",
                       description="List, train and verify the zoo's checkpoints (smisbench/zoo/zoo.toml).")
    inner = p.add_subparsers(dest="zoo_command", metavar="ACTION", required=True)

    q = inner.add_parser("list", help="entries, computed parameter counts against the stated balance, shipped or not")
    q.add_argument("--dir", help="zoo folder (default: the shipped smisbench/zoo/checkpoints)")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_list)

    q = inner.add_parser("train", help="train zoo entries with `smisbench train` and write checkpoints + manifests")
    q.add_argument("--models", nargs="+", metavar="ID", help="entries to train (default: all, segmenter included)")
    q.add_argument("--steps-scale", type=float, default=1.0,
                   help="multiply every entry's steps (e.g. 0.01 for a smoke run; manifests record it)")
    q.add_argument("--out", help="where checkpoints and manifests go (default: the shipped folder)")
    q.add_argument("--work", default="runs/zoo", help="training run folders (resumable; default runs/zoo)")
    q.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    q.add_argument("--threads", type=int, help="torch CPU threads")
    q.add_argument("--force", action="store_true", help="retrain entries that are up to date")
    q.add_argument("--no-progress", action="store_true")
    q.set_defaults(func=_train)

    q = inner.add_parser("verify", help="check every manifest's sha256, load every checkpoint strictly, check sizes")
    q.add_argument("--dir", help="zoo folder (default: the shipped one)")
    q.add_argument("--reproduce", metavar="ID", help="also retrain ID for its first steps and compare the losses")
    q.add_argument("--work", default="runs/zoo-verify", help="folder for --reproduce")
    q.set_defaults(func=_verify)


def _folder(value: str | None) -> Path:
    from smisbench.zoo.store import shipped_dir

    return Path(value) if value else shipped_dir()


def _list(args) -> int:
    from smisbench.zoo.definition import balance_report, load_zoo
    from smisbench.zoo.store import manifests

    zoo, folder = load_zoo(), _folder(args.dir)
    shipped = manifests(folder)
    rows = balance_report(zoo)
    for row in rows:
        m = zoo.model(row["id"])
        row.update({"steps": m.steps, "tables": list(m.tables), "shipped": row["id"] in shipped})
    if args.json:
        print(json.dumps({"models": rows, "balance": {k: vars(v) for k, v in zoo.balance.items()}}, indent=1))
        return 0
    print(f"{'id':24} {'label':14} {'G+E (M)':>8} {'band':12} {'steps':>6}  shipped  tables")
    for r in rows:
        flag = "" if r["in_band"] else "  OUT OF BAND"
        print(f"{r['id']:24} {r['label']:14} {r['G+E'] / 1e6:8.3f} {r['band']:12} {r['steps']:6}  "
              f"{'yes' if r['shipped'] else 'no':7}  {','.join(r['tables'])}{flag}")
    print(f"{zoo.segmenter.id:24} {'segmenter':14} {'':8} {'':12} {zoo.segmenter.steps:6}  "
          f"{'yes' if zoo.segmenter.id in shipped else 'no':7}")
    print("parameter balance (G+E counted from the built networks):")
    for band in zoo.balance.values():
        print(f"  {band.name}: {band.text}")
    return 0 if all(r["in_band"] for r in rows) else 1


def default_protocol():
    """The segmentation scoring protocol of the shipped demo spec (for the segmenter's manifest)."""
    from smisbench.benchmark.spec import load_spec
    from smisbench.metrics.protocol import EvalProtocol

    spec = load_spec("demo")
    names = set(EvalProtocol.__dataclass_fields__)
    return EvalProtocol(**{k: v for k, v in spec.protocol.items() if k in names}, seed=spec.seed)


def _train(args) -> int:
    from smisbench.runtime import pick_device
    from smisbench.zoo import train
    from smisbench.zoo.definition import load_zoo, settings_for

    zoo = load_zoo()
    if args.steps_scale != 1.0 and not args.out:
        from smisbench.errors import SmisbenchError

        raise SmisbenchError(f"--steps-scale {args.steps_scale:g} would put shorter trainings into the shipped zoo "
                             "folder", "pass --out DIR for a scaled run (the shipped zoo is trained at scale 1)")
    ids = args.models or zoo.ids
    plans = [settings_for(zoo, ident, args.steps_scale) for ident in ids]  # unknown ids fail before any work
    device = str(pick_device(args.device))
    command = shlex.join(["smisbench", "zoo", "train", "--models", *ids, "--steps-scale", f"{args.steps_scale:g}"])
    outcomes = train.run(zoo, plans, _folder(args.out), Path(args.work), command, default_protocol, device,
                         args.threads, not args.no_progress, args.force)
    trained = [o for o in outcomes if o.status == "trained"]
    print(f"{len(trained)} trained, {len(outcomes) - len(trained)} up to date; `smisbench zoo verify` checks them")
    return 0


def _verify(args) -> int:
    from smisbench.zoo.definition import load_zoo
    from smisbench.zoo.store import total_bytes
    from smisbench.zoo.verify import verify

    zoo, folder = load_zoo(), _folder(args.dir)
    checks, problems = verify(zoo, folder)
    for check in checks:
        print(f"{check.id:24} {check.status:12} {check.detail}")
    print(f"{folder}: {total_bytes(folder) / 1e6:.2f} MB of {zoo.max_total_bytes / 1e6:.0f} MB")
    for problem in problems:
        print(f"problem: {problem}")
    code = 1 if problems or any(c.status in ("failed", "stale") for c in checks) else 0
    if args.reproduce:
        from smisbench.zoo.store import manifest_path, read_manifest
        from smisbench.zoo.train import reproduce_first_steps

        result = reproduce_first_steps(read_manifest(manifest_path(folder, args.reproduce)), Path(args.work))
        ok = result["max_rel_diff"] <= REPRODUCE_TOLERANCE
        print(f"{args.reproduce}: first {result['steps']} steps retrained, largest relative loss difference "
              f"{result['max_rel_diff']:.2e} ({'reproduced' if ok else 'NOT reproduced'}, tolerance "
              f"{REPRODUCE_TOLERANCE:g})")
        code = code or (0 if ok else 1)
    return code


# CPU float sums may differ in their last bits between thread counts; the first steps stay this close
REPRODUCE_TOLERANCE = 1e-3
