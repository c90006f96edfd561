"""The training loop: one G (+E) step then one D step per batch, on one process or many.

Float32 as the official code unless ``--amp``; the KL term weighted as the official per-GPU batch.
Files under ``out/`` (rank 0 only): ``run.json`` (config, environment, VGG record, schedule, precision, KL),
``losses.csv`` (and TensorBoard events when asked), ``checkpoints/step_*.pt`` + ``latest.pt`` (also
written every ``checkpoint_every_s`` seconds of wall time, so a killed run resumes from minutes ago),
``samples/step_*.png`` (label, real, generated[, encoded] per item) and, at the end,
``model.pt`` (a smisbench model bundle that ``smisbench sample --weights`` reads).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import random
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import default_collate

from smisbench.data.registry import build_dataset
from smisbench.errors import SmisbenchError
from smisbench.io import atomic_write_text
from smisbench.progress import progress_bar
from smisbench.models.registry import build_discriminator, build_model
from smisbench.provenance import environment
from smisbench.training import checkpointing, distributed
from smisbench.training.config import TrainConfig
from smisbench.training.loader import batches_per_epoch, make_loader
from smisbench.training.losses import PerceptualLoss
from smisbench.training.objective import build_objective
from smisbench.training.runlog import LossLog
from smisbench.training.samples import sample_rows, save_grid
from smisbench.training.schedule import linear_decay
from smisbench.training.vgg import VGGRecord, build_perceptual


@dataclass
class TrainResult:
    """Where a finished (or stopped) run left its files, and how fast it went."""

    out: Path
    step: int
    total_steps: int
    checkpoint: Path | None
    losses_csv: Path
    sample_grid: Path | None
    model_bundle: Path | None
    steps_per_s: float
    stopped_early: bool


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class _StopRequest:
    """First Ctrl-C asks the loop to stop after the current step (with a checkpoint); a second one aborts."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def __enter__(self) -> "_StopRequest":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _on(choice: str, device: torch.device) -> bool:
    return choice == "on" or (choice == "auto" and device.type == "cuda")


class Trainer:
    """Builds data, model, discriminator, objective and optimisers from a :class:`TrainConfig` and trains."""

    def __init__(self, config: TrainConfig, ctx: distributed.DistContext | None = None,
                 clock: Callable[[], float] = time.monotonic):
        config.validate()
        self.config = config
        self.ctx = ctx or distributed.setup(config.device)
        self.clock = clock  # wall time for the checkpoint_every_s trigger (tests pass a fake one)
        self.out = Path(config.out)
        self.holders: list[nn.Module] = []  # DDP wrappers, deleted before the process group goes
        if config.threads:
            torch.set_num_threads(config.threads)
        self._build()

    # ----- construction -----
    def _build(self) -> None:
        c, ctx = self.config, self.ctx
        seed_everything(c.seed)  # the same initial weights on every rank
        schedule = c.schedule()
        self.batch_size = c.batch_size or schedule.batch_size
        self.dataset = build_dataset(c.dataset, c.root, "train", **c.dataset_options)
        self.sample_batch = self._sample_batch()
        data_config = self.dataset.config
        self.model = build_model(c.model, data_config.name, **c.model_overrides)
        self.discriminator = build_discriminator(c.model, data_config.name, **c.model_overrides)
        self._check_sizes()
        wanted_sync = bool(getattr(getattr(self.model, "config", None), "sync_bn", True))
        self.model = distributed.use_sync_batchnorm(ctx, self.model, wanted_sync)
        self.discriminator = distributed.use_sync_batchnorm(ctx, self.discriminator, wanted_sync)
        self.sync_bn = ctx.backend == "nccl" and wanted_sync
        self.amp = c.amp  # float32 unless asked: the official code trains in float32
        if self.amp and ctx.device.type != "cuda":
            raise SmisbenchError("--amp needs CUDA (float16 autocast with a GradScaler)",
                                 "leave --amp out on CPU (training runs in float32)")
        self.channels_last = _on(c.channels_last, ctx.device)
        memory = torch.channels_last if self.channels_last else torch.contiguous_format
        self.model.to(ctx.device, memory_format=memory)
        self.discriminator.to(ctx.device, memory_format=memory)

        self.objective = build_objective(self.model, self.discriminator, None, **c.loss_options)
        self.kl_reference_batch = None
        if hasattr(self.objective, "kl_reference_batch"):  # a KL term summed as the official code (SMISObjective)
            self.kl_reference_batch = c.resolved_kl_reference_batch()
            self.objective.kl_reference_batch = self.kl_reference_batch
        self.perceptual = None
        if hasattr(self.objective, "perceptual"):  # the objective has a VGG term (GroupDNet's, pix2pixHD's)
            taps, self.vgg_record = build_perceptual(c.vgg, c.vgg_normalization)
            if taps is not None:
                self.perceptual = PerceptualLoss(taps).to(ctx.device)
                self.objective.perceptual = self.perceptual
        else:
            self.vgg_record = VGGRecord("none", None, None, c.vgg_normalization,
                                        f"{type(self.objective).__name__} has no perceptual term")
        settings = getattr(self.objective, "optimizer", None)
        lr_g = c.lr_g if c.lr_g is not None else getattr(settings, "lr_g", getattr(settings, "lr", 1e-4))
        lr_d = c.lr_d if c.lr_d is not None else getattr(settings, "lr_d", getattr(settings, "lr", 4e-4))
        betas = tuple(getattr(settings, "betas", (0.0, 0.9)))
        betas = (c.beta1 if c.beta1 is not None else betas[0], c.beta2 if c.beta2 is not None else betas[1])
        self.hyper = {"lr_g": lr_g, "lr_d": lr_d, "betas": betas}
        self.opt_g = torch.optim.Adam([p for p in self.model.parameters() if p.requires_grad], lr=lr_g, betas=betas)
        self.opt_d = torch.optim.Adam([p for p in self.discriminator.parameters() if p.requires_grad], lr=lr_d,
                                      betas=betas)

        self.sync_mode = "none"
        if ctx.distributed:
            if hasattr(self.objective, "distribute"):
                self.holders.extend(self.objective.distribute(self.model, distributed.wrapper(ctx)))
                self.sync_mode = "ddp"
            else:
                distributed.broadcast_parameters(ctx, [self.model, self.discriminator])
                self.sync_mode = "all_reduce"

        self.loader, self.sampler = make_loader(self.dataset, self.batch_size, ctx.rank, ctx.world_size, c.seed,
                                                c.workers, pin_memory=ctx.device.type == "cuda")
        self.steps_per_epoch = batches_per_epoch(self.dataset, self.batch_size, ctx.world_size)
        if c.steps is not None:
            self.total_steps = c.steps
            self.decay_steps = c.decay_steps if c.decay_steps is not None else c.steps // 2
        else:
            epochs = c.epochs if c.epochs is not None else schedule.epochs
            decay = c.decay_epochs if c.decay_epochs is not None else (schedule.decay_epochs if c.epochs is None else 0)
            self.total_steps = (epochs + decay) * self.steps_per_epoch
            self.decay_steps = decay * self.steps_per_epoch
        self.sched_g = linear_decay(self.opt_g, self.total_steps, self.decay_steps)
        self.sched_d = linear_decay(self.opt_d, self.total_steps, self.decay_steps)
        self.scaler_g = torch.amp.GradScaler(ctx.device.type, enabled=self.amp)
        self.scaler_d = torch.amp.GradScaler(ctx.device.type, enabled=self.amp)

        # per-rank randomness for training (codes, noise, dropout); model init above was shared
        torch.manual_seed(c.seed + 7919 * ctx.rank + 1)
        self.noise = torch.Generator().manual_seed(c.seed * 1_000_003 + ctx.rank)
        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.resumed_from: str | None = None
        self._maybe_resume()

    def _sample_batch(self) -> dict:
        c = self.config
        try:
            source = build_dataset(c.dataset, c.root, "val", **c.dataset_options)
        except SmisbenchError:
            source = self.dataset
        items = [source[i] for i in range(min(c.samples, len(source)))]
        return default_collate(items)

    def _check_sizes(self) -> None:
        data, net = self.dataset.config, self.model.dataset
        if (data.label_nc, data.height, data.width) != (net.label_nc, net.height, net.width):
            raise SmisbenchError(
                f"the {self.config.model} configuration for {net.name} expects {net.label_nc} classes at "
                f"{net.height}x{net.width}, but the data gives {data.label_nc} classes at {data.height}x{data.width}",
                "train at the model's size (drop the size= dataset option) or override the model config to match",
            )

    def _maybe_resume(self) -> None:
        c, ctx = self.config, self.ctx
        path = checkpointing.resolve(c.resume, self.out / "checkpoints")
        if path is None:
            return
        state = checkpointing.load(path)
        if state["world_size"] != ctx.world_size:
            raise SmisbenchError(
                f"{path} was written by {state['world_size']} processes, this run has {ctx.world_size}",
                "resume with the same number of processes (the data shards and RNG streams depend on it)",
            )
        if state["total_steps"] != self.total_steps:
            raise SmisbenchError(
                f"{path} belongs to a run of {state['total_steps']} steps, this one has {self.total_steps}",
                "resume with the same --steps/--epochs, --batch-size and dataset",
            )
        self.model.load_state_dict(state["model"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.opt_g.load_state_dict(state["optimizer_G"])
        self.opt_d.load_state_dict(state["optimizer_D"])
        self.sched_g.load_state_dict(state["scheduler_G"])
        self.sched_d.load_state_dict(state["scheduler_D"])
        for scaler, saved in ((self.scaler_g, state["scaler_G"]), (self.scaler_d, state["scaler_D"])):
            if saved:  # a float32 run saves an empty scaler state: resuming it with --amp starts a fresh scale
                scaler.load_state_dict(saved)
        checkpointing.restore_rng(state["rng"][ctx.rank], self.noise)
        self.step, self.epoch, self.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        self.resumed_from = str(path)

    # ----- one step -----
    def _to_device(self, batch: dict) -> dict:
        device = self.ctx.device
        memory = torch.channels_last if self.channels_last else torch.contiguous_format
        out = {k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
        out["image"] = out["image"].contiguous(memory_format=memory)
        semantics = self.model.semantics(out["label"], out.get("instance"), "training batch")
        out["semantics"] = semantics.contiguous(memory_format=memory)
        return out

    def _autocast(self):
        if self.amp:
            return torch.autocast(device_type="cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    def train_step(self, batch: dict) -> dict[str, torch.Tensor]:
        """One G (+E) update then one D update; returns the detached loss terms."""
        batch = self._to_device(batch)
        with self._autocast():
            g = self.objective.generator_loss(batch, self.model, generator=self.noise)
        self._update(g.total, self.opt_g, self.scaler_g, self.model)

        reuse = getattr(self.objective, "reuse_fakes", True)
        with self._autocast():
            d = self.objective.discriminator_loss(batch, self.model, fakes=g.fakes if reuse else None,
                                                  generator=self.noise)
        self._update(d.total, self.opt_d, self.scaler_d, self.discriminator)
        self.sched_g.step()
        self.sched_d.step()
        return {**g.terms, **d.terms}

    def _update(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                network: nn.Module) -> None:
        """Backward, gradients averaged over processes in ``all_reduce`` mode, then one (scaled) step."""
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if self.sync_mode == "all_reduce":
            distributed.average_gradients(self.ctx, network.parameters())
        scaler.step(optimizer)
        scaler.update()

    # ----- files -----
    def _provenance(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        count = lambda m: sum(p.numel() for p in m.parameters()) if m is not None else 0  # noqa: E731
        return {
            "config": json.loads(self.config.to_json()),
            "environment": environment(self.ctx.device),
            "model": {"name": self.config.model, "config": dataclasses.asdict(self.model.config)
                      if dataclasses.is_dataclass(getattr(self.model, "config", None)) else None,
                      "parameters_G": count(self.model.netG), "parameters_E": count(self.model.netE),
                      "parameters_D": count(self.discriminator)},
            "objective": type(self.objective).__name__,
            "optimizer": {"kind": "Adam", **self.hyper},
            "dataset": {"name": self.config.dataset, "root": self.config.root, "items": len(self.dataset),
                        "config": dataclasses.asdict(self.dataset.config)},
            "schedule": {"batch_size_per_process": self.batch_size, "steps_per_epoch": self.steps_per_epoch,
                         "total_steps": self.total_steps, "decay_steps": self.decay_steps,
                         "lr_decay": "linear to 0 over the last decay_steps, per step"},
            "perceptual": self.vgg_record.as_dict(),
            "distributed": {"world_size": self.ctx.world_size, "backend": self.ctx.backend,
                            "gradient_sync": self.sync_mode, "sync_batchnorm": self.sync_bn},
            "kl": self._kl_record(),
            "amp": self.amp,
            "precision": self._precision_record(),
            "channels_last": self.channels_last,
            "resumed_from": self.resumed_from,
            **(extra or {}),
        }

    def _kl_record(self) -> dict[str, Any] | None:
        return None if self.kl_reference_batch is None else {
            "reference_batch": self.kl_reference_batch, "batch_size_per_process": self.batch_size,
            "weighting": "lambda_kld x reference_batch x mean over the batch of each image's summed KL"}

    def _precision_record(self) -> dict[str, Any]:
        """float32 (official) or float16 autocast, and on CUDA PyTorch's TF32 switches (they change float32 too)."""
        cuda = {"cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
                "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32} if self.ctx.device.type == "cuda" else {}
        return {"compute": "float16 autocast + GradScaler" if self.amp else "float32", **cuda}

    def _write_run_json(self, extra: dict[str, Any] | None = None) -> None:
        if self.ctx.is_main:
            atomic_write_text(self.out / "run.json", json.dumps(self._provenance(extra), indent=2, default=str) + "\n")

    def save_checkpoint(self, history: bool = True) -> Path | None:
        """Every rank gives its RNG state; rank 0 writes the file and the grid (history=False: latest.pt only)."""
        rng = distributed.gather_objects(self.ctx, checkpointing.capture_rng(self.noise))
        path = None
        if self.ctx.is_main:
            payload = {
                "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch, "world_size": self.ctx.world_size,
                "total_steps": self.total_steps, "config": self.config.to_json(),
                "model": self.model.state_dict(), "discriminator": self.discriminator.state_dict(),
                "optimizer_G": self.opt_g.state_dict(), "optimizer_D": self.opt_d.state_dict(),
                "scheduler_G": self.sched_g.state_dict(), "scheduler_D": self.sched_d.state_dict(),
                "scaler_G": self.scaler_g.state_dict(), "scaler_D": self.scaler_d.state_dict(),
                "rng": rng, "perceptual": self.vgg_record.as_dict(),
            }
            path = checkpointing.save(self.out / "checkpoints", self.step, payload, self.config.keep_checkpoints,
                                      history)
            if history:
                self.save_samples()
        self.ctx.barrier()
        return path

    def save_samples(self) -> Path:
        rows = sample_rows(self.model, self.sample_batch, seed=self.config.seed)
        scale = max(1, 128 // max(1, self.dataset.config.height))
        path = save_grid(self.out / "samples" / f"step_{self.step:08d}.png", rows, scale)
        save_grid(self.out / "samples" / "latest.png", rows, scale)
        return path

    def save_model(self) -> Path:
        from smisbench.models.checkpoints import save_bundle

        path = self.out / "model.pt"
        extra = {"trained_steps": self.step, "dataset": self.config.dataset, "perceptual": self.vgg_record.as_dict(),
                 "amp": self.amp, "precision": self._precision_record(), "kl": self._kl_record()}
        save_bundle(path, self.model, self.model.config, extra)
        return path

    # ----- the loop -----
    def run(self) -> TrainResult:
        c, ctx = self.config, self.ctx
        log = LossLog(self.out / "losses.csv", self.step if self.resumed_from else None,
                      self.out / "tensorboard" if c.tensorboard else None) if ctx.is_main else None
        self._write_run_json({"tensorboard": log.tensorboard_note if log else None})
        start_step, started = self.step, time.perf_counter()
        session_limit = self.total_steps if c.stop_after is None else min(self.total_steps, self.step + c.stop_after)
        bar = progress_bar(total=self.total_steps, initial=self.step, desc=f"train {c.model}/{c.dataset}",
                           enabled=ctx.is_main and c.progress, dynamic_ncols=True)
        checkpoint, stopped = None, False
        every_s, saved_at = c.checkpoint_every_s, self.clock()
        self.model.train()
        self.discriminator.train()
        try:
            with _StopRequest() as stop:
                while self.step < session_limit and not stopped:
                    set_epoch = getattr(self.dataset, "set_epoch", None)
                    if set_epoch is not None:
                        set_epoch(self.epoch)
                    self.sampler.set_position(self.epoch, self.batch_in_epoch * self.batch_size)
                    for batch in self.loader:
                        tick = time.perf_counter()
                        terms = self.train_step(batch)
                        self.step += 1
                        self.batch_in_epoch += 1
                        bar.update(1)
                        if self.step % c.log_every == 0 or self.step == session_limit:
                            self._log(log, terms, time.perf_counter() - tick, bar)
                        due = bool(every_s) and self.clock() - saved_at >= every_s
                        stopped, due = distributed.any_ranks(ctx, stop.requested, due)  # every rank decides alike
                        if self.step < session_limit and not stopped:  # (the last step's checkpoint follows below)
                            if self.step % c.checkpoint_every == 0 or due:
                                checkpoint = self.save_checkpoint(history=self.step % c.checkpoint_every == 0)
                                saved_at = self.clock()
                        if self.step >= session_limit or stopped:
                            break
                    if self.batch_in_epoch >= self.steps_per_epoch:
                        self.epoch += 1
                        self.batch_in_epoch = 0
                checkpoint = self.save_checkpoint()
        finally:
            bar.close()
            if log is not None:
                log.close()
        elapsed = time.perf_counter() - started
        done = self.step - start_step
        model_path = self.save_model() if ctx.is_main and self.step >= self.total_steps else None
        steps_per_s = done / elapsed if elapsed > 0 else 0.0
        self._write_run_json({"finished": {"step": self.step, "session_steps": done, "session_wall_s": elapsed,
                                           "steps_per_s": steps_per_s, "stopped_early": self.step < self.total_steps},
                              "tensorboard": log.tensorboard_note if log else None})
        result = TrainResult(self.out, self.step, self.total_steps, checkpoint, self.out / "losses.csv",
                             self.out / "samples" / "latest.png" if ctx.is_main else None, model_path, steps_per_s,
                             self.step < self.total_steps)
        if stopped:
            raise KeyboardInterrupt
        return result

    def _log(self, log: LossLog | None, terms: dict[str, torch.Tensor], seconds: float, bar: Any) -> None:
        values = {k: float(v) for k, v in terms.items()}
        values["sec_per_step"] = seconds
        averaged = distributed.mean_over_ranks(self.ctx, values)
        values = {k: averaged[k] for k in values}  # keep the objective's order of terms
        if log is None:
            return
        row = {"step": self.step, "epoch": self.epoch, "lr_G": self.opt_g.param_groups[0]["lr"],
               "lr_D": self.opt_d.param_groups[0]["lr"], **values}
        log.write(row)
        bar.set_postfix({k: f"{v:.3g}" for k, v in values.items() if k != "sec_per_step"}, refresh=False)

    def close(self) -> None:
        """Drop the DDP wrappers (the objective's and ours) so they can be collected before shutdown."""
        release = getattr(self.objective, "release", None)
        if release is not None:
            release()
        self.holders.clear()


def train(config: TrainConfig, clock: Callable[[], float] = time.monotonic) -> TrainResult:
    """Join the process group (under torchrun), build, train, and shut down cleanly, also on errors.

    Shutdown order matters for gloo: the DDP wrappers are deleted and garbage-collected before
    the process group is destroyed, otherwise the process may abort at exit.
    """
    ctx = distributed.setup(config.device)
    holders: list = []
    trainer = None
    try:
        trainer = Trainer(config, ctx, clock)
        holders = trainer.holders
        return trainer.run()
    finally:
        if trainer is not None:
            trainer.close()
        del trainer
        distributed.shutdown(ctx, holders)
