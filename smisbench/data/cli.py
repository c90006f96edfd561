"""``smisbench datasets``: list readers and their layouts, check a dataset's files, export the synthetic set."""

from __future__ import annotations

import argparse
import json


def parse_options(pairs: list[str] | None) -> dict:
    """``KEY=VALUE`` strings -> dict; values are read as JSON where they parse (``size=[32,64]``), else text."""
    from smisbench.errors import SmisbenchError

    options = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise SmisbenchError(f"option {pair!r} is not KEY=VALUE", "write e.g. size=64 or config=deepfashion")
        key, value = pair.split("=", 1)
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        options[key.strip().replace("-", "_")] = tuple(parsed) if isinstance(parsed, list) else parsed
    return options


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("datasets", help="dataset readers: list, check files, export the synthetic set")
    p.set_defaults(func=_list)
    inner = p.add_subparsers(dest="datasets_command", metavar="ACTION")
    q = inner.add_parser("list", help="readers, their layouts and options (default)")
    q.set_defaults(func=_list)
    q = inner.add_parser("check", help="read every item once and list unusable files")
    q.add_argument("name")
    q.add_argument("--root")
    q.add_argument("--split", default="train", choices=("train", "val", "test"))
    q.add_argument("--option", action="append", metavar="KEY=VALUE", help="reader option (repeatable)")
    q.add_argument("--limit", type=int, help="check only the first N items")
    q.set_defaults(func=_check)
    q = inner.add_parser("export-synthetic", help="write the synthetic set as PNGs (custom reader layout)")
    q.add_argument("out")
    q.add_argument("--split", default="train", choices=("train", "val", "test"))
    q.add_argument("--length", type=int)
    q.add_argument("--size", type=int, default=64)
    q.add_argument("--seed", type=int, default=0)
    q.set_defaults(func=_export)


def _list(args) -> int:
    from smisbench.data.registry import dataset_names, get_reader, reader_options

    for name in dataset_names():
        print(f"{name:12s} {get_reader(name).description}")
        print(f"{'':12s} options: {', '.join(reader_options(name))}")
    return 0


def _check(args) -> int:
    from smisbench.data.registry import build_dataset

    ds = build_dataset(args.name, args.root, args.split, **parse_options(args.option))
    verify = getattr(ds, "verify", None)
    if verify is None:
        print(f"{args.name}/{args.split}: {len(ds)} generated items (nothing to check on disk)")
        return 0
    report = verify(args.limit)
    print(f"{args.name}/{args.split}: {report.checked} items checked, {len(report.problems)} unusable")
    for problem in report.problems[:20]:
        print(f"  {problem}")
    return 0 if report.ok else 1


def _export(args) -> int:
    from smisbench.data.synthetic import SyntheticSMIS

    folder = SyntheticSMIS(args.split, args.length, args.size, args.seed).export(args.out)
    print(f"wrote {folder}/images and {folder}/labels; read them with --dataset custom --root {folder} "
          f"--dataset-option config=synthetic")
    return 0
