"""What only a CUDA device can show, through the suite's own code paths (run by scripts/gpu_checks.sh).

* training a tiny GroupDNet for a few steps in float32 and with ``--amp`` (float16 autocast + GradScaler);
* SyncBatchNorm in an NCCL process group, converted by the trainer and trained for one step;
* the sharded evaluation's joining collectives (``smisbench.metrics.sharding``) over NCCL, giving the
  numbers of a plain evaluation;
* the exact inference copy (``smisbench.models.inference``) on GPU kernels, within the protocol's
  ``fast_path_tolerance`` of the model as defined.

One GPU cannot hold an NCCL group of two ranks (NCCL refuses two ranks on one device), so the NCCL
checks use a group of one process: they prove that the NCCL code paths run on CUDA tensors (object
gathers, the CPU-tensor all-reduce of confusion matrices, SyncBatchNorm's modules and its GPU-only
input check), not that statistics are averaged across GPUs (PyTorch's SyncBatchNorm normalises as
plain BatchNorm in a world of one). Every ``cuda`` test skips with the reason where CUDA is absent.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import math
import socket

import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import default_collate

import smisbench.data.synthetic  # noqa: F401  (registers the synthetic dataset)
from smisbench.data.registry import build_dataset
from smisbench.metrics import fast_path, sharding
from smisbench.metrics.base import Metric
from smisbench.metrics.evaluate import evaluate
from smisbench.metrics.protocol import EvalProtocol
from smisbench.metrics.registry import register_metric
from smisbench.models.checkpoints import load_bundle
from smisbench.models.registry import build_model
from smisbench.registry import METRICS
from smisbench.runtime import pick_device
from smisbench.segmenters.confusion import ConfusionMatrix
from smisbench.training import distributed
from smisbench.training.trainer import Trainer
from test_models_inference import lively_weights
from test_training_run import read_losses, tiny_overrides, tiny_run

NO_CUDA = ("CUDA is not available here (torch.cuda.is_available() is False); these checks need a GPU: "
           "run scripts/gpu_checks.sh on a CUDA machine (docs/gpu.md)")


@pytest.fixture
def cuda() -> torch.device:
    """The first GPU; skips (with the reason) without one."""
    if not torch.cuda.is_available():
        pytest.skip(NO_CUDA)
    device = torch.device("cuda", 0)
    torch.cuda.set_device(device)
    return device


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def _nccl_world_of_one(device: torch.device, monkeypatch):
    """An NCCL group of one process (env:// rendezvous on MASTER_ADDR/PORT, rank 0 of 1), destroyed at the end."""
    if dist.is_initialized():
        pytest.skip("a process group is already initialised in this process")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    monkeypatch.delenv("WORLD_SIZE", raising=False)  # the suite's own setup() would then make no group
    dist.init_process_group("nccl", rank=0, world_size=1, timeout=datetime.timedelta(seconds=120), device_id=device)
    try:
        yield
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


@pytest.fixture
def nccl_group(cuda, monkeypatch):
    """The trainer's context in an NCCL group of one process."""
    if not dist.is_available() or not dist.is_nccl_available():
        pytest.skip("this PyTorch build has no NCCL backend")
    with _nccl_world_of_one(cuda, monkeypatch):
        yield distributed.DistContext(cuda, rank=0, world_size=1, local_rank=0, backend="nccl")


def _not_finite(rows: list[dict[str, float]]) -> list[str]:
    return [f"step {int(r['step'])} {k}={v}" for r in rows for k, v in r.items() if not math.isfinite(v)]


# ----------------------------------------------------------------------------- CPU: the conversion rule
def test_an_nccl_context_converts_batchnorm_even_with_one_process():
    """The conversion follows the backend, as the trainer's ``sync_batchnorm`` record does (was: only for 2+ ranks)."""
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, affine=False))
    one_nccl = distributed.DistContext(torch.device("cpu"), backend="nccl")
    assert isinstance(distributed.use_sync_batchnorm(one_nccl, net)[1], nn.SyncBatchNorm)
    for ctx, wanted in ((distributed.DistContext(torch.device("cpu")), True),
                        (distributed.DistContext(torch.device("cpu"), 0, 2, 0, "gloo"), True), (one_nccl, False)):
        kept = distributed.use_sync_batchnorm(ctx, nn.Sequential(nn.BatchNorm2d(4)), wanted)
        assert type(kept[0]) is nn.BatchNorm2d


# ----------------------------------------------------------------------------- (a) training, float32 and AMP
@pytest.mark.cuda
def test_pick_device_takes_the_gpu(cuda, monkeypatch):
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert pick_device("auto").type == "cuda" and pick_device("cuda") == torch.device("cuda")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert pick_device("cuda") == torch.device("cuda", 0)
    assert distributed.pick_device("cuda") == torch.device("cuda", 0)


@pytest.mark.cuda
@pytest.mark.parametrize("amp", [False, True], ids=["float32", "amp-float16"])
def test_tiny_training_on_cuda_in_float32_and_with_amp(cuda, tmp_path, amp):
    config = tiny_run(tmp_path, steps=3, batch_size=2, device="cuda", amp=amp, samples=2, checkpoint_every=100,
                      dataset_options={"length": 8})
    trainer = Trainer(config)
    try:
        assert trainer.ctx.device.type == "cuda" and trainer.ctx.backend is None
        assert next(trainer.model.parameters()).is_cuda and trainer.channels_last  # auto: on for CUDA
        assert trainer.scaler_g.is_enabled() is amp and trainer.scaler_d.is_enabled() is amp
        result = trainer.run()
        scale = trainer.scaler_g.get_scale() if amp else None
    finally:
        trainer.close()
    assert result.step == 3 and not result.stopped_early and result.model_bundle is not None
    rows = read_losses(result.losses_csv)
    assert len(rows) == 3 and {"G_GAN", "KLD", "D_Fake", "D_real"} <= set(rows[0])
    assert not _not_finite(rows), _not_finite(rows)
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["amp"] is amp and run["environment"]["device"].startswith("cuda")
    assert run["precision"]["compute"] == ("float16 autocast + GradScaler" if amp else "float32")
    assert set(run["precision"]) == {"compute", "cudnn_allow_tf32", "matmul_allow_tf32"}
    if amp:
        assert math.isfinite(scale) and scale > 0
    model, info = load_bundle(result.model_bundle)
    assert info["precision"]["compute"] == run["precision"]["compute"]
    assert all(torch.isfinite(p).all() for p in model.parameters())


# ----------------------------------------------------------------------------- (b) SyncBatchNorm under NCCL
@pytest.mark.cuda
def test_trainer_converts_to_syncbatchnorm_and_trains_a_step_under_nccl(nccl_group, tmp_path):
    config = tiny_run(tmp_path, steps=1, batch_size=2, device="cuda", samples=2, checkpoint_every=100,
                      dataset_options={"length": 4})
    trainer = Trainer(config, nccl_group)
    try:
        synced = [m for m in trainer.model.modules() if isinstance(m, nn.SyncBatchNorm)]
        plain = [m for m in trainer.model.modules() if type(m) in (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)]
        assert synced and not plain, f"{len(synced)} SyncBatchNorm, {len(plain)} BatchNorm left"
        assert trainer.sync_bn and trainer.sync_mode == "none"
        before = [m.running_mean.clone() for m in synced]
        result = trainer.run()
    finally:
        trainer.close()
    assert result.step == 1
    assert not _not_finite(read_losses(result.losses_csv))
    assert any(not torch.equal(b, m.running_mean) for b, m in zip(before, synced))  # the step normalised with them
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["distributed"] == {"world_size": 1, "backend": "nccl", "gradient_sync": "none", "sync_batchnorm": True}
    distributed.shutdown(nccl_group, [])  # a no-op for one process: the fixture destroys the group
    assert dist.is_initialized()


# ----------------------------------------------------------------------------- (c) sharded evaluation over NCCL
class _Probe(Metric):
    """Joins its shares with the suite's helpers: per-item values by ``merge_indexed`` (an object gather),
    a confusion matrix by ``ConfusionMatrix.all_reduce`` (``all_reduce_sum_`` of a CPU tensor)."""

    name = "cuda_probe"
    produces = ("probe_mean", "probe_items", "probe_accuracy", "probe_pixels")
    uses_generated = True
    sharded = True

    def __init__(self, ctx):
        self.per_item: dict[int, float] = {}
        self.confusion = ConfusionMatrix(ctx.dataset_config.label_nc, None)

    def items_needed(self, ctx):
        return None

    def on_batch(self, ctx, batch, start, generated):
        for i in range(generated.shape[0]):
            self.per_item[start + i] = float(generated[i].double().mean())
        classes = ctx.dataset_config.label_nc
        predicted = ((generated[:, 0].float() + 1) * classes / 2).floor().clamp(0, classes - 1).long()
        self.confusion.update(predicted.cpu(), batch["label"])

    def finish(self, ctx):
        merged = sharding.merge_indexed(self.per_item)
        self.confusion.all_reduce()
        total = self.confusion.total
        return {"probe_mean": sum(merged.values()) / len(merged), "probe_items": float(len(merged)),
                "probe_accuracy": float(torch.diagonal(self.confusion.matrix).sum()) / total,
                "probe_pixels": float(total)}


@pytest.fixture
def probe_metric():
    register_metric(_Probe.name, _Probe, replace=True)
    try:
        yield _Probe.name
    finally:
        METRICS.unregister(_Probe.name)


def _random_lpips_on(device: torch.device):
    """Random-weight LPIPS (no files needed), on ``device``."""
    from conftest_weights import random_lpips

    metric = random_lpips()
    metric.model.to(device)
    return metric


def _tiny_evaluation(device: torch.device, metrics: list[str], networks: dict) -> dict[str, float]:
    torch.manual_seed(0)
    model = build_model("groupdnet", "synthetic", **tiny_overrides())
    dataset = build_dataset("synthetic", None, "test", length=5)  # 3 batches of 2, the last one short
    protocol = EvalProtocol(batch_size=2, n=3, m=2, diversity_maps=3, seed=0)
    result = evaluate(model, dataset, dataset.config, metrics, protocol, device, networks=networks, progress=False)
    assert result.provenance["generator_path"] == fast_path.INFERENCE_COPY, result.provenance["fast_path"]
    return result.values


@pytest.mark.cuda
@pytest.mark.parametrize("diversity", [False, True], ids=["probe-params", "mcsd-lpips"])
def test_sharded_evaluation_over_nccl_gives_the_plain_numbers(cuda, monkeypatch, probe_metric, diversity):
    """The same tiny evaluation, plainly and inside an NCCL group (``sharding.joined``, as ``smisbench run``
    under torchrun): every joining collective then runs through NCCL. Compared to 1e-6 relative, not bit
    for bit as the gloo test does, since two runs of a CUDA kernel may pick different algorithms."""
    if not dist.is_available() or not dist.is_nccl_available():
        pytest.skip("this PyTorch build has no NCCL backend")
    metrics, networks = [probe_metric, "params"], {}
    if diversity:
        pytest.importorskip("lpips", reason="mcsd_mocd/lpips_diversity need the lpips package: carry its wheel "
                                            "(docs/gpu.md)")
        metrics, networks = ["mcsd_mocd", "lpips_diversity", "params"], {"lpips": _random_lpips_on(cuda)}
    plain = _tiny_evaluation(cuda, metrics, networks)
    if not diversity:
        assert plain["probe_items"] == 5 and plain["probe_pixels"] == 5 * 64 * 64
    with _nccl_world_of_one(cuda, monkeypatch):
        assert dist.get_backend() == "nccl"
        with sharding.joined("cuda") as world:
            assert world.is_main and not world.distributed
            assert sharding.gather_objects({"rank": 0}) == [{"rank": 0}]
            assert sharding.broadcast_object("from0") == "from0"
            summed = sharding.all_reduce_sum_(torch.arange(4, dtype=torch.int64))
            assert summed.device.type == "cpu" and summed.tolist() == [0, 1, 2, 3]
            sharded = _tiny_evaluation(cuda, metrics, networks)
    assert set(sharded) == set(plain)
    for key, value in plain.items():
        assert math.isfinite(value), key
        assert sharded[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key


# ----------------------------------------------------------------------------- (d) the inference copy on CUDA
@contextlib.contextmanager
def _cudnn_tf32(allow: bool | None):
    """None: PyTorch's defaults (what an evaluation runs with); True/False: forced for the block."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    if allow is not None:
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = allow
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _out_of_saturation(model, inputs) -> None:
    """Rescale ``conv_img`` so tanh's input has mean 0 and std 0.5 per channel: the images then carry every
    difference of the network before them, instead of tanh's +-1 where any two paths agree exactly."""
    seen: dict[str, torch.Tensor] = {}
    conv = model.netG.conv_img
    handle = conv.register_forward_hook(lambda module, args, out: seen.update(out=out.double()))
    try:
        with torch.inference_mode():
            model.generate(*inputs(model))
    finally:
        handle.remove()
    mean, std = seen["out"].mean((0, 2, 3)), seen["out"].std((0, 2, 3))
    scale = (0.5 / std.clamp(min=1e-12)).to(conv.weight.dtype)
    with torch.no_grad():
        conv.weight.mul_(scale[:, None, None, None])
        conv.bias.copy_((conv.bias - mean.to(conv.bias.dtype)) * scale)


@pytest.mark.cuda
@pytest.mark.parametrize("tf32", [False, None], ids=["tf32-off", "torch-defaults"])
@pytest.mark.parametrize("name", ["groupdnet", "vspade"])
def test_inference_copy_on_cuda_is_within_the_fast_path_tolerance(cuda, name, tf32):
    """The evaluation's own check (``fast_path.choose``) on CUDA: the copy is taken, within the tolerance.

    ``torch-defaults`` is what ``smisbench run`` gets (cuDNN convolutions in TF32 unless switched off);
    if it fails where ``tf32-off`` passes, TF32 rounding, not the copy, is above the tolerance.
    """
    tolerance = float(EvalProtocol().fast_path_tolerance)
    model = build_model(name, "synthetic").eval()
    lively_weights(model)  # activations O(1) through the network, so a difference would show
    model.to(cuda)
    dataset = build_dataset("synthetic", None, "test", length=4)
    labels = default_collate([dataset[i] for i in range(4)])["label"]

    def inputs(net):
        return net.semantics(labels), net.sample_z(4, torch.Generator().manual_seed(1), cuda)

    with _cudnn_tf32(tf32):
        state = (f"cudnn.allow_tf32={torch.backends.cudnn.allow_tf32}, "
                 f"matmul.allow_tf32={torch.backends.cuda.matmul.allow_tf32}")
        _out_of_saturation(model, inputs)
        choice = fast_path.choose(model, True, tolerance, inputs, 4)
        with torch.inference_mode():
            expected = model.generate(*inputs(model))
    saturated = float((expected.abs() > 0.99).float().mean())
    assert saturated < 0.1 and float(expected.std()) > 0.1, saturated  # the comparison means something
    assert choice.path == fast_path.INFERENCE_COPY, f"{choice.reason} ({state})"
    assert choice.max_abs_diff is not None and choice.max_abs_diff <= tolerance, (choice.max_abs_diff, state)
    assert next(choice.model.parameters()).is_cuda
    assert choice.first_output is not None and choice.first_output.is_cuda
