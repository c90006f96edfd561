"""``smisbench zoo train``: train zoo entries with the ordinary trainer and write checkpoint + manifest.

Each model is trained by :func:`smisbench.training.trainer.train` in ``WORK/runs/<id>`` (resumable:
an interrupted run continues from its latest checkpoint), then its ``model.pt`` is stored in
float16 as ``OUT/<id>.pt`` beside ``OUT/<id>.json``, the manifest. An entry whose manifest already
records the same settings and whose file matches its sha256 is left as it is (``force`` retrains).
"""

from __future__ import annotations

import csv
import json
import math
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from smisbench.errors import SmisbenchError
from smisbench.io import atomic_write_text, sha256_file
from smisbench.zoo.definition import MODEL_KIND, TrainSettings, Zoo, parameter_counts
from smisbench.zoo.store import (
    STORAGE_NOTE, checkpoint_path, float16_check, load_checkpoint, manifest_path, read_manifest, save_float16,
    write_manifest,
)

NOT_LOSSES = {"step", "epoch", "lr_G", "lr_D", "sec_per_step"}


@dataclass
class TrainOutcome:
    id: str
    status: str  # "trained", "up to date"
    manifest: dict[str, Any]


def read_losses(path: str | Path) -> list[dict[str, float]]:
    """Rows of a trainer's ``losses.csv`` as numbers (step included, learning rates and timings dropped)."""
    rows = []
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            rows.append({k: float(v) for k, v in row.items()
                         if v not in ("", None) and (k == "step" or k not in NOT_LOSSES)})
    return rows


def step_seconds(path: str | Path) -> float | None:
    """Median seconds of one training step in ``losses.csv`` (the trainer's own timing, no start-up)."""
    import statistics

    with open(path, newline="") as handle:
        times = [float(r["sec_per_step"]) for r in csv.DictReader(handle) if r.get("sec_per_step")]
    return statistics.median(times) if times else None


def loss_record(rows: list[dict[str, float]], first: int, window: int) -> dict[str, Any]:
    """The first ``first`` steps' losses (for the reproduction check) and each term's mean over the last ``window``."""
    tail = rows[-window:] if rows else []
    terms = [k for k in (rows[0] if rows else {}) if k != "step"]
    final = {k: sum(r[k] for r in tail if k in r) / max(1, sum(k in r for r in tail)) for k in terms}
    return {"first_steps": rows[:first], "final": final, "final_window": len(tail), "logged_steps": len(rows)}


def _sessions(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "zoo_sessions.json"
    return json.loads(path.read_text()) if path.is_file() else []


def _record_session(run_dir: Path, wall_s: float, steps: int) -> list[dict[str, Any]]:
    sessions = _sessions(run_dir) + [{"wall_s": wall_s, "steps": steps}]
    atomic_write_text(run_dir / "zoo_sessions.json", json.dumps(sessions) + "\n")
    return sessions


def is_up_to_date(out: Path, settings: TrainSettings) -> bool:
    """The entry's file and manifest exist, agree (sha256) and record exactly these settings."""
    if not (manifest_path(out, settings.id).is_file() and checkpoint_path(out, settings.id).is_file()):
        return False
    manifest = read_manifest(manifest_path(out, settings.id))
    return (manifest.get("train") == settings.to_dict()
            and sha256_file(checkpoint_path(out, settings.id)) == manifest["file"]["sha256"])


def _environment(device: str, commit: str | None = None) -> dict[str, Any]:
    """Where a training ran. ``commit``: the checkout the training process started from (its code is what
    trained the weights), taken by :func:`run` before any training; None: the checkout now."""
    import torch

    from smisbench.provenance import environment

    env = environment(device)
    return {"git_commit": commit or env.get("git_commit"), "device": device, "device_name": env.get("device_name"),
            "torch": torch.__version__, "threads": torch.get_num_threads()}


def _file_record(path: Path, storage: str) -> dict[str, Any]:
    return {"name": path.name, "sha256": sha256_file(path), "bytes": path.stat().st_size, "storage": storage}


def train_model(zoo: Zoo, settings: TrainSettings, out: Path, work: Path, command: str, device: str = "cpu",
                threads: int | None = None, progress: bool = True, commit: str | None = None) -> dict[str, Any]:
    """Train one zoo model (resuming its run folder) and write ``out/<id>.pt`` + manifest; returns the manifest."""
    from smisbench.data.registry import build_dataset
    from smisbench.training.trainer import train

    run_dir = work / "runs" / settings.id
    resume = (run_dir / "checkpoints" / "latest.pt").is_file()
    if not resume:
        for stale in ("zoo_sessions.json", "losses.csv"):
            (run_dir / stale).unlink(missing_ok=True)
    config = settings.train_config(run_dir, device, threads, progress, resume=resume)
    started = time.perf_counter()
    result = train(config)
    sessions = _record_session(run_dir, time.perf_counter() - started, result.step)
    if result.model_bundle is None:
        raise SmisbenchError(f"training of {settings.id} stopped at step {result.step}/{result.total_steps}",
                             "run the same `smisbench zoo train` command again to resume it")
    model, _ = load_checkpoint(result.model_bundle)
    target = checkpoint_path(out, settings.id)
    save_float16(model, target, {"zoo_id": settings.id, "trained_steps": result.step})
    test = build_dataset(settings.dataset, None, "test", **settings.dataset_options)
    run_json = json.loads((run_dir / "run.json").read_text())
    wall = sum(s["wall_s"] for s in sessions)
    manifest = {
        "id": settings.id, "kind": MODEL_KIND, "label": settings.label, "model": settings.model,
        "command": {"zoo": command, "train": shlex.join(["smisbench", *settings.train_argv(run_dir, device)]),
                    "train_argv": settings.train_argv("RUN_DIR", device)},
        "train": settings.to_dict(), "seed": settings.seed, "steps": result.step,
        "environment": _environment(device, commit), "wall_time_s": round(wall, 1),
        "steps_per_s": round(result.step / wall, 4) if wall > 0 else None, "sessions": sessions,
        "step_s_median": step_seconds(run_dir / "losses.csv"),
        "losses": loss_record(read_losses(run_dir / "losses.csv"), zoo.first_steps, zoo.final_window),
        "perceptual": run_json.get("perceptual"), "precision": run_json.get("precision"),
        "parameters": parameter_counts(settings.model, settings.dataset, settings.config),
        "parameters_D": run_json.get("model", {}).get("parameters_D"),
        "file": _file_record(target, STORAGE_NOTE), "float16_check": float16_check(model, target, test),
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_manifest(out, settings.id, manifest)
    return manifest


def train_segmenter(settings: TrainSettings, out: Path, command: str, protocol: Any, device: str = "cpu",
                    progress: bool = True, commit: str | None = None) -> dict[str, Any]:
    """Train the synthetic FCN, store it (float32) with a manifest holding its mIoU/accuracy on real test images."""
    from smisbench.data.registry import build_dataset
    from smisbench.segmenters.synthetic_fcn import train_synthetic_fcn
    from smisbench.zoo.ceiling import real_segmentation

    target = checkpoint_path(out, settings.id)
    size = int(settings.dataset_options.get("size", 64))
    started = time.perf_counter()
    info = train_synthetic_fcn(target, steps=settings.steps, batch_size=settings.batch_size, seed=settings.seed,
                               size=size, progress=progress)
    wall = time.perf_counter() - started
    test = build_dataset(settings.dataset, None, "test", **settings.dataset_options)
    scored = protocol.replace(segmenter=settings.id, segmenter_checkpoints=(str(target),),
                              segmentation_samples=None)
    values, provenance = real_segmentation(test, scored, device)
    manifest = {
        "id": settings.id, "kind": "segmenter", "label": "synthetic segmenter", "model": settings.id,
        "command": {"zoo": command}, "train": settings.to_dict(), "seed": settings.seed, "steps": settings.steps,
        "environment": _environment(device, commit), "wall_time_s": round(wall, 1),
        "steps_per_s": round(settings.steps / wall, 4) if wall > 0 else None,
        "losses": {"final": {"cross_entropy": info["final_loss"]}, "final_window": min(10, settings.steps)},
        "real_test_images": {"miou": values["miou"], "accuracy": values["accuracy"], "images": len(test),
                             "scoring": provenance.get("segmenter")},
        "file": _file_record(target, "float32 state dict (as trained)"),
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_manifest(out, settings.id, manifest)
    return manifest


def reproduce_first_steps(manifest: dict[str, Any], work: Path, steps: int | None = None, device: str = "cpu",
                          threads: int | None = None) -> dict[str, Any]:
    """Retrain a manifest's model for its first steps (same settings, stopped early) and compare the losses.

    Returns {"steps", "max_rel_diff", "rows": [(recorded, now)]}; the whole schedule is the manifest's, so
    the learning rate of those steps is the one the recorded run had.
    """
    from smisbench.training.trainer import train

    settings = TrainSettings.from_dict(manifest["train"])
    recorded = manifest["losses"]["first_steps"]
    steps = min(steps or len(recorded), len(recorded))
    if steps <= 0:
        raise SmisbenchError(f"manifest of {manifest['id']} records no first-step losses", "retrain the entry")
    run_dir = work / f"reproduce-{settings.id}"
    train(settings.train_config(run_dir, device, threads, progress=False, stop_after=steps))
    now = read_losses(run_dir / "losses.csv")[:steps]
    worst = 0.0
    for old, new in zip(recorded[:steps], now):
        for term, value in old.items():
            if term == "step":
                continue
            scale = max(abs(value), 1e-6)
            worst = max(worst, abs(new.get(term, math.nan) - value) / scale)
    return {"steps": steps, "max_rel_diff": worst, "recorded": recorded[:steps], "now": now}


def run(zoo: Zoo, plans: list[TrainSettings], out: Path, work: Path, command: str, protocol: Callable[[], Any],
        device: str = "cpu", threads: int | None = None, progress: bool = True, force: bool = False,
        stream: Any = None) -> list[TrainOutcome]:
    """Train every plan in order (skipping those up to date unless ``force``); prints one line per entry."""
    import sys

    from smisbench.provenance import git_commit

    stream = stream or sys.stdout
    out.mkdir(parents=True, exist_ok=True)
    commit = git_commit()  # now, before any training: a later commit in the checkout did not train these weights
    outcomes = []
    for settings in plans:
        if not force and is_up_to_date(out, settings):
            outcomes.append(TrainOutcome(settings.id, "up to date", read_manifest(manifest_path(out, settings.id))))
            print(f"{settings.id}: up to date ({manifest_path(out, settings.id)})", file=stream)
            continue
        if settings.kind == MODEL_KIND:
            manifest = train_model(zoo, settings, out, work, command, device, threads, progress, commit)
        else:
            manifest = train_segmenter(settings, out, command, protocol(), device, progress, commit)
        outcomes.append(TrainOutcome(settings.id, "trained", manifest))
        rate = manifest.get("steps_per_s")
        print(f"{settings.id}: {manifest['steps']} steps in {manifest['wall_time_s']:.1f} s"
              f" ({rate} steps/s) -> {checkpoint_path(out, settings.id)}", file=stream)
    return outcomes
