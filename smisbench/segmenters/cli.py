"""``smisbench segment`` (mIoU / pixel accuracy of a folder of images) and ``smisbench segmenters``."""

from __future__ import annotations

import argparse
import json
import math

from smisbench.metrics.protocol import DONT_CARE_RULES


def _size(text: str):
    if text in ("label", "generated"):
        return text
    try:
        h, w = (int(v) for v in text.lower().replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not 'label', 'generated' or HEIGHTxWIDTH") from None
    return (h, w)


def register(subparsers: argparse._SubParsersAction) -> None:
    seg = subparsers.add_parser(
        "segment",
        help="score generated images against label maps with a segmenter (mIoU, pixel accuracy)",
        description="Segment each generated image with a pretrained segmenter and score it against its label map "
                    "with one dataset-level confusion matrix. Nothing is downloaded: pass the checkpoint file(s).",
    )
    seg.add_argument("--images", required=True, help="folder of generated images (PNG/JPG)")
    seg.add_argument("--labels", required=True, help="folder of label maps, paired with the images by file name")
    seg.add_argument("--preset", metavar="NAME|FILE.toml",
                     help="take segmenter, scoring_protocol, dont_care (and segmenter_checkpoints) from this protocol "
                          "preset for the dataset (`smisbench protocols`); the flags below win over it")
    seg.add_argument("--dataset", help="the dataset whose values of the preset apply (default: the segmenter's or "
                                       "the scoring protocol's dataset)")
    seg.add_argument("--segmenter", help="segmenter name (see `smisbench segmenters`); default: the protocol's")
    seg.add_argument("--mmseg-config", metavar="CONFIG",
                     help="any mmsegmentation config file (or path inside mmseg's configs/) as the segmenter; "
                          "needs --label-convention and --checkpoint")
    seg.add_argument("--protocol", help="scoring protocol name; default: the segmenter's")
    seg.add_argument("--checkpoint", action="append", default=[], metavar="[ROLE=]PATH",
                     help="checkpoint file, ROLE=PATH for multi-file segmenters, or a folder holding the released "
                          "file names (repeatable)")
    seg.add_argument("--sha256", action="append", default=[], metavar="[ROLE=]HEX",
                     help="require this sha256 (or prefix) for the checkpoint; ROLE=HEX for each file of a "
                          "multi-file segmenter (repeatable)")
    seg.add_argument("--allow-global", action="append", default=[], metavar="MODULE.NAME",
                     help="allow this pickled global while loading the checkpoint (only for files you trust)")
    seg.add_argument("--predictions", action="store_true",
                     help="--images holds predicted label maps, not images: score them without a segmenter")
    seg.add_argument("--label-convention", help="label convention (default: the protocol's)")
    scale = seg.add_mutually_exclusive_group()
    scale.add_argument("--multi-scale", dest="multi_scale", action="store_true", default=None)
    scale.add_argument("--single-scale", dest="multi_scale", action="store_false")
    seg.add_argument("--absent-class-rule", choices=("nanmean", "sceneparsing"))
    seg.add_argument("--dont-care", choices=DONT_CARE_RULES,
                     help="pixel accuracy without (ignored) or with (counted, never right) the don't-care pixels "
                          "(default: the preset's, else the scoring protocol's, ignored)")
    seg.add_argument("--common-size", type=_size, help="'label', 'generated' or HEIGHTxWIDTH")
    seg.add_argument("--segmenter-input", type=_size, help="'generated' or HEIGHTxWIDTH")
    seg.add_argument("--resize", choices=("logits", "labels"))
    seg.add_argument("--device", default="cpu")
    seg.add_argument("--limit", type=int, help="score only the first N images (a quick look, not a result)")
    seg.add_argument("--out", help="folder for scores.json, per_class.csv and confusion.json")
    seg.add_argument("--no-progress", action="store_true")
    seg.set_defaults(func=_segment)

    lst = subparsers.add_parser("segmenters", help="list segmenters, their checkpoints and scoring protocols")
    lst.add_argument("--json", action="store_true", help="machine-readable output")
    lst.set_defaults(func=_list)


def _sha256_pins(values: list[str], segmenter: str, roles: tuple[str, ...]) -> dict[str, str]:
    """``--sha256 [ROLE=]HEX`` values -> ``{role: hex}``; never drops one silently.

    A bare HEX names the only file of a one-file segmenter; for a multi-file one (CSAIL's UperNet:
    encoder and decoder) it is ambiguous, so it is refused with the per-role form to use.
    """
    from smisbench.errors import SmisbenchError

    out: dict[str, str] = {}
    for value in values:
        role, sep, digest = value.partition("=")
        if not sep:
            if len(roles) != 1:
                raise SmisbenchError(
                    f"--sha256 {value} does not say which of {segmenter}'s {len(roles)} files "
                    f"({', '.join(roles)}) it pins",
                    "pass one per file as " + " ".join(f"--sha256 {r}=HEX" for r in roles),
                )
            role, digest = roles[0], value
        if role not in roles:
            raise SmisbenchError(f"--sha256 {value}: {segmenter} has no checkpoint role {role!r}",
                                 f"its roles are: {', '.join(roles)}")
        if role in out and out[role] != digest:
            raise SmisbenchError(f"--sha256 pins {role} twice ({out[role]} and {digest})", "pass one sha256 per file")
        out[role] = digest
    return out


def _register_mmseg_config(args) -> None:
    from smisbench.errors import SmisbenchError
    from smisbench.segmenters.label_conventions import get_label_convention
    from smisbench.segmenters.mmseg_backend import spec_from_config
    from smisbench.segmenters.registry import register

    if not args.label_convention:
        raise SmisbenchError("--mmseg-config needs --label-convention",
                             "name how the label maps are stored, e.g. ade20k_sceneparsing or cityscapes_labelids")
    convention = get_label_convention(args.label_convention)
    name = f"mmseg:{args.mmseg_config}"
    register(spec_from_config(args.mmseg_config, name=name, dataset=convention.name,
                              classes=tuple(str(i) for i in range(convention.num_classes)),
                              label_convention=convention.name))
    args.segmenter = name


def _preset_dataset(args) -> str | None:
    """The dataset whose preset values apply: --dataset, else the segmenter's or the scoring protocol's."""
    from smisbench.segmenters.protocol import get_protocol
    from smisbench.segmenters.registry import get_spec

    if args.dataset:
        return args.dataset
    if args.segmenter:
        return get_spec(args.segmenter).dataset
    if args.protocol:
        return get_spec(get_protocol(args.protocol).segmenter).dataset
    return None


def apply_preset(args) -> str | None:
    """Fill what the flags leave open from ``--preset`` (for the dataset); returns the preset's name."""
    if not args.preset:
        return None
    from smisbench.metrics.presets import get_preset

    if args.mmseg_config:  # registers the mmseg segmenter first, so its dataset is known
        _register_mmseg_config(args)
        args.mmseg_config = None
    protocol = get_preset(args.preset).eval_protocol(_preset_dataset(args))
    if not args.segmenter and not args.protocol:
        args.segmenter, args.protocol = protocol.segmenter, protocol.scoring_protocol
    elif not args.protocol and args.segmenter == protocol.segmenter:
        args.protocol = protocol.scoring_protocol
    args.dont_care = args.dont_care or protocol.dont_care
    if not args.checkpoint and protocol.segmenter_checkpoints and args.segmenter in (None, protocol.segmenter):
        args.checkpoint = list(protocol.segmenter_checkpoints)
    return protocol.preset


def _resolve_protocol(args):
    from smisbench.errors import SmisbenchError
    from smisbench.segmenters.protocol import default_protocol_for, get_protocol

    if args.mmseg_config:
        _register_mmseg_config(args)

    if args.protocol:
        protocol = get_protocol(args.protocol)
        if args.segmenter and args.segmenter != protocol.segmenter:
            protocol = protocol.with_overrides(segmenter=args.segmenter, name=f"{protocol.name}+{args.segmenter}")
    elif args.segmenter:
        protocol = default_protocol_for(args.segmenter)
    elif args.predictions and args.label_convention:
        return None
    else:
        raise SmisbenchError("no segmenter or protocol given",
                             "pass --segmenter NAME or --protocol NAME (see `smisbench segmenters`), or --preset "
                             "NAME with --dataset NAME")
    return protocol.with_overrides(
        absent_class_rule=args.absent_class_rule, common_size=args.common_size,
        segmenter_input=args.segmenter_input, resize=args.resize, multi_scale=args.multi_scale,
        label_convention=args.label_convention, dont_care=args.dont_care,
    )


def _segment(args) -> int:
    from smisbench.segmenters.score_folder import score_folders, score_prediction_folders

    preset = apply_preset(args)
    protocol = _resolve_protocol(args)
    if args.predictions:
        convention = args.label_convention or protocol.label_convention
        rule = args.absent_class_rule or (protocol.absent_class_rule if protocol else "nanmean")
        dont_care = args.dont_care or (protocol.dont_care if protocol else "ignored")
        result = score_prediction_folders(args.images, args.labels, convention, rule, progress=not args.no_progress,
                                          dont_care=dont_care)
    else:
        from smisbench.segmenters.registry import get_spec, load_segmenter

        spec = get_spec(protocol.segmenter)
        segmenter = load_segmenter(
            protocol.segmenter, args.checkpoint, device=args.device, multi_scale=protocol.multi_scale,
            expected_sha256=_sha256_pins(args.sha256, spec.name, spec.roles), allowed_globals=args.allow_global,
            **dict(protocol.segmenter_options),
        )
        result = score_folders(args.images, args.labels, segmenter, protocol, progress=not args.no_progress,
                               limit=args.limit)
    result.protocol["preset"] = preset
    summary = result.summary
    print(f"images: {result.images}  pixels scored: {summary['scored_pixels']}")
    print(f"mIoU: {_pct(summary['mIoU'])}  pixel accuracy: {_pct(summary['pixel_accuracy'])}  "
          f"(absent classes: {summary['absent_class_rule']}; don't-care pixels {summary['dont_care']}: "
          f"{summary['dont_care_pixels']}{f'; preset {preset}' if preset else ''})")
    for record in result.segmenter.get("checkpoints", []):
        print(f"checkpoint {record['role']}: sha256 {record['sha256']} ({record['status']})")
    if args.out:
        for path in result.write(args.out):
            print(f"wrote {path}")
    return 0


def _pct(value: float) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.2f}"


def _list(args) -> int:
    from smisbench.segmenters.mmseg_backend import mmseg_available
    from smisbench.segmenters.protocol import get_protocol, protocol_names
    from smisbench.segmenters.registry import get_spec, segmenter_names

    specs = [get_spec(n).summary() for n in segmenter_names()]
    protocols = [get_protocol(n).to_dict() for n in protocol_names()]
    ok, why = mmseg_available()
    if args.json:
        print(json.dumps({"segmenters": specs, "protocols": protocols, "mmseg_available": ok}, indent=2))
        return 0
    for spec in specs:
        print(f"{spec['name']}  [{spec['backend']}, {spec['dataset']}, {spec['num_classes']} classes]")
        for c in spec["checkpoints"]:
            pin = c["sha256"] or "not pinned"
            print(f"    {c['role']}: {c['filename']}  sha256 {pin}\n        {c['url']}")
        if spec["published"]:
            print(f"    published: {spec['published']}")
    print("\nprotocols:")
    for p in protocols:
        print(f"  {p['name']}: {p['segmenter']}, labels {p['label_convention']}, "
              f"absent classes {p['absent_class_rule']}, "
              f"common size {p['common_size']}, resize {p['resize']}")
    if not ok:
        print(f"\nmmseg backend unavailable: {why}")
    return 0
