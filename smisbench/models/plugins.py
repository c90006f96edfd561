"""Models from outside the suite, as registry entries: factory references and installed plugins.

* A factory reference ``pkg.mod:FACTORY`` or ``path/to/file.py:FACTORY`` (a file path is relative to
  the current folder and imported by path) names a callable that receives the dataset's
  :class:`DatasetConfig` and returns a contract module (``smisbench.models.contract``) or an
  :class:`SMISModel`. It works wherever a model name does (``score``, ``sample``, specs).
* An installed distribution declares models in the entry-point group ``smisbench.models``:
  ``name = "pkg.mod:factory"`` (a factory as above) or an object that is a ``ModelEntry``. They
  are read once per process, after the built-in models, by the generic registry
  (:data:`smisbench.registry.MODELS`: ``entry_points``, ``adapt`` = :func:`entry_of`); a plugin
  that fails to load prints one ``error:`` line naming its distribution and is left out, the
  other names are unaffected. Factory references are the registry's ``resolve`` step
  (:func:`factory_entry_of`).

A factory model's code identity (the cell key's ``code_sha256``) covers the modules of its classes
and the module that defines the factory (``SMISModel.code_origins``), so an edited file is a new cell.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any, Callable

from torch import nn

from smisbench.datasets_config import DatasetConfig, dataset_configs
from smisbench.errors import SmisbenchError
from smisbench.models.base import CodesKind, ModelEntry, SMISModel
from smisbench.models.contract import ContractError, one_line, wrap

ENTRY_POINT_GROUP = "smisbench.models"
REF_FORMS = "MODULE:FACTORY (e.g. mypkg.models:build) or FILE.py:FACTORY (e.g. ./my_model.py:build)"

_FILE_MODULES: dict[str, Any] = {}  # resolved path -> the module imported from it (once per process)


def is_factory_ref(name: str) -> bool:
    """Whether a model name is a factory reference (registered names never hold a colon)."""
    return ":" in name


def _split(ref: str) -> tuple[str, str]:
    target, sep, attr = ref.rpartition(":")
    if not sep or not target.strip() or not attr.strip():
        raise ContractError(f"{ref!r} is not a factory reference", f"write {REF_FORMS}")
    return target.strip(), attr.strip()


def _is_path(target: str) -> bool:
    return target.endswith(".py") or "/" in target or "\\" in target


def _import_file(path: Path) -> Any:
    resolved = str(path.resolve())
    if resolved in _FILE_MODULES:
        return _FILE_MODULES[resolved]
    name = f"smisbench_user_{hashlib.sha256(resolved.encode()).hexdigest()[:12]}_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ContractError(f"cannot import {path} as Python code", "give a .py file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, str(path.resolve().parent))  # so the file's own `import sibling` works
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        sys.modules.pop(name, None)
        raise ContractError(f"importing {path} raised {one_line(err)}", "fix the file") from err
    finally:
        sys.path.remove(str(path.resolve().parent))
    _FILE_MODULES[resolved] = module
    return module


def _import_module(target: str) -> Any:
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as err:
        raise ContractError(f"cannot import module {target!r} ({one_line(err)})",
                            "install its package, put its folder on PYTHONPATH, or give the file: "
                            f"path/to/{target.rpartition('.')[2]}.py:FACTORY") from None
    except Exception as err:
        raise ContractError(f"importing {target} raised {one_line(err)}", "fix the module") from err


def load_factory(ref: str) -> Callable[..., Any]:
    """The callable a factory reference names (``FACTORY`` may be dotted: ``Class.create``)."""
    target, attr = _split(ref)
    if _is_path(target):
        path = Path(target)
        if not path.is_file():
            raise ContractError(f"factory file {target} does not exist (from {ref!r})",
                                f"check the path; it is relative to the current folder {Path.cwd()}")
        module, where = _import_file(path), str(path)
    else:
        module, where = _import_module(target), target
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            names = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
            raise ContractError(f"{where} has no {attr!r} (from {ref!r})",
                                f"define {attr} there or name one of: {', '.join(names) or '(no callables)'}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ContractError(f"{ref} is a {type(obj).__name__}, not a callable factory",
                            "name a function (or class) that takes the DatasetConfig and returns the module")
    return obj


def _call(factory: Callable[..., Any], config: DatasetConfig) -> Any:
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return factory(config)
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)]
    return factory(config) if positional else factory()


def build_from_factory(factory: Callable[..., Any], config: DatasetConfig, ref: str, name: str) -> SMISModel:
    """The factory's module for ``config``, wrapped into the suite's interface (checked on the way)."""
    try:
        made = _call(factory, config)
    except SmisbenchError:
        raise
    except Exception as err:
        raise ContractError(f"factory {ref} raised {one_line(err)}",
                            f"fix the factory; it is called as FACTORY(config) with the DatasetConfig of "
                            f"dataset {config.name!r} (label_nc={config.label_nc}, {config.height}x{config.width}, "
                            f"use_instance={config.use_instance})") from err
    if isinstance(made, SMISModel):
        made.model_name = name
    elif not isinstance(made, nn.Module):
        raise ContractError(f"factory {ref} returned {type(made).__name__}, not a torch.nn.Module",
                            "return the module (codes, code_shape, forward(onehot, codes)) or a wrapped SMISModel")
    else:
        made = wrap(made, config, name)
    origin = getattr(factory, "__module__", None) or type(factory).__module__
    made.code_origins = tuple(dict.fromkeys((*made.code_origins, origin)))  # the factory's code is the model's too
    return made


def _codes_kind(build: Callable[[DatasetConfig], SMISModel]) -> CodesKind:
    """Read off a model built on the meta device (no memory); on the CPU if the factory cannot build there."""
    import torch

    configs = dataset_configs()
    order = [configs["synthetic"], *(c for n, c in configs.items() if n != "synthetic")]
    first: Exception | None = None
    for device in ("meta", "cpu"):
        for config in order[:1] if device == "cpu" else order:
            try:
                with torch.device(device):
                    return build(config).codes_kind
            except ContractError as err:
                first = first or err
    raise first


def factory_entry(name: str, factory: Callable[..., Any], ref: str, description: str) -> ModelEntry:
    """A registry entry whose configurations are the dataset configurations themselves."""
    def build(config: DatasetConfig) -> SMISModel:
        return build_from_factory(factory, config, ref, name)

    return ModelEntry(name=name, description=description, codes_kind=_codes_kind(build), configs=dataset_configs,
                      build=build)


def entry_of(point: importlib.metadata.EntryPoint) -> ModelEntry:
    """The registry entry of one installed plugin (the registry's ``adapt`` step for ``smisbench.models``)."""
    if is_factory_ref(point.name):
        raise ContractError(f"the name {point.name!r} holds a colon", "name the model without ':'")
    obj = point.load()
    if isinstance(obj, ModelEntry):
        return obj if obj.name == point.name else dataclasses.replace(obj, name=point.name)
    if callable(obj):
        return factory_entry(point.name, obj, point.value, f"plugin {point.value}")
    raise ContractError(f"{point.value} is a {type(obj).__name__}", "point the entry at a factory or a ModelEntry")


def factory_entry_of(name: str) -> ModelEntry | None:
    """The entry of a factory reference (the registry's ``resolve`` step); None for a name that is none."""
    if not is_factory_ref(name):
        return None
    return factory_entry(name, load_factory(name), name, f"factory {name}")
