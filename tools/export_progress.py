#!/usr/bin/env python
"""Write progress snapshots of one training run: small float16 EMA-only copies that notebook 03's slider decodes.

    python -m tools.export_progress snaps/step_000050.pt snaps/step_000450.pt ... --out checkpoints/progress

Each SNAPSHOT is a training checkpoint (a run's last.pt, or a copy of it taken during the run); it becomes
OUT/step_<step>.pt (lab.snapshots.snapshot_payload: float16 weights, configs, the source's recommended sampling
if any, and its step, images seen, epochs, minutes of training and loss). Pick about six points spread over the run:
each file is about 1.6 MB for the release architecture, and the shipped set stays under 10 MB. The folder holds one
run: step_*.pt files of an earlier export that this one does not write are removed. The command used belongs in
checkpoints/README.md.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ddpm_lite import checkpoint
from ddpm_lite.lab import snapshots


def same_run(ckpts: list[dict], paths: list[Path]) -> None:
    """Refuse snapshots of different models: the slider compares one run's weights over time."""
    for path, ckpt in zip(paths[1:], ckpts[1:]):
        for key in ("model_config", "schedule"):
            if ckpt[key] != ckpts[0][key]:
                raise SystemExit(f"error: {path} has another {key} than {paths[0]}; pass snapshots of one run")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("snapshots", nargs="+", type=Path, help="training checkpoints of one run (any order)")
    p.add_argument("--out", type=Path, default=Path("checkpoints/progress"), help="folder to write step_*.pt into")
    args = p.parse_args(argv)
    ckpts = [checkpoint.load(path) for path in args.snapshots]
    same_run(ckpts, args.snapshots)
    steps = [snapshots.training_progress(c).step for c in ckpts]
    if len(set(steps)) < len(steps):
        raise SystemExit(f"error: two snapshots have the same step ({sorted(steps)}); pass each point once")
    written = []
    for step, ckpt in sorted(zip(steps, ckpts), key=lambda pair: pair[0]):
        path = checkpoint.save(snapshots.snapshot_payload(ckpt), args.out / f"step_{step:06d}.pt")
        written.append(path)
        print(f"{path}  {path.stat().st_size / 1e6:.2f} MB  {snapshots.training_progress(ckpt).describe()}")
    for old in sorted(set(args.out.glob("step_*.pt")) - set(written)):
        old.unlink()
        print(f"removed {old} (not part of this export)")
    print(f"{len(written)} snapshots, {sum(p.stat().st_size for p in written) / 1e6:.2f} MB in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
