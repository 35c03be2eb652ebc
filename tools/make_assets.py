"""Regenerate the README/model-card figures in assets/ from the shipped checkpoint.

    python -m tools.make_assets [--checkpoint checkpoints/ddpm_mnist.pt] [--out assets]

Writes samples.png (64 digits with the checkpoint's recommended settings, as `python -m ddpm_lite sample`),
samples_no_label.png (64 digits from the "no label" class, plain DDIM 50), samples_by_class.png (one row per digit, guidance w=2), loss_curve.png (from the checkpoint's
training history, after the history of the run it was fine-tuned from, if any) and reverse.gif (the reverse
process, DDPM 1000 steps, a random label each).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ddpm_lite import checkpoint, sample, sample_trajectory
from ddpm_lite.samplers import resolve_labels
from ddpm_lite.lab.viz import plot_loss, save_gif, save_grid


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=str(checkpoint.default_checkpoint()))
    p.add_argument("--out", default="assets")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--earlier", default=str(checkpoint.shipped("history_stage1.json")),
                   help="JSON history of the run the checkpoint was fine-tuned from (--init), drawn before it")
    args = p.parse_args(argv)
    out = Path(args.out)
    ckpt = checkpoint.load(args.checkpoint)
    model, schedule = checkpoint.build(ckpt)
    gen = lambda: torch.Generator().manual_seed(args.seed)  # noqa: E731

    x = sample(model, schedule, 64, generator=gen())  # the checkpoint's settings, as `python -m ddpm_lite sample`
    print("wrote", save_grid(x, out / "samples.png", nrow=8))
    plain = dict(sampler="ddim", steps=50, eta=0.0, eps_scaling=1.0)
    x = sample(model, schedule, 64, labels="none", generator=gen(), **plain)  # the "no label" class
    print("wrote", save_grid(x, out / "samples_no_label.png", nrow=8))

    labels = torch.arange(10).repeat_interleave(10)  # (100,): row k is digit k
    x = sample(model, schedule, 100, labels=labels, guidance=2.0, generator=gen(), **plain)
    print("wrote", save_grid(x, out / "samples_by_class.png", nrow=10))

    random_labels = resolve_labels("random", 64, model.config.num_classes, args.seed)  # as `--label random`
    traj = sample_trajectory(model, schedule, 16, sampler="ddpm", labels=random_labels[:16], generator=gen(),
                             record=set(range(0, 1000, 20)))
    frames = torch.cat([traj.xt, traj.x[None]])  # (S+1, 16, 1, 28, 28): x_t from pure noise to the final digits
    print("wrote", save_gif(frames, out / "reverse.gif", nrow=4, duration_ms=80))

    if ckpt.get("history"):
        import matplotlib
        matplotlib.use("Agg")
        history, start = checkpoint.training_history(ckpt, args.earlier)
        ax = plot_loss(history, smooth=5)
        if start:
            ax.axvline(start, color="0.5", ls="--", lw=1)
            ax.text(start, ax.get_ylim()[1], " fine-tuning (--init)", va="top", fontsize=8, color="0.3")
        ax.figure.tight_layout()
        ax.figure.savefig(out / "loss_curve.png", dpi=100)
        print("wrote", out / "loss_curve.png")


if __name__ == "__main__":
    main()
