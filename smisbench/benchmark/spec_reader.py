"""The low-level reader of benchmark specs: one TOML table at a time, types checked, unread keys refused.

Every mistake is a :class:`SpecError` naming the key with its path (``cells[2].metrics``). Kept apart
from :mod:`smisbench.benchmark.spec` (which builds the spec's dataclasses with it) so the claims and
seeds parsers can use it without importing the spec module.
"""

from __future__ import annotations

from typing import Any

from smisbench.errors import SmisbenchError


class SpecError(SmisbenchError):
    """A spec that cannot be run; ``key`` is the path of the offending key."""

    def __init__(self, source: str, key: str, problem: str, fix: str | None = None):
        self.source, self.key = source, key
        super().__init__(f"{source}: {key}: {problem}" if key else f"{source}: {problem}", fix)


def type_name(value: Any) -> str:
    """A TOML value's type in the words an error message uses ("an array", "a table")."""
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "an array", dict: "a table"}.get(type(value), type(value).__name__)


class TableReader:
    """Reads one TOML table, checking types, and refuses keys nobody read."""

    def __init__(self, data: Any, path: str, source: str):
        if not isinstance(data, dict):
            raise SpecError(source, path, f"must be a table, not {type_name(data)}")
        self.data, self.path, self.source = data, path, source
        self.read: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def error(self, name: str, problem: str, fix: str | None = None) -> SpecError:
        return SpecError(self.source, self.key(name), problem, fix)

    def get(self, name: str, kinds: tuple[type, ...], what: str, *, required: bool = False,
            default: Any = None, choices: tuple | None = None) -> Any:
        self.read.add(name)
        if name not in self.data:
            if required:
                raise self.error(name, "is missing", f"add `{name} = ...` ({what})")
            return default
        value = self.data[name]
        ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            ok, value = True, float(value)
        if not ok:
            raise self.error(name, f"must be {what}, not {type_name(value)} ({value!r})")
        if choices is not None and value not in choices:
            raise self.error(name, f"{value!r} is not allowed", f"use one of: {', '.join(map(str, choices))}")
        return value

    def text(self, name: str, **kw: Any) -> Any:
        value = self.get(name, (str,), "a string", **kw)
        if name in self.data and not value.strip():
            raise self.error(name, "must not be empty")
        return value

    def integer(self, name: str, minimum: int | None = None, **kw: Any) -> Any:
        value = self.get(name, (int,), "an integer", **kw)
        if value is not None and minimum is not None and value < minimum:
            raise self.error(name, f"must be at least {minimum}, not {value}")
        return value

    def table(self, name: str) -> dict[str, Any]:
        return dict(self.get(name, (dict,), "a table", default={}))

    def strings(self, name: str, **kw: Any) -> Any:
        value = self.get(name, (list,), "an array of strings", **kw)
        if value is None:
            return None
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise SpecError(self.source, f"{self.key(name)}[{i}]", f"must be a string, not {type_name(item)}")
        return tuple(value)

    def tables(self, name: str, required: bool = False) -> list["TableReader"]:
        value = self.get(name, (list,), "an array of tables ([[" + name + "]])", required=required, default=[])
        return [TableReader(item, f"{self.key(name)}[{i}]", self.source) for i, item in enumerate(value)]

    def only(self, known: tuple[str, ...]) -> "TableReader":
        """Refuse unknown keys before anything else, so a typo is named as such (not as a missing key)."""
        unknown = sorted(set(self.data) - set(known))
        if unknown:
            raise self.error(unknown[0], "is not a known key", f"known keys here: {', '.join(sorted(known))}")
        return self

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.read)
        if unknown:
            raise self.error(unknown[0], "is not a known key",
                             f"known keys here: {', '.join(sorted(self.read))}")
