"""Benchmarks run under the process settings every ``smisbench`` command uses (see ``smisbench/cli.py``)."""

from smisbench.host_memory import keep_freed_memory

keep_freed_memory()
