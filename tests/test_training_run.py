"""CPU training of a tiny GroupDNet on the synthetic set: losses, files, resume bit for bit."""

from __future__ import annotations

import csv
import json

import pytest
import torch

import smisbench.data.synthetic  # noqa: F401  (registers the synthetic dataset)
from smisbench.data.registry import build_dataset
from smisbench.errors import SmisbenchError
from smisbench.models.checkpoints import load_bundle
from smisbench.models.groupdnet import tiny_config
from smisbench.models.registry import build_model
from smisbench.training import checkpointing
from smisbench.training.config import TrainConfig
from smisbench.training.trainer import Trainer, seed_everything, train


def tiny_overrides() -> dict:
    """A GroupDNet with 4 channels per class (about 40 k parameters): the structure, at test cost."""
    config = tiny_config("synthetic", per_class=4)
    return dict(fc_out=config.fc_out, blocks=config.blocks, encoder_widths=config.encoder_widths, norm_hidden=6, ndf=8)


def tiny_run(out, **changes) -> TrainConfig:
    options = dict(model="groupdnet", dataset="synthetic", out=str(out), vgg="none", batch_size=4, log_every=1,
                   samples=3, threads=1, progress=False, dataset_options={"length": 64},
                   model_overrides=tiny_overrides())
    options.update(changes)
    return TrainConfig(**options)


def read_losses(path) -> list[dict[str, float]]:
    with open(path, newline="") as handle:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]


@torch.no_grad()
def reconstruction_error(model) -> float:
    """L1 between real validation images and G(encoded real): falls when G (+E) learn the data."""
    data = build_dataset("synthetic", split="val", length=16)
    batch = torch.utils.data.default_collate([data[i] for i in range(16)])
    semantics = model.semantics(batch["label"])
    mu, _ = model.encode(batch["image"], semantics)
    return float((model.generate(semantics, mu) - batch["image"]).abs().mean())


def test_tiny_groupdnet_trains_on_cpu_and_its_losses_fall(tmp_path):
    steps = 24  # TTUR kept (D 4x G) at twice the paper's rates, so 24 steps show learning
    result = train(tiny_run(tmp_path, steps=steps, decay_steps=0, checkpoint_every=12, lr_g=2e-4, lr_d=8e-4))
    assert result.step == steps and not result.stopped_early
    rows = read_losses(result.losses_csv)
    assert [int(r["step"]) for r in rows] == list(range(1, steps + 1))
    assert {"G_GAN", "G_GAN_Feat", "KLD", "D_Fake", "D_real"} <= set(rows[0])
    d_loss = [r["D_Fake"] + r["D_real"] for r in rows]
    first, last = sum(d_loss[:6]) / 6, sum(d_loss[-6:]) / 6
    assert last < first - 0.1, f"D loss did not fall: {first:.3f} -> {last:.3f}"

    seed_everything(0)
    untrained = build_model("groupdnet", "synthetic", **tiny_overrides())
    trained, info = load_bundle(result.model_bundle)
    assert info["trained_steps"] == steps
    for model in (untrained, trained):
        model.train()
    before, after = reconstruction_error(untrained), reconstruction_error(trained)
    assert after < before - 0.015, f"reconstruction did not improve: {before:.4f} -> {after:.4f}"

    run = json.loads((tmp_path / "run.json").read_text())
    assert run["perceptual"]["network"] == "none" and "disabled" in run["perceptual"]["substitution"]
    assert run["optimizer"] == {"kind": "Adam", "lr_g": 2e-4, "lr_d": 8e-4, "betas": [0.0, 0.9]}
    assert run["finished"]["step"] == steps and run["distributed"]["world_size"] == 1
    assert run["amp"] is False and run["environment"]["device"] == "cpu"
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "latest.pt", "step_00000012.pt", "step_00000024.pt"]
    assert (tmp_path / "samples" / "step_00000012.png").is_file()
    assert (tmp_path / "samples" / "latest.png").is_file()


def checkpoint_tensors(path) -> dict[str, torch.Tensor]:
    state = checkpointing.load(path)
    flat = {}
    for part in ("model", "discriminator"):
        flat.update({f"{part}.{k}": v for k, v in state[part].items()})
    for part in ("optimizer_G", "optimizer_D"):
        for index, entry in state[part]["state"].items():
            flat.update({f"{part}.{index}.{k}": v for k, v in entry.items() if isinstance(v, torch.Tensor)})
    return flat


def test_resume_equals_an_uninterrupted_run(tmp_path):
    """Stop after 3 of 7 steps (mid-epoch: 64 items / 4 = 16 steps per epoch), resume, compare bit for bit."""
    whole = train(tiny_run(tmp_path / "whole", steps=7, decay_steps=4, checkpoint_every=100))
    stopped = train(tiny_run(tmp_path / "parts", steps=7, decay_steps=4, checkpoint_every=100, stop_after=3))
    assert stopped.stopped_early and stopped.step == 3 and stopped.model_bundle is None
    resumed = train(tiny_run(tmp_path / "parts", steps=7, decay_steps=4, checkpoint_every=100, resume=True))
    assert resumed.step == 7 and not resumed.stopped_early

    a, b = checkpoint_tensors(whole.checkpoint), checkpoint_tensors(resumed.checkpoint)
    assert a.keys() == b.keys() and len(a) > 50
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"
    rows_a, rows_b = read_losses(whole.losses_csv), read_losses(resumed.losses_csv)
    drop = ("sec_per_step",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in rows_a] == \
           [{k: v for k, v in r.items() if k not in drop} for r in rows_b]
    assert json.loads((tmp_path / "parts" / "run.json").read_text())["resumed_from"].endswith("latest.pt")


def test_resume_refuses_a_different_run_length(tmp_path):
    train(tiny_run(tmp_path, steps=2, checkpoint_every=100))
    with pytest.raises(SmisbenchError, match="belongs to a run of 2 steps"):
        Trainer(tiny_run(tmp_path, steps=5, resume=True))
    with pytest.raises(SmisbenchError, match="no checkpoint"):
        Trainer(tiny_run(tmp_path / "empty", steps=5, resume=True))


def test_model_and_data_sizes_must_agree(tmp_path):
    with pytest.raises(SmisbenchError, match="expects 6 classes at 64x64"):
        Trainer(tiny_run(tmp_path, steps=1, dataset_options={"length": 8, "size": 32}))


def test_default_optimizer_is_the_papers(tmp_path):
    trainer = Trainer(tiny_run(tmp_path, steps=1, dataset_options={"length": 8}))
    assert trainer.hyper == {"lr_g": 1e-4, "lr_d": 4e-4, "betas": (0.0, 0.9)}
    assert trainer.opt_g.defaults["betas"] == (0.0, 0.9) and trainer.opt_d.defaults["lr"] == 4e-4
    trainer.close()


def test_config_validation():
    with pytest.raises(SmisbenchError, match="both given"):
        TrainConfig(model="groupdnet", steps=3, epochs=1).validate()
    with pytest.raises(SmisbenchError, match="must be positive"):
        TrainConfig(model="groupdnet", batch_size=0).validate()
    with pytest.raises(SmisbenchError, match="--amp needs CUDA"):
        Trainer(tiny_run("unused", steps=1, amp=True, dataset_options={"length": 8}))


def test_a_model_specific_objective_trains_without_vgg(tmp_path, monkeypatch):
    """BicycleGAN brings its own objective (LSGAN, L1, KL, latent regression; Adam 2e-4, betas 0.5/0.999)."""
    monkeypatch.delenv("SMISBENCH_VGG19", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no_torch_home"))
    trainer = Trainer(tiny_run(tmp_path, model="bicyclegan", steps=2, vgg="vgg19", model_overrides={},
                               dataset_options={"length": 8}, batch_size=2))
    assert trainer.vgg_record.network == "none" and "no perceptual term" in trainer.vgg_record.substitution
    assert trainer.hyper == {"lr_g": 2e-4, "lr_d": 2e-4, "betas": (0.5, 0.999)}
    result = trainer.run()
    trainer.close()
    rows = read_losses(result.losses_csv)
    assert {"G_GAN", "G_L1", "z_L1", "D", "D2"} <= set(rows[0]) and len(rows) == 2
