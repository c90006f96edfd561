"""Models from outside the suite: factory references, installed plugins (entry points), specs naming them."""

from __future__ import annotations

import importlib.metadata
import textwrap
from pathlib import Path

import pytest

from smisbench.benchmark.cells import expand_cells
from smisbench.benchmark.spec import SpecError, parse_spec
from smisbench.errors import UnknownNameError
from smisbench.models import plugins
from smisbench.models.base import CodesKind
from smisbench.models.contract import ContractError
from smisbench.models.registry import ModelEntry, build_model, get_entry, model_names
from smisbench.registry import MODELS, PluginError, Registry

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "smis_plugin_example" / "smis_plugin_example" / "models.py"

FACTORIES = '''
import torch
from torch import nn


class Flat(nn.Module):
    codes = "global"
    code_shape = (2,)

    def __init__(self, classes):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))
        self.classes = classes

    def forward(self, onehot, codes):
        return torch.tanh(onehot[:, :3] * self.scale + codes[:, :1, None, None])


def build(config):
    return Flat(config.label_nc)


def no_argument():
    return Flat(6)


def raising(config):
    raise RuntimeError("needs a GPU")


def wrong_type(config):
    return "a string"


NOT_CALLABLE = 3
'''


@pytest.fixture
def factory_file(tmp_path):
    path = tmp_path / "my_models.py"
    path.write_text(FACTORIES)
    return path


def test_a_factory_reference_works_wherever_a_model_name_does(factory_file):
    ref = f"{factory_file}:build"
    entry = get_entry(ref)
    assert entry.codes_kind == CodesKind.GLOBAL and "synthetic" in entry.datasets()
    model = build_model(ref, "synthetic")
    assert model.model_name == ref and model.latent.shape == (2,)
    assert build_model(f"{factory_file}:no_argument", "synthetic").netG.classes == 6
    assert ref not in model_names()  # references resolve on demand; the listing holds registered names


@pytest.mark.parametrize("suffix, problem, fix", [
    (":missing", "has no 'missing'", "build, no_argument, raising, wrong_type"),
    (":raising", "factory {ref} raised RuntimeError: needs a GPU", "FACTORY(config) with the DatasetConfig"),
    (":wrong_type", "returned str, not a torch.nn.Module", "return the module"),
    (":NOT_CALLABLE", "is a int, not a callable factory", "name a function"),
])
def test_bad_factories_fail_with_the_fix(factory_file, suffix, problem, fix):
    ref = f"{factory_file}{suffix}"
    with pytest.raises(ContractError) as err:
        get_entry(ref)
    assert problem.format(ref=ref) in err.value.problem and fix in err.value.fix


def test_factory_references_that_do_not_resolve(tmp_path):
    with pytest.raises(ContractError, match="does not exist") as err:
        get_entry(f"{tmp_path}/absent.py:build")
    assert "relative to the current folder" in err.value.fix
    with pytest.raises(ContractError, match="cannot import module 'no_such_package_xyz.models'") as err:
        get_entry("no_such_package_xyz.models:build")
    assert "PYTHONPATH" in err.value.fix
    broken = tmp_path / "broken.py"
    broken.write_text("import no_such_module_xyz\n")
    with pytest.raises(ContractError, match="importing .*broken.py raised ModuleNotFoundError"):
        get_entry(f"{broken}:build")
    with pytest.raises(UnknownNameError):
        get_entry("no-such-model")


class _Dist:
    def __init__(self, name: str):
        self.name, self.version = name, "1.0"


def _point(name: str, value: str, dist: str = "good-dist") -> importlib.metadata.EntryPoint:
    point = importlib.metadata.EntryPoint(name, value, plugins.ENTRY_POINT_GROUP)
    return point._for(_Dist(dist)) if hasattr(point, "_for") else point


SHIPPED_ENTRY = ModelEntry("ignored", "an entry object", CodesKind.NONE, dict, lambda config: None)


def test_entry_points_register_plugins_and_a_broken_one_names_its_distribution(monkeypatch, factory_file, capsys):
    """The models registry's entry-point step (smisbench.registry.MODELS declares it), on a registry of its own."""
    monkeypatch.syspath_prepend(str(factory_file.parent))
    points = [
        _point("plugin-factory", "my_models:build"),
        _point("plugin-entry", f"{__name__}:SHIPPED_ENTRY"),
        _point("plugin-broken", "no_such_plugin_module_xyz:build", dist="broken-dist"),
        _point("groupdnet", "my_models:build", dist="clash-dist"),
    ]
    read = []

    def entry_points(group):
        read.append(group)
        return points if group == plugins.ENTRY_POINT_GROUP else []

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    registry = Registry("model", entry_points=MODELS.entry_points, adapt=MODELS.adapt, resolve=MODELS.resolve)
    registry.register("groupdnet", object())
    assert registry.get("plugin-factory").codes_kind == CodesKind.GLOBAL
    entry = registry.get("plugin-entry")
    assert entry.name == "plugin-entry" and entry.description == "an entry object"
    assert "plugin-broken" not in registry
    lines = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(lines) == 2  # read in name order: groupdnet, plugin-broken
    assert "'groupdnet'" in lines[0] and "clash-dist" in lines[0] and "taken by another model" in lines[0]
    assert "plugin model 'plugin-broken'" in lines[1] and "distribution broken-dist 1.0" in lines[1]
    with pytest.raises(PluginError, match="broken-dist") as err:  # asking by name shows why, not "unknown model"
        registry.get("plugin-broken")
    assert "the other models are unaffected" in err.value.fix
    registry.names()
    assert read == [plugins.ENTRY_POINT_GROUP]  # once per registry (per process for smisbench's own)
    assert registry.get(f"{factory_file}:build").codes_kind == CodesKind.GLOBAL  # the resolve step


def test_the_models_registry_reads_the_plugin_group():
    assert MODELS.entry_points == plugins.ENTRY_POINT_GROUP


def _example_installed() -> bool:
    try:
        importlib.metadata.distribution("smis-plugin-example")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


needs_example = pytest.mark.skipif(not _example_installed(), reason="examples/smis_plugin_example is not installed "
                                   "(tox installs it; by hand: pip install -e examples/smis_plugin_example)")


@needs_example
def test_the_installed_example_plugin_is_a_model_by_name():
    assert {"example-per-class", "example-global"} <= set(model_names())
    assert get_entry("example-per-class").codes_kind == CodesKind.PER_CLASS
    assert get_entry("example-global").codes_kind == CodesKind.GLOBAL
    from smisbench.models.cli import model_table

    rows = {(r["model"], r["dataset"]): r for r in model_table("synthetic")}
    assert rows[("example-per-class", "synthetic")]["G"] == 6 * 8 * 3 + 6 * 3


def test_specs_accept_a_factory_and_an_edited_file_is_a_new_cell(factory_file, tmp_path):
    """A factory model's code identity (the resolved key's code_sha256) covers its file: edited, a new cell."""
    from smisbench.benchmark.executor import identify_cell
    from smisbench.benchmark.runner import ExecutionContext

    text = textwrap.dedent(f'''
        name = "mine"
        metrics = ["params"]
        [[datasets]]
        name = "synthetic"
        [[models]]
        factory = "{factory_file}:build"
        label = "Mine"
    ''')
    spec = parse_spec(text)
    assert spec.models[0].factory == spec.models[0].name == f"{factory_file}:build"

    def resolved():
        cell = expand_cells(spec)[0]
        return cell.resolved(identify_cell(cell, ExecutionContext(tmp_path)))

    first = resolved()
    assert set(first.identity()["model"]) >= {"weights_sha256", "code_sha256"}
    factory_file.write_text(FACTORIES + "\n# edited\n")
    edited = resolved()
    assert edited.identity()["model"]["weights_sha256"] == first.identity()["model"]["weights_sha256"]
    assert edited.key != first.key
    with pytest.raises(SpecError, match="together with `name`"):
        parse_spec(text.replace('label = "Mine"', 'name = "groupdnet"'))
    with pytest.raises(SpecError, match="is a factory reference") as err:
        parse_spec(text.replace("factory =", "name ="))
    assert "factory =" in err.value.fix


def test_a_factory_in_another_module_than_its_class_hashes_that_module_too(tmp_path, monkeypatch):
    """The factory's own file is part of the code identity, not only the files of the classes it builds."""
    from smisbench.benchmark.cells import code_modules

    (tmp_path / "nets_mod_xyz.py").write_text(FACTORIES)
    maker = tmp_path / "maker.py"
    maker.write_text("from nets_mod_xyz import Flat\n\ndef build(config):\n    return Flat(config.label_nc)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    modules = code_modules(build_model(f"{maker}:build", "synthetic"))
    assert "nets_mod_xyz" in modules and any(name.endswith("_maker") for name in modules)
    assert all(digest != "source unavailable" for digest in modules.values())


def test_a_factory_spec_that_does_not_load_is_refused_before_the_run(tmp_path):
    from smisbench.benchmark.validate import check_spec

    spec = parse_spec(f'name = "x"\nmetrics = ["params"]\n[[datasets]]\nname = "synthetic"\n'
                      f'[[models]]\nfactory = "{tmp_path}/absent.py:build"\n')
    with pytest.raises(SpecError, match=r"models\[0\]\.factory: factory file .* does not exist"):
        check_spec(spec)


def test_registered_specs_keep_their_cell_keys():
    """Models named by the registry hash as before (the spec's identity holds no factory field)."""
    spec = parse_spec('name = "x"\nmetrics = ["params"]\n[[datasets]]\nname = "synthetic"\n'
                      '[[models]]\nname = "groupdnet"\n')
    assert set(expand_cells(spec)[0].identity()["model"]) == {"name", "config", "checkpoint_sha256", "checkpoint",
                                                              "train"}


def test_the_example_file_route_builds_without_installing(tmp_path):
    model = build_model(f"{EXAMPLE}:build_per_class", "synthetic")
    assert model.codes_kind == CodesKind.PER_CLASS and model.latent.shape == (6, 8)
