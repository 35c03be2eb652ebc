"""`python -m ddpm_lite sample`: draw digits from a checkpoint into a PNG grid, and optionally a GIF and an .npy.

With no flags it samples the way the checkpoint recommends (its "sampling" settings; the model card says why).
"""
from __future__ import annotations

import torch

from ..lab.viz import save_gif, save_grid, to_npy
from ..samplers import sample, sample_trajectory
from .args import Help, add_sampling, check_writable, model_for

NAME, HELP = "sample", "generate images from a checkpoint (default: the shipped one)"
DESCRIPTION = ("Draw digits. Every sampling flag left out takes the checkpoint's recommended setting (the shipped "
               "checkpoint recommends the fastest setting that meets the model card's quality bar), so the shortest "
               "call draws the best digits for their cost; a flag given replaces that one setting.")


def add_arguments(sub) -> None:
    p = sub.add_parser(NAME, help=HELP, description=DESCRIPTION, formatter_class=Help)
    add_sampling(p, 64, "number of samples")
    p.add_argument("--out", default="samples.png", help="PNG grid")
    p.add_argument("--gif", default=None, help="also write a GIF of the reverse process (of the first batch)")
    p.add_argument("--npy", default=None, help="also write uint8 samples (N, 28, 28), e.g. for `evaluate --npy`")
    p.add_argument("--nrow", type=int, default=None, help="images per grid row (default: 8, or 10 with --label all)")


def run(args) -> int:
    check_writable(args.out, args.gif, args.npy)
    model, schedule, labels = model_for(args)
    g = torch.Generator().manual_seed(args.seed)
    if args.gif:  # the first batch with its trajectory, then the rest: the same draws as without --gif
        first = min(args.n, args.batch_size)
        traj = sample_trajectory(model, schedule, first, labels=_part(labels, 0, first), generator=g,
                                 progress=not args.no_progress)
        rest = [sample(model, schedule, args.n - first, labels=_part(labels, first, args.n), generator=g,
                       batch_size=args.batch_size, progress=not args.no_progress)] if args.n > first else []
        x = torch.cat([traj.x, *rest])
    else:
        x = sample(model, schedule, args.n, labels=_part(labels, 0, args.n), generator=g, batch_size=args.batch_size,
                   progress=not args.no_progress)
    nrow = args.nrow or (10 if args.label == "all" else 8)
    print(f"wrote {save_grid(x, args.out, nrow=nrow)}")
    if args.gif:
        frames = torch.cat([traj.xt, traj.x[None]])  # x_t at every step, then the final sample
        print(f"wrote {save_gif(frames[gif_frames(len(frames))], args.gif, nrow=nrow)}")
    if args.npy:
        import numpy as np
        np.save(args.npy, to_npy(x))
        print(f"wrote {args.npy}")
    return 0


def _part(labels, start: int, stop: int):
    return "none" if labels is None else labels[start:stop]  # "none": no label, not the checkpoint's choice


def gif_frames(n: int, most: int = 60) -> list:
    """At most `most` frames, always keeping the first and the last."""
    if n <= most:
        return list(range(n))
    return torch.linspace(0, n - 1, most).round().long().unique().tolist()
