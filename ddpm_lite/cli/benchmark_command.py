"""`python -m ddpm_lite benchmark`: speed against diffusers, a suite that is not installed with the package.

The suite lives in the repository's benchmarks/ (benchmarks/versus_diffusers.py, which alone imports diffusers).
From a checkout (this folder or one above it holds benchmarks/) the command runs it with the flags given, as
`python -m benchmarks.versus_diffusers [flags]` would; `--help` lists them. Elsewhere (an installed wheel) it says
where the suite is, in one line, and exits with status 2.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from ..errors import UsageError
from .args import Help

NAME, HELP = "benchmark", "speed against diffusers (the suite in a checkout's benchmarks/; --help lists its flags)"
SUITE = "benchmarks.versus_diffusers"
SUITE_FILE = Path("benchmarks", "versus_diffusers.py")


def add_arguments(sub) -> None:
    # prefix_chars "+": every flag after `benchmark`, --help included, is the suite's, passed on as it is
    p = sub.add_parser(NAME, help=HELP, formatter_class=Help, add_help=False, prefix_chars="+")
    p.add_argument("suite_args", nargs=argparse.REMAINDER, help="the suite's flags")


def checkout(start: Path) -> Path | None:
    """The folder, start or one above it, that holds the benchmark suite; None outside a checkout."""
    return next((folder for folder in (start, *start.parents) if (folder / SUITE_FILE).is_file()), None)


def run(args) -> int:
    root = checkout(Path.cwd().resolve())
    if root is None:
        raise UsageError(f"the benchmark suite is not installed with ddpm_lite: it lives in the repository's "
                         f"benchmarks/; from a clone of ddpm-lite run `python -m {SUITE} [flags]` (or this "
                         f"command) in its folder")
    return subprocess.run([sys.executable, "-m", SUITE, *args.suite_args], cwd=root).returncode
