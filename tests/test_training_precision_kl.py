"""Training arithmetic as the official code: float32 unless ``--amp``, and a KL term independent of the batch."""

from __future__ import annotations

import json

import pytest
import torch

import smisbench.data.synthetic  # noqa: F401  (registers the synthetic dataset)
from smisbench.cli import build_parser
from smisbench.data.registry import build_dataset
from smisbench.errors import SmisbenchError
from smisbench.models.checkpoints import load_bundle
from smisbench.models.registry import build_discriminator, build_model
from smisbench.training import losses
from smisbench.training.config import OFFICIAL_SCHEDULES, TrainConfig
from smisbench.training.objective import SMISObjective
from smisbench.training.trainer import Trainer, train
from test_training_run import tiny_overrides, tiny_run


def parsed(*argv: str) -> TrainConfig:
    from smisbench.training.cli import config_from_args

    return config_from_args(build_parser().parse_args(["train", "groupdnet", *argv]))


# ----- float32 by default, --amp opt-in -----
def test_default_config_trains_in_float32():
    assert TrainConfig(model="groupdnet").amp is False
    assert parsed().amp is False
    assert parsed().kl_reference_batch is None


def test_amp_flag_parses_and_reaches_the_trainer_config():
    config = parsed("--amp", "--kl-reference-batch", "3", "--device", "cpu")
    assert config.amp is True and config.kl_reference_batch == 3
    config.validate()
    with pytest.raises(SmisbenchError, match="--amp needs CUDA"):  # the trainer sees it; CPU has no float16 AMP
        Trainer(tiny_run("unused", steps=1, amp=True, dataset_options={"length": 8}))


def test_amp_must_be_a_bool_and_kl_reference_is_not_a_loss_option():
    with pytest.raises(SmisbenchError, match="amp must be true or false"):
        TrainConfig(model="groupdnet", amp="on").validate()
    with pytest.raises(SmisbenchError, match="--kl-reference-batch"):
        TrainConfig(model="groupdnet", loss_options={"kl_reference_batch": 4}).validate()
    with pytest.raises(SmisbenchError, match="must be positive"):
        TrainConfig(model="groupdnet", kl_reference_batch=0).validate()


def test_float32_run_records_its_precision_and_kl_weighting(tmp_path):
    result = train(tiny_run(tmp_path, steps=1, batch_size=2, dataset_options={"length": 8}, checkpoint_every=100))
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["amp"] is False and run["config"]["amp"] is False
    assert run["precision"] == {"compute": "float32"}
    assert run["kl"]["reference_batch"] == OFFICIAL_SCHEDULES["synthetic"].batch_size
    assert run["kl"]["batch_size_per_process"] == 2
    _, info = load_bundle(result.model_bundle)
    assert info["amp"] is False and info["precision"]["compute"] == "float32" and info["kl"]["reference_batch"] == 8


def test_trainer_hands_the_kl_reference_batch_to_the_objective(tmp_path):
    trainer = Trainer(tiny_run(tmp_path, steps=1, dataset_options={"length": 8}))
    assert trainer.objective.kl_reference_batch == OFFICIAL_SCHEDULES["synthetic"].batch_size == 8
    assert not trainer.amp and not trainer.scaler_g.is_enabled()
    trainer.close()
    trainer = Trainer(tiny_run(tmp_path / "b", steps=1, kl_reference_batch=32, dataset_options={"length": 8}))
    assert trainer.objective.kl_reference_batch == 32
    trainer.close()
    assert TrainConfig(model="groupdnet", dataset="deepfashion").resolved_kl_reference_batch() == 8
    assert TrainConfig(model="groupdnet", dataset="cityscapes").resolved_kl_reference_batch() == 4


# ----- the KL term does not depend on the batch size -----
def test_kl_with_a_reference_batch_is_per_image_times_the_reference():
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(4, 6, generator=g), torch.randn(4, 6, generator=g) * 0.3
    plain = losses.kl_divergence(mu, logvar)
    assert torch.isclose(losses.kl_divergence(mu, logvar, reference_batch=4), plain)  # official at its batch
    halves = [losses.kl_divergence(mu[i:i + 2], logvar[i:i + 2], reference_batch=8) for i in (0, 2)]
    whole = losses.kl_divergence(mu, logvar, reference_batch=8)
    assert torch.isclose(whole, (halves[0] + halves[1]) / 2)
    assert torch.isclose(whole, 2 * plain)


def test_kl_loss_of_batch_2_and_batch_4_agrees_per_image():
    """The same 4 items as one batch of 4 or two batches of 2: the same KL term on average (eval: no SN update)."""
    torch.manual_seed(0)
    model = build_model("groupdnet", "synthetic", **tiny_overrides()).eval()
    objective = SMISObjective(build_discriminator("groupdnet", "synthetic", **tiny_overrides()).eval(),
                              kl_reference_batch=8)
    data = build_dataset("synthetic", split="val", length=4)
    batch = torch.utils.data.default_collate([data[i] for i in range(4)])
    semantics = model.semantics(batch["label"])

    def kld(rows: slice) -> float:
        part = {"semantics": semantics[rows], "image": batch["image"][rows]}
        return float(objective.generator_loss(part, model, generator=torch.Generator().manual_seed(1)).terms["KLD"])

    four, pairs = kld(slice(0, 4)), (kld(slice(0, 2)), kld(slice(2, 4)))
    assert four == pytest.approx(sum(pairs) / 2, rel=1e-5)
    objective.kl_reference_batch = None  # the literal per-batch sum grows with the batch
    assert kld(slice(0, 4)) == pytest.approx(four * 4 / 8, rel=1e-5)
