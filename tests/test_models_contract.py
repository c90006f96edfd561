"""The model contract: a plain torch module wrapped by one call, checked with one error and its fix."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest_weights import block_label, lpips_random  # noqa: F401  (fixture)
from smisbench.datasets_config import DatasetConfig
from smisbench.metrics.protocol import EvalProtocol
from smisbench.models.base import CodesKind, SMISModel
from smisbench.models.contract import ContractError, WrappedModel, wrap

DATA = DatasetConfig("toy4", 4, 64, 64)  # AlexNet (LPIPS) needs at least 64 x 64


class Painter(nn.Module):
    """Class c's colour from class c's code (per_class) or from the one image code (global)."""

    def __init__(self, classes: int = 4, dim: int = 3, codes: str = "per_class"):
        super().__init__()
        self.codes, self.code_shape = codes, (dim,)
        self.weight = nn.Parameter(torch.randn(classes, dim, 3, generator=torch.Generator().manual_seed(0)))
        self.classes = classes

    def forward(self, onehot, codes):
        spec = "bcd,cdk->bck" if self.codes == "per_class" else "bd,cdk->bck"
        colour = torch.tanh(torch.einsum(spec, codes, self.weight))
        return torch.einsum("bchw,bck->bkhw", onehot[:, :self.classes], colour)


class _Maps(torch.utils.data.Dataset):
    def __len__(self):
        return 3

    def __getitem__(self, i):
        return {"label": block_label(64, 64, classes=(0, 1, 2, 3)[i:] + (0, 1, 2, 3)[:i]),
                "image": torch.zeros(3, 64, 64), "name": f"m{i}"}


def _onehot(batch: int = 2) -> torch.Tensor:
    model = wrap(Painter(), DATA)
    return model.semantics(block_label(64, 64, classes=(0, 1, 2, 3)).expand(batch, 64, 64))


def test_wrap_gives_the_suite_interface_with_codes_b_by_c_by_code_shape():
    model = wrap(Painter(dim=5), dataset=DATA)
    assert isinstance(model, SMISModel) and model.codes_kind == CodesKind.PER_CLASS
    z = model.sample_z(2, torch.Generator().manual_seed(0))
    assert z.shape == (2, 4, 5)
    redrawn = model.redraw(z, [2], torch.Generator().manual_seed(1))
    changed = (redrawn != z).flatten(2).any(-1)[0].tolist()
    assert changed == [False, False, True, False]
    assert model.generate(_onehot(), z).shape == (2, 3, 64, 64)
    glob = wrap(Painter(codes="global", dim=5), dataset=DATA)
    assert glob.codes_kind == CodesKind.GLOBAL and glob.sample_z(3).shape == (3, 5)
    assert wrap(model, DATA) is model  # an SMISModel stays as it is


def test_wrap_accepts_a_dataset_name_and_the_synthetic_config_loads_lazily():
    model = wrap(Painter(classes=6), dataset="synthetic")
    assert model.dataset.name == "synthetic" and model.latent.shape == (6, 3)


def test_evaluate_wraps_a_plain_module(lpips_random):
    """Before: AttributeError 'Painter' object has no attribute 'latent'. Now the contract wraps it."""
    from smisbench.metrics import evaluate

    protocol = EvalProtocol(n=4, m=3, diversity_maps=3, batch_size=4, mask_mode="image")
    per_class = evaluate(Painter(), _Maps(), DATA, ["mcsd_mocd", "params"], protocol, progress=False,
                         networks={"lpips": lpips_random})
    assert per_class.values["mocd"] == 0.0 and per_class.values["mcsd"] > 0
    assert per_class.values["params"] == 4 * 3 * 3
    glob = evaluate(Painter(codes="global"), _Maps(), DATA, ["mcsd_mocd"], protocol, progress=False,
                    networks={"lpips": lpips_random})
    assert glob.values["mocd"] > glob.values["mcsd"] > 0
    assert glob.provenance["codes_kind"] == "global"


def test_public_api_is_exported():
    import smisbench.metrics.evaluate  # noqa: F401  (the submodule of the same name must not hide the function)
    from smisbench.metrics import EvalProtocol as Protocol, evaluate, get_preset
    from smisbench.models import ModelEntry, build_model, model_names, wrap as wrap_again  # noqa: F401

    assert callable(evaluate) and evaluate.__name__ == "evaluate"
    assert Protocol is EvalProtocol and get_preset().name == "groupdnet2020"
    assert wrap_again is wrap and "groupdnet" in model_names()


class _NoCodes(nn.Module):
    def forward(self, onehot, codes):
        return onehot[:, :3]


@pytest.mark.parametrize("make, problem, fix", [
    (lambda: _NoCodes(), "has no `codes` attribute", 'codes = "per_class"'),
    (lambda: type("Bad", (Painter,), {})(codes="per-class"), "codes is 'per-class'", '"per_class", "global"'),
    (lambda: type("NoShape", (nn.Module,), {"codes": "global"})(), "no `code_shape`", "code_shape = (8,)"),
    (lambda: type("BadShape", (nn.Module,), {"codes": "global", "code_shape": (0, 2)})(), "code_shape is (0, 2)",
     "positive integers"),
    (lambda: lambda onehot, codes: onehot, "not a torch.nn.Module", "torch.nn.Module subclass"),
])
def test_missing_or_wrong_attributes_fail_at_wrap_with_the_fix(make, problem, fix):
    with pytest.raises(ContractError) as err:
        wrap(make(), DATA)
    assert problem in err.value.problem and fix in err.value.fix


class _Output(Painter):
    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def forward(self, onehot, codes):
        out = super().forward(onehot, codes)
        return {"shape": lambda: out[:, :, ::2], "range": lambda: out * 127.5 + 127.5, "nan": lambda: out / 0.0,
                "dtype": lambda: (out * 127.5 + 127.5).to(torch.uint8), "tuple": lambda: (out,),
                "raise": lambda: out.view(7, -1)}[self.kind]()


@pytest.mark.parametrize("kind, problem, fix", [
    ("shape", "returned shape (2, 3, 32, 64)", "at the label map's size"),
    ("range", "outside [-1, 1]", "torch.tanh"),
    ("dtype", "dtype torch.uint8", "x.float() / 127.5 - 1"),
    ("nan", "NaN or infinite", "numerics"),
    ("tuple", "returned tuple, not an image tensor", "return one tensor"),
    ("raise", "forward(onehot, codes) raised RuntimeError", "onehot (2, 4, 64, 64)"),
])
def test_wrong_outputs_fail_on_the_first_call(kind, problem, fix):
    model = wrap(_Output(kind), DATA)
    with pytest.raises(ContractError) as err:
        model.generate(_onehot(), model.sample_z(2))
    assert problem in err.value.problem and fix in err.value.fix
    assert "\n" not in err.value.problem


class _OwnPrior(Painter):
    """Codes from a uniform prior on [0, 1); ``bad`` returns a flat code instead of B x C x D."""

    def __init__(self, bad: bool = False):
        super().__init__()
        self.bad = bad

    def sample_codes(self, batch, generator):
        shape = (batch, 12) if self.bad else (batch, 4, 3)
        return torch.rand(shape, generator=generator)

    def redraw(self, codes, class_index, generator):
        codes[:, class_index] = torch.rand(codes[:, class_index].shape, generator=generator) + 10
        return codes


def test_an_own_prior_is_used_and_checked():
    model = wrap(_OwnPrior(), DATA)
    z = model.sample_z(2, torch.Generator().manual_seed(0))
    assert z.shape == (2, 4, 3) and float(z.min()) >= 0 and float(z.max()) < 1
    assert torch.equal(z, model.sample_z(2, torch.Generator().manual_seed(0)))
    redrawn = model.redraw(z, [1], torch.Generator())
    assert float(redrawn[:, 1].min()) >= 10 and torch.equal(redrawn[:, 0], z[:, 0])
    with pytest.raises(ContractError) as err:
        wrap(_OwnPrior(bad=True), DATA).sample_z(2)
    assert "gave codes of shape (2, 12)" in err.value.problem and "(2, 4, 3)" in err.value.problem
    assert "sample_codes(batch, generator) return B x 4 x 3" in err.value.fix
    half = type("Half", (Painter,), {"sample_codes": lambda self, b, g: torch.rand(b, 4, 3)})
    with pytest.raises(ContractError, match="defines sample_codes but not redraw"):
        wrap(half(), DATA)


def test_codes_of_the_wrong_shape_are_refused_on_every_call():
    model = wrap(Painter(), DATA)
    with pytest.raises(ContractError) as err:
        model.generate(_onehot(), torch.zeros(2, 12))
    assert "(2, 12)" in err.value.problem and "B x 4 x 3 (B x C x *code_shape)" in err.value.fix


def test_a_module_without_parameters_finds_its_device():
    class Flat(nn.Module):
        codes, code_shape = "none", ()

        def forward(self, onehot, codes):
            return onehot[:, :3] * 2 - 1

    model = wrap(Flat(), DATA)
    assert model.sample_z(2) is None and isinstance(model, WrappedModel)
    onehot = model.semantics(block_label(64, 64, classes=(0, 1, 2, 3))[None])
    assert model.generate(onehot, None).shape == (1, 3, 64, 64)
    assert sum(p.numel() for p in model.parts()["G"].parameters()) == 0


def test_an_encoder_returning_codes_alone_is_deterministic():
    class Enc(Painter):
        def encode(self, image, onehot):
            return torch.ones(image.shape[0], 4, 3)

    model = wrap(Enc(), DATA)
    mu, logvar = model.encode(torch.zeros(2, 3, 64, 64), _onehot())
    assert mu.shape == (2, 4, 3) and torch.isneginf(logvar).all()
    with pytest.raises(ContractError, match="no encoder"):
        wrap(Painter(), DATA).encode(torch.zeros(1, 3, 64, 64), _onehot(1))
