"""The notebooks' plumbing in one place: the smoke switch, where figures go, and the claims the prose makes.

A notebook's first lines should be about diffusion, so the things every course notebook needs live here:

- claims: `claim(holds, text)` checks a statement the prose makes about an output in the cell that makes it, so a
  full re-run (`make notebooks`) fails, naming the statement, when a result stops showing it; `se(p, n)` is the
  standard error a measured share carries, so that a comparison says how sure it is;
- smoke mode (`DDPM_LITE_FAST=1`, set by CI and `python -m tools.run_notebooks --fast`): smaller sizes, via `size`;
- figure output: `figure(name)` is the path a figure is written to. Only `tools/run_notebooks.py` in a full
  in-place run (`make notebooks`) sets `DDPM_LITE_ASSETS` to the repository's assets/ folder; otherwise every
  figure goes to a fresh temporary folder, so a learner running a notebook never changes a tracked file.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

FAST_ENV = "DDPM_LITE_FAST"
ASSETS_ENV = "DDPM_LITE_ASSETS"
_scratch: Path | None = None


class ClaimFailed(AssertionError):
    """A statement the notebook's prose makes about an output no longer holds."""


def claim(holds, text: str) -> None:
    """Check a statement the prose makes about this cell's output, and print it. In smoke mode (few samples, few
    steps) the statement is printed as not checked, since the sizes that carry it are not there."""
    if _smoke():
        print(f"claim (not checked in smoke mode): {text}")
    elif not bool(holds):
        raise ClaimFailed(f"this run no longer shows what the prose says: {text!r}. Rewrite the prose (and this "
                          f"claim) to what the output now shows, or find what changed the result.")
    else:
        print(f"claim holds: {text}")


def se(p: float, n: int) -> float:
    """The standard error of a share p measured on n independent samples: sqrt(p (1 - p) / n)."""
    return (p * (1 - p) / n) ** 0.5


def smoke() -> bool:
    """True in smoke mode (DDPM_LITE_FAST=1): CI's quick run with fewer samples and steps."""
    return _smoke()


def size(full, smoke=None):
    """`full` normally, `smoke` in smoke mode (sample counts, steps, lists of settings): `size(64, smoke=16)`."""
    return smoke if smoke is not None and _smoke() else full


def _smoke() -> bool:
    return os.environ.get(FAST_ENV) == "1"


def figure_dir() -> Path:
    """Where figures go: $DDPM_LITE_ASSETS if set (make notebooks), else one temporary folder per session."""
    global _scratch
    if os.environ.get(ASSETS_ENV):
        return Path(os.environ[ASSETS_ENV])
    if _scratch is None:
        _scratch = Path(tempfile.mkdtemp(prefix="ddpm_lite_figures_"))
    return _scratch


def figure(name: str) -> Path:
    """The path to write the figure `name` (e.g. "nb_05_steps.png") to; see figure_dir."""
    return figure_dir() / name


def savefig(fig, name: str) -> None:
    """Write a matplotlib figure as `name` (see figure_dir). Returns nothing, so that as a cell's last line it
    displays nothing (a path would show a machine path); `figure(name)` is where it went."""
    fig.savefig(figure(name), bbox_inches="tight")
