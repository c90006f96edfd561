"""``smisbench train MODEL``: train a registered model on a dataset, on one process or under torchrun."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from smisbench.training.config import TrainConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model (GroupDNet objective by default); multi-GPU/multi-node with torchrun",
        description="Train MODEL on a dataset. Under torchrun (e.g. `torchrun --nproc_per_node 4 -m smisbench "
                    "train groupdnet --dataset deepfashion --root ...`) every process trains on its shard: NCCL on "
                    "CUDA with SyncBatchNorm, gloo on CPU.",
    )
    p.add_argument("model", help="registered model name (see `smisbench models`)")
    p.add_argument("--dataset", default="synthetic", help="synthetic (default), deepfashion, cityscapes, ade20k, custom")
    p.add_argument("--root", help="dataset folder (not needed for synthetic)")
    p.add_argument("--dataset-option", action="append", metavar="KEY=VALUE", help="reader option, e.g. length=512")
    p.add_argument("--model-option", action="append", metavar="KEY=VALUE", help="model config override")
    p.add_argument("--loss-option", action="append", metavar="KEY=VALUE", help="objective option, e.g. lambda_feat=10")
    p.add_argument("--out", default=None, help="run folder (default runs/MODEL-DATASET)")
    p.add_argument("--batch-size", type=int, help="per process (default: the dataset's official value)")
    p.add_argument("--epochs", type=int, help="epochs at constant learning rate (official niter)")
    p.add_argument("--decay-epochs", type=int, help="epochs of linear decay to 0 (official niter_decay)")
    p.add_argument("--steps", type=int, help="total steps instead of epochs")
    p.add_argument("--decay-steps", type=int, help="with --steps: decay over the last N steps (default half)")
    p.add_argument("--lr-g", type=float)
    p.add_argument("--lr-d", type=float)
    p.add_argument("--beta1", type=float)
    p.add_argument("--beta2", type=float)
    p.add_argument("--vgg", default="auto",
                   help="perceptual-loss network: auto (local VGG19, else the metrics' VGG16), vgg19, vgg16, none, "
                        "or a path to torchvision's vgg19-dcbb9e9a.pth")
    p.add_argument("--vgg-normalization", default="none", choices=("none", "imagenet"),
                   help="input normalisation of the VGG (the official loss uses none)")
    p.add_argument("--amp", action="store_true",
                   help="float16 autocast with gradient scaling (CUDA only); default float32, as the official code")
    p.add_argument("--kl-reference-batch", type=int,
                   help="the KL term is the per-image KL times this, whatever --batch-size is (default: the "
                        "dataset's official per-GPU batch, 8 for DeepFashion, 4 for Cityscapes/ADE20K)")
    p.add_argument("--channels-last", default="auto", choices=("auto", "on", "off"))
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=0, help="data-loading worker processes")
    p.add_argument("--threads", type=int, help="torch CPU threads per process")
    p.add_argument("--checkpoint-every", type=int, default=500, help="steps between checkpoints and sample grids")
    p.add_argument("--checkpoint-every-s", type=float, default=120.0,
                   help="also save a resumable checkpoints/latest.pt at least this often, in seconds of wall time "
                        "(default 120; 0: off), so an interrupted run resumes near where it stopped")
    p.add_argument("--keep-checkpoints", type=int, default=2)
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--samples", type=int, default=8, help="items per sample grid")
    p.add_argument("--resume", nargs="?", const=True, default=False,
                   help="continue from OUT/checkpoints/latest.pt, or from the given checkpoint")
    p.add_argument("--stop-after", type=int, help="stop after this many steps in this session (with a checkpoint)")
    p.add_argument("--tensorboard", action="store_true", help="also write TensorBoard events (needs tensorboard)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_train)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The :class:`TrainConfig` the parsed ``smisbench train`` arguments describe."""
    from smisbench.data.cli import parse_options
    from smisbench.training.config import TrainConfig

    return TrainConfig(
        model=args.model, dataset=args.dataset, root=args.root,
        out=args.out or f"runs/{args.model}-{args.dataset}",
        dataset_options=parse_options(args.dataset_option), model_overrides=parse_options(args.model_option),
        loss_options=parse_options(args.loss_option), batch_size=args.batch_size, epochs=args.epochs,
        decay_epochs=args.decay_epochs, steps=args.steps, decay_steps=args.decay_steps, lr_g=args.lr_g,
        lr_d=args.lr_d, beta1=args.beta1, beta2=args.beta2, vgg=args.vgg, vgg_normalization=args.vgg_normalization,
        kl_reference_batch=args.kl_reference_batch, amp=args.amp, channels_last=args.channels_last,
        device=args.device, seed=args.seed, workers=args.workers, threads=args.threads,
        checkpoint_every=args.checkpoint_every, checkpoint_every_s=args.checkpoint_every_s,
        keep_checkpoints=args.keep_checkpoints,
        log_every=args.log_every, samples=args.samples, resume=args.resume, stop_after=args.stop_after,
        tensorboard=args.tensorboard, progress=not args.no_progress,
    )


def _train(args) -> int:
    from smisbench.training.trainer import train

    result = train(config_from_args(args))
    if result.model_bundle is not None or result.checkpoint is not None:
        state = "finished" if not result.stopped_early else "stopped (resume with --resume)"
        print(f"{state} at step {result.step}/{result.total_steps} ({result.steps_per_s:.3g} steps/s); "
              f"run folder {result.out}")
    return 0
