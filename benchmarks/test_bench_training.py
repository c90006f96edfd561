"""Training throughput on CPU: steps/s of every tiny synthetic config, and one full-size GroupDNet DeepFashion step.

A step is the trainer's real ``train_step`` (G (+E) update, then D update, GradScaler and
scheduler included) on a fixed batch. ``extra_info`` records steps/s, images/s, batch size,
torch threads and which perceptual network ran. On a CPU shared with other processes, use
``OMP_NUM_THREADS=1``: with more threads than free cores, OpenMP's waiting makes steps many
times slower.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import default_collate

from benchmarks.inputs import CIHP_TO_DEEPFASHION, SAMPLES
from smisbench.models.registry import get_entry, model_names
from smisbench.training.config import TrainConfig
from smisbench.training.trainer import Trainer


def synthetic_models() -> list[str]:
    import smisbench.data.synthetic  # noqa: F401  (registers the dataset the tiny configs are for)

    # trainable ones only: installed plugin models (no discriminator) are scored, not trained here
    return [name for name in model_names()
            if "synthetic" in get_entry(name).configs() and get_entry(name).build_discriminator is not None]


def _perceptual_choice() -> str:
    """The stand-in VGG16 where the metric weights are installed, else no perceptual loss."""
    try:
        from smisbench.weights import require

        require("lpips-vgg-backbone")
        return "auto"
    except Exception:
        return "none"


def _time_steps(benchmark, trainer: Trainer, batch: dict, rounds: int) -> float:
    benchmark.pedantic(trainer.train_step, args=(batch,), rounds=rounds, warmup_rounds=1, iterations=1)
    median = benchmark.stats.stats.median
    size = batch["image"].shape[0]
    benchmark.extra_info.update(
        steps_per_s=1.0 / median, images_per_s=size / median, batch=size, threads=torch.get_num_threads(),
        perceptual=trainer.vgg_record.network, resolution=list(trainer.dataset.config.size),
    )
    return median


@pytest.mark.parametrize("vgg", ["none", "perceptual"])
@pytest.mark.parametrize("name", synthetic_models())
def test_tiny_synthetic_train_steps_per_second(benchmark, tmp_path, name, vgg):
    choice = "none" if vgg == "none" else _perceptual_choice()
    if vgg == "perceptual" and choice == "none":
        pytest.skip("no VGG weights installed (smisbench weights install), the perceptual variant is skipped")
    trainer = Trainer(TrainConfig(model=name, dataset="synthetic", out=str(tmp_path), vgg=choice, steps=1000,
                                  progress=False, dataset_options={"length": 64}))
    batch = default_collate([trainer.dataset[i] for i in range(trainer.batch_size)])
    _time_steps(benchmark, trainer, batch, rounds=5)
    trainer.close()


def _deepfashion_tree(root: Path) -> str:
    """Two 256x256 DeepFashion items: real CIHP people with their labels mapped to the 8 classes when
    ../shared is present, else procedural ones. Returns a note on the source."""
    cihp = SAMPLES / "cihp_pgn" / "datasets" / "CIHP"
    (root / "train").mkdir(parents=True)
    (root / "cihp_train_mask").mkdir()
    if cihp.is_dir():
        for stem in ("0005008", "0012008"):
            image = Image.open(cihp / "images" / f"{stem}.jpg").convert("RGB")
            label = np.array(CIHP_TO_DEEPFASHION, dtype=np.uint8)[np.array(Image.open(cihp / "labels" / f"{stem}.png"))]
            image.save(root / "train" / f"{stem}.jpg")
            Image.fromarray(label).save(root / "cihp_train_mask" / f"{stem}.png")
        return "CIHP sample people, labels mapped to DeepFashion's 8 classes"
    rng = np.random.default_rng(0)
    for stem in ("a", "b"):
        Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(root / "train" / f"{stem}.png")
        label = np.full((256, 256), 7, dtype=np.uint8)
        label[40:220, 80:180] = rng.integers(0, 7)
        Image.fromarray(label).save(root / "cihp_train_mask" / f"{stem}.png")
    return "procedural images and labels"


def test_full_size_groupdnet_deepfashion_train_step(benchmark, tmp_path):
    """The official 109 M-parameter GroupDNet (+ its 5.5 M D) at 256x256, batch 1, as the paper trains it."""
    source = _deepfashion_tree(tmp_path / "deepfashion")
    trainer = Trainer(TrainConfig(model="groupdnet", dataset="deepfashion", root=str(tmp_path / "deepfashion"),
                                  out=str(tmp_path / "run"), batch_size=1, vgg=_perceptual_choice(), steps=1000,
                                  progress=False, samples=1))
    batch = default_collate([trainer.dataset[0]])
    seconds = _time_steps(benchmark, trainer, batch, rounds=2)
    benchmark.extra_info.update(seconds_per_step=seconds, data=source,
                                parameters_G_E=sum(p.numel() for p in trainer.model.parameters()))
    trainer.close()
