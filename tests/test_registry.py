"""The one registry mechanism: duplicates, lazy and safe built-ins, misses that list names, no import circles."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from smisbench.errors import SmisbenchError, UnknownNameError
from smisbench.registry import DuplicateNameError, Registry

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "smisbench"


# ----------------------------------------------------------------------------- a location module made on the fly
@pytest.fixture
def location(tmp_path, monkeypatch):
    """``make(body)`` writes an importable module whose ``REG`` is the fixture's registry; returns its name."""
    holder = types.ModuleType("_smisbench_test_holder")
    holder.REG = None
    holder.broken = False
    monkeypatch.setitem(sys.modules, holder.__name__, holder)
    monkeypatch.syspath_prepend(str(tmp_path))
    made: list[str] = []

    def make(body: str, name: str = "_smisbench_test_builtins") -> tuple[str, types.ModuleType]:
        (tmp_path / f"{name}.py").write_text(f"from {holder.__name__} import REG\nimport {holder.__name__} as H\n"
                                             + body)
        made.append(name)
        return name, holder

    yield make
    for name in made:
        sys.modules.pop(name, None)


def test_duplicate_names_raise_unless_replaced():
    reg = Registry("widget")
    first, second = object(), object()
    assert reg.register("a", first) is first
    with pytest.raises(DuplicateNameError, match="widget 'a' registered twice") as err:
        reg.register("a", second)
    assert isinstance(err.value, ValueError) and "replace=True" in err.value.fix
    assert reg.get("a") is first
    reg.register("a", second, replace=True)
    assert reg.get("a") is second


def test_register_works_as_a_decorator():
    reg = Registry("widget")

    @reg.register("f")
    def f() -> int:
        return 1

    assert reg.get("f") is f and reg.names() == ["f"]


def test_a_miss_lists_the_known_names():
    reg = Registry("widget")
    reg.register("alpha", 1)
    reg.register("beta", 2)
    with pytest.raises(UnknownNameError, match="unknown widget 'gamma'") as err:
        reg.get("gamma")
    assert err.value.known == ["alpha", "beta"] and "use one of: alpha, beta" in str(err.value)
    assert isinstance(err.value, KeyError) and isinstance(err.value, SmisbenchError)


def test_builtins_are_imported_on_first_lookup_only(location):
    name, holder = location("REG.register('builtin', 42)\n")
    holder.REG = reg = Registry("widget", locations=[name])
    reg.register("user", 1)  # registering never imports the built-ins
    assert name not in sys.modules
    assert reg.names() == ["user", "builtin"] and name in sys.modules
    assert reg.get("builtin") == 42 and "builtin" in reg and len(reg) == 2


def test_replacing_a_builtin_before_any_lookup_stays_replaced(location):
    name, holder = location("REG.register('builtin', 42)\n")
    holder.REG = reg = Registry("widget", locations=[name])
    reg.register("builtin", 7, replace=True)
    assert reg.get("builtin") == 7 and reg.names() == ["builtin"]


def test_a_location_may_look_names_up_while_it_is_imported(location):
    name, holder = location("REG.register('a', 1)\nSEEN = REG.names()\nREG.register('b', REG.get('a') + 1)\n")
    holder.REG = reg = Registry("widget", locations=[name])
    assert reg.get("b") == 2 and sys.modules[name].SEEN == ["a"]


def test_a_failing_location_is_one_error_and_a_retry_works(location):
    name, holder = location("REG.register('early', 1)\nif H.broken:\n    raise ImportError('no module named fancy_dep')\n"
                            "REG.register('late', 2)\n")
    holder.REG = reg = Registry("widget", locations=[name])
    holder.broken = True
    for _ in range(2):  # not marked loaded: every lookup tries again and fails the same way
        with pytest.raises(SmisbenchError) as err:
            reg.get("late")
        assert name in err.value.problem and "no module named fancy_dep" in err.value.problem
        assert "\n" not in err.value.problem and err.value.fix and name in err.value.fix
        assert not isinstance(err.value, UnknownNameError)
    holder.broken = False  # the dependency got installed
    assert reg.names() == ["early", "late"]  # 'early' registered again by the re-import, without a duplicate error
    with pytest.raises(DuplicateNameError):
        reg.register("early", 3)  # once loaded, duplicates raise again


def test_a_failing_builtin_location_is_an_error_line_on_the_command_line(location, monkeypatch, capsys):
    from smisbench.cli import main
    from smisbench.registry import DATASETS

    name, holder = location("raise RuntimeError('reader module is broken')\n", name="_smisbench_test_broken_reader")
    DATASETS.names()  # the real built-ins first
    monkeypatch.setattr(DATASETS, "locations", (*DATASETS.locations, name))
    assert main(["datasets", "list"]) == 2
    err = capsys.readouterr().err
    assert f"error: the built-in datasets of {name} could not be loaded: RuntimeError: reader module is broken" in err
    assert "fix:" in err and "Traceback" not in err
    monkeypatch.setattr(DATASETS, "locations", DATASETS.locations[:-1])
    assert main(["datasets", "list"]) == 0


# ----------------------------------------------------------------------------- the package registries
def test_every_registration_function_refuses_a_taken_name():
    from smisbench.data.registry import get_reader, register_reader
    from smisbench.datasets_config import get_dataset_config, register_dataset
    from smisbench.metrics.registry import get_metric, register_metric
    from smisbench.models.registry import get_entry, register
    from smisbench.segmenters.label_conventions import register_label_convention
    from smisbench.segmenters.protocol import get_protocol, register_protocol
    from smisbench.segmenters.registry import get_spec
    from smisbench.segmenters.registry import register as register_segmenter

    reader = get_reader("synthetic")
    attempts = {
        "model": lambda **kw: register(get_entry("groupdnet"), **kw),
        "metric": lambda **kw: register_metric("fid", get_metric("fid"), **kw),
        "segmenter": lambda **kw: register_segmenter(get_spec("synthetic-fcn"), **kw),
        "dataset config": lambda **kw: register_dataset(get_dataset_config("synthetic"), **kw),
        "reader": lambda **kw: register_reader("synthetic", reader.build, reader.description, reader.needs_root, **kw),
        "scoring protocol": lambda **kw: register_protocol(get_protocol("cityscapes-drn105"), **kw),
        "label convention": lambda **kw: register_label_convention("cihp20", lambda: None, **kw),
    }
    for kind, attempt in attempts.items():
        with pytest.raises(DuplicateNameError, match="registered twice"):
            attempt()
        if kind != "label convention":
            attempt(replace=True)  # the same object again: allowed on purpose, nothing changes


def test_misses_name_the_kind_and_list_the_names():
    from smisbench.data.registry import build_dataset
    from smisbench.datasets_config import get_dataset_config
    from smisbench.segmenters.label_conventions import get_label_convention
    from smisbench.segmenters.protocol import get_protocol
    from smisbench.segmenters.registry import get_spec

    for lookup, kind, known in ((get_spec, "segmenter", "synthetic-fcn"), (get_protocol, "scoring protocol",
                                "cityscapes-drn105"), (get_label_convention, "label convention", "deepfashion8"),
                                (get_dataset_config, "dataset", "synthetic"), (build_dataset, "dataset", "custom")):
        with pytest.raises(UnknownNameError, match=f"unknown {kind} 'nope'") as err:
            lookup("nope")
        assert known in err.value.known


def test_a_label_convention_whose_builder_fails_is_not_reported_as_unknown():
    from smisbench.registry import LABEL_CONVENTIONS
    from smisbench.segmenters.label_conventions import get_label_convention, register_label_convention

    register_label_convention("_broken_for_test", lambda: {}["missing table"])
    try:
        with pytest.raises(KeyError) as err:
            get_label_convention("_broken_for_test")
        assert not isinstance(err.value, UnknownNameError)
    finally:
        LABEL_CONVENTIONS.unregister("_broken_for_test")


def test_every_pinned_weights_file_has_its_install_check_registered():
    from smisbench.registry import WEIGHTS_CHECKS
    from smisbench.weights import PINNED

    assert [e.name for e in PINNED if e.name not in WEIGHTS_CHECKS] == []


def test_synthetic_dataset_config_is_a_declared_builtin_in_a_fresh_interpreter():
    code = (
        "import sys\n"
        "from smisbench.datasets_config import get_dataset_config\n"
        "c = get_dataset_config('synthetic')\n"
        "from smisbench.registry import DATASET_CONFIGS\n"
        "assert DATASET_CONFIGS.get('synthetic') is c\n"
        "print(c.label_nc, c.height, c.width, ','.join(c.class_names), 'smisbench.data.synthetic' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True).stdout.split()
    assert out == ["6", "64", "64", "background,disc,square,triangle,bar,ring", "False"]


def test_synthetic_reader_uses_the_declared_config():
    from smisbench.data.synthetic import CLASS_NAMES, CONFIG, DEFAULT_SIZE, NUM_CLASSES
    from smisbench.datasets_config import get_dataset_config

    assert CONFIG is get_dataset_config("synthetic")
    assert (NUM_CLASSES, DEFAULT_SIZE, len(CLASS_NAMES)) == (6, (64, 64), 6)


# ----------------------------------------------------------------------------- import structure
def _imports(path: Path) -> list[tuple[str, int]]:
    """Absolute ``smisbench.*`` modules a file imports anywhere, except under ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(inner) for inner in ast.walk(node))
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: relative import (smisbench uses absolute imports)"
            if node.module == "smisbench":  # from smisbench import weights
                found += [(f"smisbench.{alias.name}", node.lineno) for alias in node.names]
            else:
                found.append((node.module, node.lineno))
    return [(name, line) for name, line in found if name == "smisbench" or name.startswith("smisbench.")]


def _unit(module: str) -> str:
    """A subpackage (smisbench.models) or a top-level module (smisbench.errors): the nodes of the graph."""
    return ".".join(module.split(".")[:2])


def _package_graph() -> dict[str, dict[str, list[str]]]:
    graph: dict[str, dict[str, list[str]]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for target, line in _imports(path):
            a, b = _unit(module), _unit(target)
            if a != b:
                graph.setdefault(a, {}).setdefault(b, []).append(f"{path.relative_to(ROOT)}:{line}")
    return graph


def _cycles(graph: dict[str, dict[str, list[str]]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for node in list(graph):
        if node not in index:
            visit(node)
    return out


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b": []}, "b": {"c": []}, "c": {"a": []}, "d": {"a": []}}) == [["a", "b", "c"]]


def test_no_import_cycle_between_packages():
    graph = _package_graph()
    assert "smisbench.models" in graph and "smisbench.weights" in graph  # the walk sees the packages
    report = []
    for component in _cycles(graph):
        for a in component:
            for b, where in graph[a].items():
                if b in component:
                    report.append(f"{a} -> {b}: {', '.join(where[:3])}")
    assert report == [], "import cycles between packages:\n" + "\n".join(report)


def test_the_weights_store_imports_none_of_its_users():
    # smisbench.progress: the one progress switch, a leaf (tqdm and os only)
    allowed = {"smisbench.errors", "smisbench.io", "smisbench.paths", "smisbench.progress", "smisbench.registry",
               "smisbench.weights"}
    used = {_unit(name) for path in (PACKAGE / "weights").rglob("*.py") for name, _ in _imports(path)}
    assert used <= allowed, sorted(used - allowed)


def test_the_registry_module_imports_only_errors():
    assert {name for name, _ in _imports(PACKAGE / "registry.py")} == {"smisbench.errors"}
