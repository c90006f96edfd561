"""One registry mechanism for every named kind of thing, and the table of all of them.

A :class:`Registry` maps names to objects. Built-ins are registered by the modules named in
its ``locations``, imported on the first lookup, so a registry never imports its users and a
package adds built-ins without being imported by the package that looks them up (mmengine's
shape). Registering a taken name raises unless ``replace=True`` (which loads the built-ins first,
so the replacement stays); a miss lists the known names.

Two more lazy steps a registry may have, both named as ``"module:function"`` and imported on
first use like the locations: ``entry_points`` (a group of installed distributions' entry points,
read once after the built-ins; ``adapt(point)`` turns each into the registered object, and one
that fails to load prints one error naming its distribution and is left out, the other names are
unaffected) and ``resolve(name)`` (the object for a name nobody registered, such as a factory
reference ``pkg.mod:build``; None when it is no such reference).

Each package keeps its typed functions (``get_entry``, ``get_metric``, ``get_spec`` ...) as thin
calls into the registry declared here; to add a built-in, register it in its module and, for a
new module, add that module to ``locations`` below.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
from typing import Any, Callable, Iterator

from smisbench.errors import SmisbenchError, UnknownNameError


class DuplicateNameError(SmisbenchError, ValueError):
    """A name registered twice without ``replace=True``."""


class PluginError(SmisbenchError):
    """An installed plug-in (entry point) that could not be loaded; it names the distribution to fix."""


def _hook(ref: str) -> Callable[..., Any]:
    """The function a ``"module:function"`` hook names (imported now, on first use)."""
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


def _one_line(err: BaseException) -> str:
    if isinstance(err, SmisbenchError):
        return err.problem
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


class Registry:
    """Objects of one ``kind`` by name, with built-ins imported lazily from ``locations``."""

    def __init__(self, kind: str, locations: tuple[str, ...] | list[str] = (), *, entry_points: str | None = None,
                 adapt: str | None = None, resolve: str | None = None):
        self.kind = kind
        self.locations = tuple(locations)
        self.entry_points = entry_points  # entry-point group of installed plug-ins
        self.adapt = adapt  # "module:function": EntryPoint -> object (default: what the entry point loads)
        self.resolve = resolve  # "module:function": unregistered name -> object or None
        self._entries: dict[str, Any] = {}
        self._plugins_read = False
        self._broken: dict[str, PluginError] = {}  # plug-in name -> why it could not be loaded
        self._resolved: dict[str, Any] = {}  # names resolve() answered, kept out of names()
        self._imported: set[str] = set()  # locations whose import finished
        self._importing: list[str] = []  # locations being imported now (a location may look names up)
        self._provisional: set[str] = set()  # registered by an import that then failed

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self._entries)} entries, locations={list(self.locations)})"

    # ----- registering
    def register(self, name: str, obj: Any = None, replace: bool = False) -> Any:
        """Add ``obj`` under ``name`` (returns it); without ``obj``, a decorator that registers what it wraps."""
        if obj is None:
            return lambda target: self.register(name, target, replace)
        if replace and not self._importing:
            self._load()  # a replacement must not be undone by a built-in imported later
        retry = bool(self._importing) and name in self._provisional  # a failed location imported again
        if name in self._entries and not (replace or retry):
            raise DuplicateNameError(
                f"{self.kind} {name!r} registered twice",
                f"pick another name, or pass replace=True to replace the registered {self.kind} on purpose",
            )
        self._entries[name] = obj
        self._provisional.discard(name)
        return obj

    def unregister(self, name: str) -> Any:
        """Remove and return one entry (tests and plug-ins that register temporarily)."""
        self._load()
        try:
            return self._entries.pop(name)
        except KeyError:
            raise UnknownNameError(self.kind, name, list(self._entries)) from None

    # ----- looking up
    def get(self, name: str) -> Any:
        """The object under ``name``; a plug-in that failed raises why, a reference is resolved (once)."""
        self._load()
        if name in self._entries:
            return self._entries[name]
        if name in self._broken:
            raise self._broken[name]
        if name in self._resolved:
            return self._resolved[name]
        found = _hook(self.resolve)(name) if self.resolve else None
        if found is None:
            raise UnknownNameError(self.kind, name, list(self._entries))
        self._resolved[name] = found
        return found

    def names(self) -> list[str]:
        """Registered names in registration order (built-ins loaded first)."""
        self._load()
        return list(self._entries)

    def items(self) -> list[tuple[str, Any]]:
        self._load()
        return list(self._entries.items())

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    # ----- built-ins
    def _load(self) -> None:
        """Import every location not imported yet; a failure raises, and the next lookup tries again."""
        for location in self.locations:
            if location in self._imported or location in self._importing:
                continue
            before = set(self._entries) - self._provisional
            self._importing.append(location)
            try:
                importlib.import_module(location)
            except Exception as error:
                # Python drops a module whose import failed, so the next lookup runs it again;
                # what it registered meanwhile may then be registered once more.
                self._provisional |= set(self._entries) - before
                raise SmisbenchError(
                    f"the built-in {self.kind}s of {location} could not be loaded: "
                    f"{type(error).__name__}: {error}".replace("\n", " "),
                    f"fix the import of {location} (python -c 'import {location}' shows the traceback)",
                ) from error
            finally:
                self._importing.remove(location)
            self._imported.add(location)
        if self.entry_points and not self._plugins_read and not self._importing:
            self._load_plugins()

    # ----- installed plug-ins
    def _load_plugins(self) -> None:
        """Register every entry point of the group once per process; a broken one is reported and left out."""
        self._plugins_read = True  # first: a plug-in that looks names up while loading must not read them again
        adapt = _hook(self.adapt) if self.adapt else (lambda point: point.load())
        points = importlib.metadata.entry_points(group=self.entry_points)
        for point in sorted(points, key=lambda p: p.name):
            dist = getattr(point, "dist", None)
            where = f"{dist.name} {dist.version}" if dist is not None else "(unknown distribution)"
            try:
                if point.name in self._entries:
                    raise SmisbenchError(f"the name {point.name!r} is taken by another {self.kind}")
                self.register(point.name, adapt(point))
            except Exception as err:
                problem = PluginError(
                    f"plugin {self.kind} {point.name!r} ({point.value}) from distribution {where} cannot be loaded: "
                    f"{_one_line(err)}",
                    f"fix or reinstall {where.split()[0]} (entry-point group {self.entry_points}), or uninstall "
                    f"it; the other {self.kind}s are unaffected")
                self._broken[point.name] = problem
                print(f"smisbench: error: {problem.problem}\n  fix: {problem.fix}", file=sys.stderr)


def lookup(registry: Registry, name: str, default: Any = None) -> Any:
    """``registry.get(name)`` or ``default`` when the name is not registered (built-ins loaded first)."""
    return registry.get(name) if name in registry else default


# ----------------------------------------------------------------------------- every registry of smisbench
MODELS = Registry("model", locations=(
    "smisbench.models.groupdnet",
    "smisbench.models.spade",
    "smisbench.models.groupenc_groupdec",
    "smisbench.models.groupnet",
    "smisbench.models.mulnet",
    "smisbench.models.ablations",
    "smisbench.models.pix2pixhd",
    "smisbench.models.bicyclegan",
    "smisbench.models.dscgan",
), entry_points="smisbench.models", adapt="smisbench.models.plugins:entry_of",
   resolve="smisbench.models.plugins:factory_entry_of")
METRICS = Registry("metric", locations=("smisbench.metrics.builtin", "smisbench.segmenters.metric",
                                        "smisbench.metrics.locality"))
SEGMENTERS = Registry("segmenter", locations=(
    "smisbench.segmenters.csail_upernet",
    "smisbench.segmenters.drn",
    "smisbench.segmenters.graphonomy",
    "smisbench.segmenters.mmseg_backend",
    "smisbench.segmenters.synthetic_fcn",
))
DATASETS = Registry("dataset", locations=(  # readers: name -> DatasetReader
    "smisbench.data.synthetic",
    "smisbench.data.deepfashion",
    "smisbench.data.cityscapes",
    "smisbench.data.ade20k",
    "smisbench.data.custom",
))
DATASET_CONFIGS = Registry("dataset", locations=("smisbench.datasets_config",))
SCORING_PROTOCOLS = Registry("scoring protocol", locations=("smisbench.segmenters.protocol",))
LABEL_CONVENTIONS = Registry("label convention", locations=("smisbench.segmenters.label_conventions",))
# install-time checks that a converted pinned weights file fits the network that loads it
WEIGHTS_CHECKS = Registry("weights check", locations=("smisbench.metrics.lpips_metric", "smisbench.metrics.fid"))
