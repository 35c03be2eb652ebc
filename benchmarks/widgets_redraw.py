"""How long a slider move takes in Python: the widgets' redraw against rebuilding a matplotlib figure per move.

    python -m benchmarks.widgets_redraw [--moves 200]

Prints the median and 95th percentile of the redraw (draw + PNG encoding + setting Image.value) for the three
sliders, and the same for the naive approach (a fresh matplotlib figure with the digit, the curves and the
histogram, saved to PNG) measured in the same run. Outside a kernel the widgets send nothing, so these are the
Python costs; the round trip to the page (key press to new picture) is in test-artifacts/browser/timings.json,
written by tests/browser/test_e2e.py.
"""
from __future__ import annotations

import argparse
import io
import time

import numpy as np
import torch


def timed(moves):
    """Wall and CPU milliseconds of each call; CPU time stays honest on a machine busy with other work."""
    wall, cpu = [], []
    for move in moves:
        w0, c0 = time.perf_counter(), time.process_time()
        move()
        wall.append(1000 * (time.perf_counter() - w0))
        cpu.append(1000 * (time.process_time() - c0))
    return wall, cpu


def report(name, wall, cpu):
    print(f"{name:30s} wall median {np.median(wall):7.2f} ms  p95 {np.percentile(wall, 95):7.2f} ms   "
          f"CPU median {np.median(cpu):7.2f} ms   (n={len(wall)})")
    return np.median(cpu)


def setter(widget, value):
    return lambda: setattr(widget.slider, "value", value)


def matplotlib_redraw(w, t):
    """The baseline: what a slider callback that redraws a matplotlib figure would pay per move."""
    import matplotlib.pyplot as plt
    from ddpm_lite.diffusion import noise_to_step
    from ddpm_lite.lab.widgets import digit_noise
    s, x0 = w.schedules[w.schedule_menu.value], w.x0[:1]
    xt = noise_to_step(s, x0, t, digit_noise(x0, w.seed))[0, 0].numpy()
    fig, ax = plt.subplots(1, 3, figsize=(9, 2.4))
    ax[0].imshow(xt, cmap="gray", vmin=-1, vmax=1)
    ab = s.alpha_bars.numpy()
    ax[1].plot(ab)
    ax[1].plot([max(t - 1, 0)], [ab[max(t - 1, 0)]], "ro")
    ax[2].hist(xt.ravel(), bins=48, range=(-4, 4))
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def main():
    import matplotlib
    matplotlib.use("Agg")
    from ddpm_lite import checkpoint, widgets
    from ddpm_lite.schedule import Schedule
    from ddpm_lite.unet import UNet, UNetConfig
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--moves", type=int, default=200)
    p.add_argument("--threads", type=int, default=1, help="torch threads (tiny convolutions: 1 is fastest on 2 cores)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    digits = torch.where(torch.rand(8, 1, 28, 28) < 0.2, 1.0, -1.0)

    w = widgets.forward_slider(digits)
    fast = report("forward slider move", *timed(setter(w, int(t)) for t in rng.integers(0, 1001, args.moves)))
    slow = report("matplotlib figure per move", *timed(
        (lambda t=int(t): matplotlib_redraw(w, t)) for t in rng.integers(0, 1001, max(10, args.moves // 10))))
    print(f"  -> the forward slider redraws {slow / fast:.0f}x faster (CPU time) than a matplotlib redraw")

    if checkpoint.default_checkpoint().is_file():
        model, schedule = checkpoint.load_model()
    else:  # an untrained network of the release's shape: only the plumbing is timed here
        model, schedule = UNet(UNetConfig()).eval(), Schedule.cosine(1000)
    print(f"model: {checkpoint.default_checkpoint() if checkpoint.default_checkpoint().is_file() else 'untrained'}")
    built = []
    (wall,), (cpu,) = timed([lambda: built.append(widgets.reverse_slider(model, schedule, steps=50, n=8))])
    print(f"reverse slider built (50 DDIM steps, 51 frames encoded): {wall / 1000:.2f} s wall, {cpu / 1000:.2f} s CPU")
    report("reverse slider move", *timed(setter(built[0], int(k)) for k in rng.integers(0, 51, args.moves)))

    g = widgets.guidance_slider(model, schedule, scales=(0, 2), steps=10)
    report("guidance slider, new (digit, w)", *timed([setter(g, 2.0)]))
    report("guidance slider move, cached", *timed(setter(g, (0.0, 2.0)[i % 2]) for i in range(args.moves)))


if __name__ == "__main__":
    main()
