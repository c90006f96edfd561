"""Everything a training run is configured by, with the official per-dataset defaults."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from smisbench.errors import SmisbenchError


@dataclass(frozen=True)
class Schedule:
    """Official epochs (constant + linear decay) and per-GPU batch size of a dataset.

    ``batch_size`` is also the KL term's reference batch: the official code sums the KL over each
    GPU's batch, so its weight relative to the (mean) image losses is that of this many images.
    """

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
    kl_reference_batch: int | None = None  # KL = per-image KL x this; None: the dataset's official per-GPU batch
    amp: bool = False  # float16 autocast + GradScaler (CUDA only); the official code trains in float32
    channels_last: str = "auto"  # auto (CUDA only) | on | off
    device: str = "auto"
    seed: int = 0
    workers: int = 0
    threads: int | None = None  # torch CPU threads per process (None: torch's default)
    checkpoint_every: int = 500
    checkpoint_every_s: float | None = 120.0  # also latest.pt at least this often (wall seconds); None/0: off
    keep_checkpoints: int = 2
    log_every: int = 10
    samples: int = 8  # items in each sample grid
    resume: str | bool = False  # True/"latest": out/checkpoints/latest.pt; or a checkpoint path
    stop_after: int | None = None  # stop (with a checkpoint) after this many steps in this session
    tensorboard: bool = False
    progress: bool = True

    def schedule(self) -> Schedule:
        return OFFICIAL_SCHEDULES.get(self.dataset, DEFAULT_SCHEDULE)

    def resolved_kl_reference_batch(self) -> int:
        """The batch whose summed KL the training KL term equals (per image x this), whatever --batch-size is."""
        return self.kl_reference_batch if self.kl_reference_batch is not None else self.schedule().batch_size

    def validate(self) -> None:
        for name in ("batch_size", "epochs", "steps", "checkpoint_every", "log_every", "kl_reference_batch"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise SmisbenchError(f"--{name.replace('_', '-')} must be positive, got {value}", "pass a value >= 1")
        for name in ("decay_epochs", "decay_steps", "stop_after", "workers"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise SmisbenchError(f"--{name.replace('_', '-')} must not be negative, got {value}", "pass 0 or more")
        every_s = self.checkpoint_every_s
        if every_s is not None and (isinstance(every_s, bool) or not isinstance(every_s, (int, float)) or every_s < 0):
            raise SmisbenchError(f"--checkpoint-every-s must be a number of seconds >= 0, got {every_s!r}",
                                 "pass e.g. 120 (a resumable checkpoint every two minutes), or 0 to turn it off")
        if self.steps is not None and self.epochs is not None:
            raise SmisbenchError("--steps and --epochs were both given", "give one of them")
        if self.steps is not None and self.decay_steps is not None and self.decay_steps > self.steps:
            raise SmisbenchError("--decay-steps exceeds --steps", "decay over at most the whole run")
        if not isinstance(self.amp, bool):
            raise SmisbenchError(f"amp must be true or false, got {self.amp!r}",
                                 "pass --amp for float16 autocast on CUDA; leave it out for float32 (the official)")
        if self.channels_last not in ("auto", "on", "off"):
            raise SmisbenchError(f"--channels-last {self.channels_last!r} is not one of auto, on, off",
                                 "use one of: auto, on, off")
        if "kl_reference_batch" in self.loss_options:
            raise SmisbenchError("kl_reference_batch was given as a loss option",
                                 "pass --kl-reference-batch N (the config field kl_reference_batch) instead")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, default=str)
