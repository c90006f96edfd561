"""``smisbench mix`` (appearance mixture) and ``smisbench morph`` (style interpolation/extrapolation)."""

from __future__ import annotations

import argparse


def _model_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--zoo", metavar="ID", help="a shipped zoo model (sha256-checked), e.g. groupdnet")
    p.add_argument("--model", help="a registered model name (with --weights, or random weights for a smoke run)")
    p.add_argument("--weights", help="smisbench model file (from `smisbench train` or `zoo train`)")
    p.add_argument("--zoo-dir", help="zoo folder for --zoo (default: the shipped one)")
    p.add_argument("--dataset", default="synthetic")
    p.add_argument("--root", help="dataset folder (not needed for synthetic)")
    p.add_argument("--split", default="test")
    p.add_argument("--dataset-option", action="append", metavar="KEY=VALUE")
    p.add_argument("--device", default="cpu")
    p.add_argument("--scale", type=int, default=2, help="enlarge the PNG by this factor (nearest neighbour)")
    p.add_argument("--out", required=True, help="PNG file to write")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("mix", help="appearance mixture: each class's code encoded from a chosen real image",
                       description="Render the label map of item --label with class C's code encoded from item "
                                   "INDEX for every --from C=INDEX (C: class id or name); other classes keep the "
                                   "codes of item --base. Writes: label | real images | base | mixture.")
    _model_arguments(p)
    p.add_argument("--label", type=int, default=0, help="item whose label map is rendered (default 0)")
    p.add_argument("--base", type=int, help="item whose codes the other classes keep (default: --label)")
    p.add_argument("--from", dest="sources", action="append", required=True, metavar="C=INDEX",
                   help="class C takes its code from item INDEX (repeatable)")
    p.set_defaults(func=_mix)

    p = sub.add_parser("morph", help="style morphing: interpolate/extrapolate between two encoded real images",
                       description="Encode items --a and --b and render the label map of --label (default --a) "
                                   "with (1 - t) z_a + t z_b for --steps values of t over --range. Writes: "
                                   "label | real a | every t | real b.")
    _model_arguments(p)
    p.add_argument("--a", type=int, required=True, help="item at t = 0")
    p.add_argument("--b", type=int, required=True, help="item at t = 1")
    p.add_argument("--label", type=int, help="item whose label map is rendered (default: --a)")
    p.add_argument("--steps", type=int, default=7)
    p.add_argument("--range", type=float, nargs=2, default=(0.0, 1.0), metavar=("LOW", "HIGH"),
                   help="t from LOW to HIGH (e.g. -0.5 1.5 extrapolates)")
    p.add_argument("--classes", nargs="+", help="move only these classes (per-class models); ids or names")
    p.set_defaults(func=_morph)


def load_model(args: argparse.Namespace):
    """The model a mix/morph command names: a zoo entry, a weights file, or a registered model's random weights."""
    from smisbench.errors import SmisbenchError

    if args.zoo:
        from smisbench.zoo.store import load_zoo_model

        return load_zoo_model(args.zoo, args.zoo_dir)[0], f"zoo {args.zoo}"
    if args.weights:
        from smisbench.zoo.store import load_checkpoint

        return load_checkpoint(args.weights)[0], args.weights
    if args.model:
        from smisbench.models.registry import build_model

        return build_model(args.model, args.dataset), f"{args.model} with RANDOM weights (no --weights given)"
    raise SmisbenchError("no model given", "pass --zoo ID, --weights FILE, or --model NAME")


def _dataset(args: argparse.Namespace, model):
    from smisbench.data.cli import parse_options
    from smisbench.data.registry import build_dataset

    return build_dataset(model.dataset.name, args.root, args.split, **parse_options(args.dataset_option))


def parse_class(text: str, names: tuple[str, ...]) -> int:
    from smisbench.errors import SmisbenchError

    if text.isdigit() and int(text) < len(names):
        return int(text)
    if text in names:
        return names.index(text)
    raise SmisbenchError(f"unknown class {text!r}", f"use an id in 0..{len(names) - 1} or one of: {', '.join(names)}")


def parse_sources(pairs: list[str], names: tuple[str, ...]) -> dict[int, int]:
    from smisbench.errors import SmisbenchError

    sources = {}
    for pair in pairs:
        cls, sep, index = pair.partition("=")
        if not sep or not index.strip().isdigit():
            raise SmisbenchError(f"--from {pair!r} is not C=INDEX", "write e.g. --from 1=5 or --from disc=5")
        sources[parse_class(cls.strip(), names)] = int(index)
    return sources


def _names(model) -> tuple[str, ...]:
    names = tuple(model.dataset.class_names or ())
    return names or tuple(str(i) for i in range(model.dataset.label_nc))


def _write(path: str, png: bytes) -> None:
    from smisbench.io import atomic_write_bytes

    atomic_write_bytes(path, png)


def _mix(args) -> int:
    from smisbench.applications.mixture import mixture, mixture_row, row_png

    model, where = load_model(args)
    model = model.to(args.device).eval()
    dataset = _dataset(args, model)
    result = mixture(model, dataset, args.label, parse_sources(args.sources, _names(model)), args.base)
    _write(args.out, row_png(mixture_row(result, model.dataset), args.scale))
    names = _names(model)
    sources = ", ".join(f"{names[c]} <- item {k}" for c, k in sorted(result.sources.items()))
    print(f"{where}: label map of item {args.label}, base item {result.base_index}, {sources}; wrote {args.out}")
    return 0


def _morph(args) -> int:
    from smisbench.applications.mixture import morph, morph_row, row_png, steps_between

    model, where = load_model(args)
    model = model.to(args.device).eval()
    dataset = _dataset(args, model)
    classes = [parse_class(c, _names(model)) for c in args.classes] if args.classes else None
    ts = steps_between(args.range[0], args.range[1], args.steps)
    result = morph(model, dataset, args.a, args.b, ts, args.label, classes)
    _write(args.out, row_png(morph_row(result, model.dataset), args.scale))
    print(f"{where}: items {args.a} -> {args.b}, t = {', '.join(f'{t:g}' for t in ts)}; wrote {args.out}")
    return 0
