"""A regular install, not an editable one: a wheel built from this repository, installed into a fresh virtual
environment, samples from a folder outside the checkout with no network, using the weights it carries."""
from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np

from conftest import REPO, missing

if not (REPO / "checkpoints" / "ddpm_mnist.pt").is_file():
    missing("no shipped checkpoint at checkpoints/ddpm_mnist.pt")


def run(*argv, **kw):
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=600, **kw)
    assert proc.returncode == 0, f"{argv}\n{proc.stdout}\n{proc.stderr}"
    return proc


def fresh_venv(root: Path) -> Path:
    """A new venv whose own site-packages comes first; this environment's site-packages (torch and the other
    dependencies, never reinstalled) is appended as a plain path, so its .pth files are not processed there."""
    run(sys.executable, "-m", "venv", "--without-pip", root)
    python = root / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())
    (site / "outer.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def source_copy(root: Path) -> Path:
    """What the wheel is built from (pyproject.toml names it all), copied: the build leaves the checkout alone."""
    import shutil
    root.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, root / name)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "ddpm_lite", root / "ddpm_lite", ignore=skip)
    shutil.copytree(REPO / "checkpoints", root / "checkpoints", ignore=skip)
    return root


def test_a_wheel_installed_without_e_samples_from_anywhere_offline(tmp_path):
    dist, src = tmp_path / "dist", source_copy(tmp_path / "src")
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", dist,
        src, cwd=tmp_path)
    wheel = next(dist.glob("ddpm_lite-*.whl"))
    python = fresh_venv(tmp_path / "venv")
    # --ignore-installed: the outer site-packages on this venv's path may hold make's regular install of ddpm_lite,
    # which pip would take as already satisfying the wheel
    run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "--ignore-installed",
        "-q", wheel)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DDPM_LITE_CHECKPOINT")}
    where = run(python, "-c", "import ddpm_lite, ddpm_lite.checkpoint as c; print(ddpm_lite.__file__); "
                              "print(c.default_checkpoint())", cwd=elsewhere, env=env).stdout.split()
    assert all(Path(p).is_relative_to(tmp_path / "venv") for p in where), where  # the wheel's, not the checkout's
    out = run(python, "-m", "ddpm_lite", "sample", "--n", "4", "--steps", "2", "--npy", "d.npy", "--no-progress",
              cwd=elsewhere, env=env)
    assert "wrote samples.png" in out.stdout and (elsewhere / "samples.png").is_file()
    digits = np.load(elsewhere / "d.npy")
    assert digits.shape == (4, 28, 28) and digits.dtype == np.uint8
    # and the evaluation classifier and the progress snapshots (notebook 03's slider) travel with it
    run(python, "-c", "from ddpm_lite.evaluation.classifier import load_classifier; load_classifier()", cwd=elsewhere,
        env=env)
    found = run(python, "-c", "from ddpm_lite import checkpoint as c; from ddpm_lite.lab import snapshots as s; "
                              "ps = s.shipped_snapshots(); c.load(ps[-1]); print(*ps)",
                cwd=elsewhere, env=env).stdout.split()
    shipped = sorted((REPO / "checkpoints" / "progress").glob("*.pt"))
    assert [Path(p).name for p in found] == [p.name for p in shipped] and shipped
    assert all(Path(p).is_relative_to(tmp_path / "venv") for p in found), found
    # the speed suite is not installed: the command says where it lives, in one line, and exits with status 2
    bench = subprocess.run([str(python), "-m", "ddpm_lite", "benchmark", "--smoke"], capture_output=True, text=True,
                           cwd=elsewhere, env=env, timeout=600)
    assert bench.returncode == 2 and bench.stdout == "", bench.stderr
    assert len(bench.stderr.strip().splitlines()) == 1 and "benchmarks/" in bench.stderr, bench.stderr
