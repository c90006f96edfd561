"""The data files that ship inside the package (value catalog, paper numbers, zoo definition, specs), read one way.

They are read through ``importlib.resources``, so an installed wheel and a source checkout behave the same.
This module imports nothing of the suite, so any package may use it.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from importlib.resources.abc import Traversable


def packaged_file(package: str, *parts: str) -> Traversable:
    """The shipped file (or folder) ``parts`` below ``package``."""
    return resources.files(package).joinpath(*parts)


def packaged_text(package: str, *parts: str) -> str:
    return packaged_file(package, *parts).read_text(encoding="utf-8")


def packaged_toml(package: str, *parts: str) -> dict:
    """A shipped TOML file as a dict (the suite's own files: a syntax error there is a bug, not a user's
    mistake, so it is not dressed as one)."""
    return tomllib.loads(packaged_text(package, *parts))
