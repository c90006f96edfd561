"""Everything a training run is configured by, with the official per-dataset defaults."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from smisbench.errors import SmisbenchError


@dataclass(frozen=True)
class Schedule:
    """Official epochs (constant + linear decay) and per-GPU batch size of a dataset."""

    epochs: int
    decay_epochs: int
    batch_size: int


# groupdnet.md: DeepFashion 60 + 40 epochs, batch 8 per GPU; Cityscapes/ADE20K 100 + 100, batch 4 per GPU.
OFFICIAL_SCHEDULES = {
    "deepfashion": Schedule(60, 40, 8),
    "cityscapes": Schedule(100, 100, 4),
    "ade20k": Schedule(100, 100, 4),
    "synthetic": Schedule(1, 1, 8),  # ours: 512 steps of batch 8, minutes on a few CPU cores for tiny models
}
DEFAULT_SCHEDULE = Schedule(100, 100, 4)


@dataclass
class TrainConfig:
    """Options of ``smisbench train`` (field names are the CLI's, with dashes as underscores)."""

    model: str
    dataset: str = "synthetic"
    root: str | None = None
    out: str = "runs/train"
    dataset_options: dict[str, Any] = field(default_factory=dict)
    model_overrides: dict[str, Any] = field(default_factory=dict)
    loss_options: dict[str, Any] = field(default_factory=dict)
    batch_size: int | None = None  # per process; None: the dataset's official value
    epochs: int | None = None  # constant-rate epochs (official niter)
    decay_epochs: int | None = None  # linear-decay epochs (official niter_decay)
    steps: int | None = None  # total steps instead of epochs
    decay_steps: int | None = None  # with --steps: decay over the last N steps (default: half)
    lr_g: float | None = None  # None: the objective's value (GroupDNet: 1e-4)
    lr_d: float | None = None  # (GroupDNet: 4e-4)
    beta1: float | None = None
    beta2: float | None = None
    vgg: str = "auto"  # auto | vgg19 | vgg16 | none | path to a VGG19 file
    vgg_normalization: str = "none"  # the official loss feeds [-1, 1] images unnormalised
    amp: str = "auto"  # auto (CUDA only) | on | off
    channels_last: str = "auto"  # auto (CUDA only) | on | off
    device: str = "auto"
    seed: int = 0
    workers: int = 0
    threads: int | None = None  # torch CPU threads per process (None: torch's default)
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    log_every: int = 10
    samples: int = 8  # items in each sample grid
    resume: str | bool = False  # True/"latest": out/checkpoints/latest.pt; or a checkpoint path
    stop_after: int | None = None  # stop (with a checkpoint) after this many steps in this session
    tensorboard: bool = False
    progress: bool = True

    def schedule(self) -> Schedule:
        return OFFICIAL_SCHEDULES.get(self.dataset, DEFAULT_SCHEDULE)

    def validate(self) -> None:
        for name in ("batch_size", "epochs", "steps", "checkpoint_every", "log_every"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise SmisbenchError(f"--{name.replace('_', '-')} must be positive, got {value}", "pass a value >= 1")
        for name in ("decay_epochs", "decay_steps", "stop_after", "workers"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise SmisbenchError(f"--{name.replace('_', '-')} must not be negative, got {value}", "pass 0 or more")
        if self.steps is not None and self.epochs is not None:
            raise SmisbenchError("--steps and --epochs were both given", "give one of them")
        if self.steps is not None and self.decay_steps is not None and self.decay_steps > self.steps:
            raise SmisbenchError("--decay-steps exceeds --steps", "decay over at most the whole run")
        for name, allowed in (("amp", ("auto", "on", "off")), ("channels_last", ("auto", "on", "off"))):
            if getattr(self, name) not in allowed:
                raise SmisbenchError(f"--{name.replace('_', '-')} {getattr(self, name)!r} is not one of {allowed}",
                                     f"use one of: {', '.join(allowed)}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, default=str)
