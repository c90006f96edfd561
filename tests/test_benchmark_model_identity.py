"""A cell's key follows the model it evaluates: its weights' digest and the source of the modules defining it."""

from __future__ import annotations

import importlib
import sys
import textwrap

import pytest
import torch

from smisbench.benchmark.cells import code_modules, expand_cells, model_identity
from smisbench.benchmark.spec import parse_spec

SPEC = """
name = "identity"
metrics = ["params"]
[[datasets]]
name = "synthetic"
[[models]]
name = "groupdnet"
"""


@pytest.fixture
def external(tmp_path, monkeypatch):
    """An external model package: the model's module, its submodule's module, and an unrelated one."""
    pkg = tmp_path / "extmodels_identity"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "parts.py").write_text(textwrap.dedent("""
        from torch import nn

        class Block(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(1, 1, 1)
    """))
    (pkg / "model.py").write_text(textwrap.dedent("""
        from torch import nn
        from extmodels_identity.parts import Block

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.block = Block()
    """))
    (pkg / "unrelated.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield pkg, importlib.import_module("extmodels_identity.model").Net()
    for name in [n for n in sys.modules if n.startswith("extmodels_identity")]:
        del sys.modules[name]


def key_of(model: torch.nn.Module) -> str:
    (cell,) = expand_cells(parse_spec(SPEC))
    return cell.resolved(model_identity(model)).key


def test_external_model_code_is_its_own_modules(external):
    pkg, net = external
    assert set(code_modules(net)) == {"extmodels_identity.model", "extmodels_identity.parts"}
    before = key_of(net)
    (pkg / "unrelated.py").write_text("VALUE = 2\n")
    assert key_of(net) == before  # an unrelated edit keeps the results
    (pkg / "parts.py").write_text((pkg / "parts.py").read_text() + "\n# a submodule's class edited\n")
    after_parts = key_of(net)
    assert after_parts != before
    (pkg / "model.py").write_text((pkg / "model.py").read_text() + "\n# the model's class edited\n")
    assert key_of(net) not in (before, after_parts)


def test_builtin_model_code_covers_its_modules_only():
    from smisbench.models.registry import build_model

    modules = code_modules(build_model("groupdnet", "synthetic"))
    assert {"smisbench.models.groupdnet", "smisbench.models.layers", "smisbench.models.base"} <= set(modules)
    assert not any(name.startswith(("torch", "smisbench.metrics", "smisbench.models.pix2pixhd")) for name in modules)
    assert all(len(digest) == 64 for digest in modules.values())


def test_weights_change_the_key_equal_weights_keep_it(external):
    _, net = external
    before = key_of(net)
    assert key_of(net) == before
    with torch.no_grad():
        net.block.conv.weight.add_(1e-3)
    assert key_of(net) != before


def test_unresolved_and_resolved_keys_differ_and_resolved_drops_the_file_hash(external):
    _, net = external
    (cell,) = expand_cells(parse_spec(SPEC))
    resolved = cell.resolved(model_identity(net))
    assert resolved.key != cell.key and resolved.model_inputs() == cell.model_inputs()
    model = resolved.identity()["model"]
    assert set(model) == {"name", "config", "train", "weights_sha256", "code_sha256"}
