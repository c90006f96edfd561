"""``smisbench`` for subprocess tests: the real command line, with provenance that does not import torch.

Run as ``python tests/run_cli.py ARGS...`` (tests/ is then on the path, so ``--executor
benchmark_fakes:recorded`` works); only the environment record is the fake one.
"""

from __future__ import annotations

import sys

import benchmark_fakes

import smisbench.provenance

smisbench.provenance.environment = benchmark_fakes.fake_environment

if __name__ == "__main__":
    from smisbench.cli import main

    sys.exit(main(sys.argv[1:]))
