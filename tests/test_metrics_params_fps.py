"""Parameter counts (G + E, D apart) and FPS timing records."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest_weights import ToyDeterministicModel, ToyPerClassModel, block_label
from smisbench.errors import SmisbenchError, UnknownNameError
from smisbench.metrics.fps import measure_fps, time_callable
from smisbench.metrics.params import count_parameters, parameter_report


class _WithEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.netG = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2, bias=False))  # 16 + 8
        self.netE = nn.Linear(5, 1)  # 6

    def parts(self):
        return {"G": self.netG, "E": self.netE}


def test_generator_and_encoder_counted_together_discriminator_apart():
    report = parameter_report(_WithEncoder(), nn.Conv2d(1, 2, 3))  # D: 18 + 2
    assert report.generator == 30 and report.parts == {"G": 24, "E": 6}
    assert report.discriminator == 20
    assert report.submodules["G.0"] == 16 and report.submodules["G.1"] == 8 and report.submodules["D.(own)"] == 20


def test_shared_parameters_are_counted_once():
    layer = nn.Linear(4, 4)
    model = nn.Sequential(layer, layer)
    assert count_parameters(model) == 20
    assert count_parameters(None) == 0


def test_fps_records_the_settings():
    model = ToyPerClassModel()
    result = measure_fps(model, block_label(), batch_size=2, warmup=1, repeats=3)
    assert result.fps > 0 and len(result.batch_seconds) == 3
    assert result.fps == pytest.approx(2 / result.median_batch_seconds)
    assert (result.batch_size, result.resolution, result.dtype) == (2, (64, 64), "float32")
    assert result.threads == torch.get_num_threads() and result.device == "cpu" and result.device_name.startswith("cpu")
    assert model.calls == 4


def test_fps_of_a_model_without_codes_and_in_another_dtype():
    result = measure_fps(ToyDeterministicModel(), block_label(), warmup=0, repeats=2, dtype="float64")
    assert result.dtype == "float64" and result.fps > 0
    with pytest.raises(UnknownNameError):
        measure_fps(ToyDeterministicModel(), block_label(), dtype="int8")


def test_timing_calls_and_refuses_bad_settings():
    calls = []
    times = time_callable(lambda: calls.append(1), "cpu", warmup=2, repeats=5)
    assert len(times) == 5 and len(calls) == 7 and all(t >= 0 for t in times)
    with pytest.raises(SmisbenchError):
        time_callable(lambda: None, "cpu", warmup=0, repeats=0)
