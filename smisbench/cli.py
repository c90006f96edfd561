"""The ``smisbench`` command. Each subpackage adds its own subcommands from ``<subpackage>/cli.py``."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import smisbench
from smisbench.errors import SmisbenchError


def _command_modules() -> list[str]:
    """Every ``smisbench.<sub>.cli`` module; subpackages register their commands without editing this file."""
    names = []
    for info in pkgutil.iter_modules(smisbench.__path__):
        if info.ispkg and importlib.util.find_spec(f"smisbench.{info.name}.cli") is not None:
            names.append(f"smisbench.{info.name}.cli")
    return sorted(names)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smisbench", description=smisbench.__doc__)
    parser.add_argument("--version", action="version", version=smisbench.__version__)
    parser.add_argument("--no-progress", dest="global_no_progress", action="store_true",
                        help="no progress bars in any command (same as SMISBENCH_NO_PROGRESS=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _command_modules():
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from smisbench.host_memory import keep_freed_memory
    from smisbench.progress import silenced_while

    keep_freed_memory()  # every command: large CPU tensors reuse freed memory instead of faulting pages in
    try:
        with silenced_while(args.global_no_progress or getattr(args, "no_progress", False)):
            code = args.func(args)
    except SmisbenchError as err:
        print(f"smisbench {args.command}: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (`smisbench metrics | head`): nothing left to say
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print(f"smisbench {args.command}: interrupted; finished work is saved, run the same command again to resume",
              file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
