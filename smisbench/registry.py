"""One registry mechanism for every named kind of thing, and the table of all of them.

A :class:`Registry` maps names to objects. Built-ins are registered by the modules named in
its ``locations``, imported on the first lookup, so a registry never imports its users and a
package adds built-ins without being imported by the package that looks them up (mmengine's
shape). Registering a taken name raises unless ``replace=True`` (which loads the built-ins first,
so the replacement stays); a miss lists the known names.

Each package keeps its typed functions (``get_entry``, ``get_metric``, ``get_spec`` ...) as thin
calls into the registry declared here; to add a built-in, register it in its module and, for a
new module, add that module to ``locations`` below.
"""

from __future__ import annotations

import importlib
from typing import Any, Iterator

from smisbench.errors import SmisbenchError, UnknownNameError


class DuplicateNameError(SmisbenchError, ValueError):
    """A name registered twice without ``replace=True``."""


class Registry:
    """Objects of one ``kind`` by name, with built-ins imported lazily from ``locations``."""

    def __init__(self, kind: str, locations: tuple[str, ...] | list[str] = ()):
        self.kind = kind
        self.locations = tuple(locations)
        self._entries: dict[str, Any] = {}
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
        self._load()
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, list(self._entries)) from None

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
))
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
