"""Static twins of the sliders in widgets.py, for pages without a kernel (GitHub, the README, nbviewer).

Each draws what its slider shows, from the same functions and the same seeds: a labelled PNG strip or a looping GIF.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..data import check_images
from ..diffusion import noise_to_step
from ..schedule import Schedule
from .viz import grid_uint8, save_gif, upscale, write_gif
from .widgets import (digit_noise, guided_samples, learning_rows, reverse_picture, reverse_trajectory,
                      steps_samples)


def _save_rows(path, rows, row_labels, col_labels=(), cell=30) -> Path:
    """Labelled image rows (uint8 grids of cell-wide tiles) as one PNG figure."""
    from matplotlib.figure import Figure
    h, w = rows[0].shape[:2]
    fig = Figure(figsize=(w / 36 + 0.8, len(rows) * (h / 36 + 0.1) + 0.3), dpi=100)
    for j, (ax, row, label) in enumerate(zip(fig.subplots(len(rows), 1, squeeze=False)[:, 0], rows, row_labels)):
        ax.imshow(row, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_yticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center")
        ax.set_xticks([2 + cell * i + (cell - 2) / 2 for i in range(len(col_labels))] if j == 0 else [])
        ax.set_xticklabels(col_labels if j == 0 else [])
        ax.xaxis.tick_top()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    return Path(path)


def save_forward_strip(path, images, schedules=("linear", "cosine"), ts=(0, 50, 100, 250, 500, 750, 1000),
                       T=1000, seed=0, digits=2) -> Path:
    """Static twin of forward_slider: per schedule and digit, a row of x_t at the paper's t in ts (same noise)."""
    x0 = check_images(images)[:digits]
    eps = digit_noise(x0, seed)
    rows, names = [], []
    for s in (s if isinstance(s, Schedule) else Schedule.build(s, T) for s in schedules):
        for i in range(len(x0)):
            frames = torch.cat([noise_to_step(s, x0[i:i + 1], t, eps[i:i + 1]) for t in ts])  # (len(ts), C, H, W)
            rows.append(grid_uint8(frames, nrow=len(ts)))
            names.append(s.kind)
    return _save_rows(path, rows, names, [f"t={t}" for t in ts], cell=x0.shape[-1] + 2)


def save_forward_gif(path, images, schedule="cosine", T=1000, frames=41, seed=0, nrow=8) -> Path:
    """Static twin of forward_slider: the digits noised from t = 0 to T in `frames` even steps."""
    s = schedule if isinstance(schedule, Schedule) else Schedule.build(schedule, T)
    x0 = check_images(images)
    eps = digit_noise(x0, seed)
    ts = np.linspace(0, s.T, frames).round().astype(int)
    return save_gif(torch.stack([noise_to_step(s, x0, int(t), eps) for t in ts]), path, nrow=nrow, duration_ms=80)


def save_reverse_gif(path, model, schedule=None, sampler=None, steps=None, n=8, labels=None, seed=0,
                     scale=2, duration_ms=80) -> Path:
    """Static twin of reverse_slider: its pictures for k = 0..S as a looping GIF; model may be a Trajectory."""
    traj = reverse_trajectory(model, schedule, sampler, steps, n, labels, seed)
    nrow = min(len(traj.x), 4)
    return write_gif([upscale(reverse_picture(traj, k, nrow), scale) for k in range(len(traj.timesteps) + 1)],
                     path, duration_ms)


def save_guidance_strip(path, model, schedule, digit=0, scales=(0, 0.5, 1, 2, 3, 4), steps=10, seed=0, n=8) -> Path:
    """Static twin of guidance_slider: one row of n samples per guidance scale, same seed in every row."""
    rows = [grid_uint8(guided_samples(model, schedule, digit, w, n, steps, seed), nrow=n) for w in scales]
    return _save_rows(path, rows, [f"w = {w:g}" for w in scales])


def save_learning_strip(path, snapshots=None, n=20, labels="all", seed=0, settings=None, nrow=10) -> Path:
    """Static twin of learning_slider: one row per progress snapshot, labelled with its step and epochs, the same
    x_T, noise and labels in every row; the columns are headed by the labels of the first line of digits."""
    rows = learning_rows(snapshots, n, labels, seed, settings, nrow)
    first = rows[0][0].labels
    heads = [] if first is None else [str(int(y)) for y in first[:nrow]]
    names = [_progress_label(snap.progress) for snap, _ in rows]
    return _save_rows(path, [grid for _, grid in rows], names, heads, cell=rows[0][0].x.shape[-1] + 2)


def save_steps_strip(path, models: dict, schedule, steps=(1, 2, 4, 8), n=8, labels="all", seed=0) -> Path:
    """Static twin of steps_slider: for each number of steps, one row of n samples per entry name: (model, settings)
    of `models`, all from the same x_T and labels; with labels "all" (in turn) the columns are headed by them."""
    drawn = steps_samples(models, schedule, steps, n, labels, seed)
    rows = [grid_uint8(drawn[name, k], nrow=n) for k in steps for name in models]
    names = [f"{name}\n{k} step{'s' if k > 1 else ''}" for k in steps for name in models]
    classes = next(iter(models.values()))[0].config.num_classes
    heads = [str(i % classes) for i in range(n)] if isinstance(labels, str) and labels == "all" else []
    return _save_rows(path, rows, names, heads, cell=drawn[next(iter(drawn))].shape[-1] + 2)


def _progress_label(p) -> str:
    """"step 250 / 0.53 epochs / 2.7 min" on three lines (no epochs for a dataset of unknown size)."""
    epochs = [f"{p.epochs:.2f} epochs"] if p.epochs is not None else []
    return "\n".join([f"step {p.step:,}", *epochs, f"{p.minutes:.1f} min"])
