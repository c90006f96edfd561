#!/usr/bin/env python3
"""FPS of GroupDNet and VSPADE at DeepFashion size, as defined and through the inference copy (docs/gpu.md).

The paper's Table 1 gives FPS 12.2 (GroupDNet) and 20.4 (VSPADE) on its own GPU: a ratio of 0.60.
This measures the same two generators on this machine with the suite's FPS helper
(``smisbench.metrics.fps.measure_fps``: warm-up, device synchronisation around every timed pass,
median over repeats, ``torch.inference_mode``, eval mode, float32), for the model as defined (what
the paper's column measures) and for its exact inference copy (what evaluations generate with),
and checks the copy's images against the model's on the timed input (``fast_path_tolerance``).
Weights are random (the registered initialisation after ``torch.manual_seed(seed)``): speed does
not depend on their values. The label map is the synthetic set's test item 0 rendered at the
dataset's size (class ids 0..5): the as-defined generators' cost does not depend on it, the copy's
does a little (it evaluates its fused CG-Norm convolution at label boundaries only).

    python scripts/gpu_fps.py                                   # CUDA, deepfashion, 256x256
    python scripts/gpu_fps.py --device cpu --size 64 --dataset synthetic --repeats 3   # a smoke check
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # runs from a plain checkout too (the GPU machine has no install)
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from smisbench.errors import SmisbenchError  # noqa: E402

PAPER_ROWS = {"groupdnet": "GroupDNet", "vspade": "VSPADE"}  # our model names -> the paper's Table 1 rows
PAPER_HARDWARE = ("the paper does not name the GPU its FPS were measured on (its experiments ran on NVIDIA P40 "
                  "GPUs); this run's hardware, software and code differ, so compare the GroupDNet/VSPADE ratio, "
                  "not absolute FPS")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", help="cuda (default), cuda:K, cpu or auto")
    p.add_argument("--dataset", default="deepfashion", help="registered dataset config the models are built for")
    p.add_argument("--size", type=int, help="image height; must be the config's (256 for deepfashion, 64 for synthetic)")
    p.add_argument("--models", default="groupdnet,vspade", help="comma-separated registered model names")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--warmup", type=int, default=10, help="untimed passes first (CUDA kernels, cuDNN choices)")
    p.add_argument("--repeats", type=int, default=50, help="timed passes; the median is reported")
    p.add_argument("--seed", type=int, default=0, help="weights and codes")
    p.add_argument("--out", type=Path, help="JSON file (default: ${OUT:-gpu_out}/gpu_fps.json)")
    return p.parse_args(argv)


def label_map(config: Any) -> torch.Tensor:
    """A (H, W) label map at the config's size: the synthetic set's test item 0 (class ids 0..5)."""
    from smisbench.data.registry import build_dataset
    import smisbench.data.synthetic  # noqa: F401  (registers the reader)

    if config.label_nc < 6:
        raise SmisbenchError(f"dataset config {config.name!r} has {config.label_nc} classes, the synthetic "
                             "label map uses ids 0..5", "use a dataset config with at least 6 classes")
    data = build_dataset("synthetic", None, "test", length=1, size=(config.height, config.width))
    return data[0]["label"]


def measure_model(name: str, dataset: str, device: torch.device, label: torch.Tensor,
                  args: argparse.Namespace) -> dict[str, Any]:
    """FPS as defined and through the inference copy, the copy's largest image difference, the size."""
    from smisbench.metrics.fast_path import max_abs_diff
    from smisbench.metrics.fps import measure_fps
    from smisbench.metrics.params import parameter_report
    from smisbench.metrics.protocol import EvalProtocol
    from smisbench.models.inference import has_inference_copy, inference_copy
    from smisbench.models.registry import build_model

    torch.manual_seed(args.seed)
    model = build_model(name, dataset).eval().to(device)
    record: dict[str, Any] = {"parameters_G_E": parameter_report(model).generator}

    def timed(net) -> dict[str, Any]:
        return measure_fps(net, label, args.batch_size, args.warmup, args.repeats, "float32", device,
                           args.seed).to_dict()

    record["as_defined"] = timed(model)
    if has_inference_copy(model):
        fast = inference_copy(model).to(device)
        record["inference_copy"] = timed(fast)
        with torch.inference_mode():
            semantics = model.semantics(label[None]).expand(args.batch_size, -1, -1, -1)
            z = model.sample_z(args.batch_size, torch.Generator().manual_seed(args.seed), device)
            expected = model.generate(semantics, z)
            diff = max_abs_diff(fast.generate(semantics, z), expected)
        tolerance = float(EvalProtocol().fast_path_tolerance)
        record.update(copy_speedup=record["inference_copy"]["fps"] / record["as_defined"]["fps"],
                      copy_max_abs_diff=diff, fast_path_tolerance=tolerance, copy_within_tolerance=diff <= tolerance,
                      # random weights drive many pixels into tanh's +-1, where any two paths agree exactly:
                      # the difference means most where this is small (tests/test_cuda.py checks with O(1) weights)
                      output_saturated_fraction=float((expected.abs() > 0.999).float().mean()))
        del fast
    else:
        record["inference_copy"] = None
    del model
    if device.type == "cuda":
        record["cuda_max_memory_allocated_bytes"] = torch.cuda.max_memory_allocated(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    return record


def paper_fps(name: str) -> float | None:
    from smisbench.benchmark.paper import Column, paper_tables

    row = PAPER_ROWS.get(name)
    return None if row is None else paper_tables()["table1"].value(row, Column("deepfashion", "fps"))


def ratios(models: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """GroupDNet/VSPADE images per second here (as defined, inference copy) beside the paper's."""
    if "groupdnet" not in models or "vspade" not in models:
        return None
    g, v = models["groupdnet"], models["vspade"]
    paper_g, paper_v = paper_fps("groupdnet"), paper_fps("vspade")
    both_copies = g["inference_copy"] is not None and v["inference_copy"] is not None
    return {
        "as_defined": g["as_defined"]["fps"] / v["as_defined"]["fps"],
        "inference_copy": g["inference_copy"]["fps"] / v["inference_copy"]["fps"] if both_copies else None,
        "paper": paper_g / paper_v if paper_g and paper_v else None,
        "paper_fps": {"GroupDNet": paper_g, "VSPADE": paper_v},
        "paper_source": "paper Table 1 (DeepFashion), FPS column (smisbench/benchmark/paper_numbers.toml)",
        "hardware_note": PAPER_HARDWARE,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from smisbench.datasets_config import get_dataset_config
    from smisbench.provenance import environment
    from smisbench.runtime import pick_device

    device = pick_device(args.device)
    config = get_dataset_config(args.dataset)
    if args.size is not None and args.size != config.height:
        raise SmisbenchError(f"--size {args.size} is not the {config.name} config's height {config.height} (the "
                             "networks' layer shapes follow the configured size)",
                             f"leave --size out or pass --size {config.height}, or choose another --dataset")
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    label = label_map(config)
    cuda = {"version": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
            "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
            "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32} if device.type == "cuda" else None
    models = {}
    for name in names:
        models[name] = measure_model(name, config.name, device, label, args)
        line = f"{name:>10}: as defined {models[name]['as_defined']['fps']:8.2f} images/s"
        if models[name]["inference_copy"] is not None:
            line += (f", inference copy {models[name]['inference_copy']['fps']:8.2f} images/s "
                     f"(max |copy - model| {models[name]['copy_max_abs_diff']:.2e})")
        print(line, flush=True)
    result = {
        "script": "scripts/gpu_fps.py", "argv": sys.argv[1:],
        "environment": environment(device), "torch": torch.__version__, "cuda": cuda,
        "settings": {"dataset": config.name, "resolution": [config.height, config.width],
                     "batch_size": args.batch_size, "dtype": "float32", "mode": "eval, torch.inference_mode",
                     "warmup": args.warmup, "repeats": args.repeats, "seed": args.seed,
                     "weights": "random (registered initialisation after torch.manual_seed(seed))",
                     "label": f"synthetic test item 0 rendered at {config.height}x{config.width} (class ids 0..5)",
                     "timing": "smisbench.metrics.fps.measure_fps: median batch time, device synchronised "
                               "around each timed pass"},
        "models": models,
        "ratio_groupdnet_over_vspade": ratios(models),
    }
    r = result["ratio_groupdnet_over_vspade"]
    if r is not None:
        copy_ratio = "n/a" if r["inference_copy"] is None else f"{r['inference_copy']:.2f}"
        print(f"GroupDNet/VSPADE: as defined {r['as_defined']:.2f}, inference copy {copy_ratio}; paper "
              f"{r['paper_fps']['GroupDNet']}/{r['paper_fps']['VSPADE']} = {r['paper']:.2f} (hardware differs)")
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = args.out or Path(os.environ.get("OUT") or "gpu_out") / "gpu_fps.json"
    try:
        result = run(args)
    except SmisbenchError as err:
        print(f"gpu_fps: error: {err}", file=sys.stderr)
        return 2
    from smisbench.io import atomic_write_text

    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(result, indent=2, default=str) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
