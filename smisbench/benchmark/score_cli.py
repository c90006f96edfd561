"""``smisbench score``: the command line of :mod:`smisbench.benchmark.score`."""

from __future__ import annotations

import argparse

EPILOG = """\
MODEL is a registered name (`smisbench models`, installed plugins included) or a factory:
pkg.module:FACTORY or path/to/file.py:FACTORY. FACTORY receives the dataset's DatasetConfig and
returns a torch module keeping the model contract (attributes `codes` and `code_shape`,
forward(onehot, codes) -> images in [-1, 1]; see smisbench.models.contract) or an SMISModel.
With --json, stdout is exactly one JSON object: values (mcsd, mocd, lpips, fid, miou, accuracy,
fps, params), protocol, provenance, notes, store.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="score one model (registered, plugin, or a factory in your own file) on a dataset",
                       description="Score MODEL on DATASET under a protocol preset; optionally store it as a run.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="name, pkg.mod:FACTORY or file.py:FACTORY")
    p.add_argument("--dataset", required=True, help="dataset name (`smisbench datasets list`)")
    p.add_argument("--root", help="the dataset's folder (not needed for synthetic)")
    p.add_argument("--split", default="test", help="dataset split (default: test)")
    p.add_argument("--checkpoint", help="weights: a smisbench bundle, latest_net_G.pth, a release folder, "
                                        "or for a factory's module a plain state_dict file")
    p.add_argument("--metrics", help="comma-separated metric names or value keys, e.g. mcsd,mocd,lpips,fid "
                                     "(default: the preset's)")
    p.add_argument("--preset", help="protocol preset name (default: groupdnet2020) or a preset .toml file")
    p.add_argument("--store", help="record the score as a run in this results store (seen by runs, compare, report)")
    p.add_argument("--out", help="folder for score.json and the artifacts (SMIS grid)")
    p.add_argument("--label", help="row label in reports (default: the model's name)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto (default: auto)")
    p.add_argument("--seed", type=int, default=None, help="protocol seed (default: the preset's, else 0)")
    p.add_argument("--seeds", metavar="K|S1,S2,..",
                   help="score with K seeds (the seed, seed+1, ...) or with these seeds: the same model, other codes "
                        "drawn; values are the means, printed with std and a bootstrap 95%% interval over seeds")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout (logs go to stderr)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_score)


def _score(args: argparse.Namespace) -> int:
    import contextlib
    import json
    import sys

    from smisbench.benchmark.score import ScoreRequest, format_result, score

    request = ScoreRequest(
        model=args.model, dataset=args.dataset, root=args.root, split=args.split, checkpoint=args.checkpoint,
        metrics=tuple(args.metrics.split(",")) if args.metrics else None, preset=args.preset, store=args.store,
        out=args.out, device=args.device, seed=args.seed, label=args.label, seeds=args.seeds,
    )
    command = " ".join(["smisbench"] + sys.argv[1:])
    if args.json:  # stdout carries the JSON object alone; anything else printed goes to stderr
        with contextlib.redirect_stdout(sys.stderr):
            result = score(request, progress=not args.no_progress, log=sys.stderr, command=command)
        print(json.dumps(result.to_json(), sort_keys=True))
    else:
        result = score(request, progress=not args.no_progress, command=command)
        print(format_result(result))
    return 0
