"""Which speed options pay off when sampling on a CPU, measured: memory layout, torch.compile, thread settings, and
the sampler's own overhead beside the network's.

    python -m benchmarks.speed_options [--threads 1] [--compile]

Forward passes of the default UNet on a batch of n, best of --repeat, variants interleaved; "max |diff|" is the
largest difference from the channels-first output (float rounding only). torch.compile is timed separately,
its first call with an empty compile cache, because on a 2-core machine it takes minutes.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.timing import format_table, machine_note, measure
from ddpm_lite.samplers import sample
from ddpm_lite.schedule import Schedule
from ddpm_lite.unet import UNet, UNetConfig


def layouts(model: UNet) -> dict:
    """The memory-layout variants of one set of weights."""
    nchw = copy.deepcopy(model)
    nchw.channels_last_cpu = False  # the instance attribute shadows the class default
    both = copy.deepcopy(model).to(memory_format=torch.channels_last)
    return {"channels-first (NCHW)": nchw, "channels-last activations (default)": model,
            "channels-last activations and weights": both}


class FreeNetwork(torch.nn.Module):
    """A network that costs nothing, so timing `sample` with it measures the sampler's own arithmetic."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config, self.scale = config, torch.nn.Parameter(torch.ones(()))

    def forward(self, x, t, labels=None):
        return x * self.scale


def layout_table(model, x, t, y, repeat: int) -> str:
    models = layouts(model)
    with torch.inference_mode():
        ref = models["channels-first (NCHW)"](x, t, y)
        times = measure({k: (lambda m=m: m(x, t, y)) for k, m in models.items()}, repeat)
        diffs = {k: (m(x, t, y) - ref).abs().max().item() for k, m in models.items()}
    base = times["channels-first (NCHW)"]
    rows = [[k, f"{v.wall_s * 1000:.0f}", f"{v.cpu_s * 1000:.0f}", f"{base.wall_s / v.wall_s:.2f}x",
             f"{base.cpu_s / v.cpu_s:.2f}x", f"{diffs[k]:.1e}"] for k, v in times.items()]
    return format_table([f"forward, batch {len(x)}", "ms", "CPU ms", "speed-up", "(CPU)", "max |diff|"], rows)


def compile_row(model, x, t, y, repeat: int) -> str:
    compiled = torch.compile(copy.deepcopy(model))
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as cache, torch.inference_mode():
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache  # a cold compile, as a user's first run pays it
        compiled(x, t, y)
        compile_s = time.perf_counter() - start
        times = measure({"eager": lambda: model(x, t, y), "compiled": lambda: compiled(x, t, y)}, repeat)
        diff = (compiled(x, t, y) - model(x, t, y)).abs().max().item()
        del os.environ["TORCHINDUCTOR_CACHE_DIR"]
    saved = times["eager"].wall_s - times["compiled"].wall_s
    pays_after = f"{compile_s / saved:.0f} forwards" if saved > 0 else "never"
    return (f"torch.compile: first call {compile_s:.0f} s; forward {times['eager'].wall_s * 1000:.0f} -> "
            f"{times['compiled'].wall_s * 1000:.0f} ms (CPU {times['eager'].cpu_s * 1000:.0f} -> "
            f"{times['compiled'].cpu_s * 1000:.0f} ms), max |diff| {diff:.1e}; pays for itself after {pays_after}")


THREAD_SETTINGS = [  # (torch threads, OMP_WAIT_POLICY): OpenMP reads the policy once, at start-up
    (1, None), (2, None), (2, "PASSIVE")]


def thread_probe(n: int, steps: int) -> int:
    """(In a subprocess.) Print the wall and CPU seconds of one warm DDIM run as JSON."""
    model, schedule = UNet(UNetConfig()).eval(), Schedule.cosine(1000)
    run = lambda: sample(model, schedule, n, steps=steps, generator=torch.Generator().manual_seed(0))  # noqa: E731
    print(json.dumps(measure({"run": run}, repeat=1)["run"]._asdict()))
    return 0


def thread_table(n: int, steps: int) -> str:
    """DDIM sampling under each thread setting, one fresh process each."""
    rows = []
    for threads, policy in THREAD_SETTINGS:
        env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
        env.update({"OMP_WAIT_POLICY": policy} if policy else {})
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parent.parent),
                                                          env.get("PYTHONPATH")]))
        argv = [sys.executable, "-m", __spec__.name, "--threads", str(threads), "--n", str(n),
                "--thread-probe", str(steps)]
        out = subprocess.run(argv, capture_output=True, text=True, env=env, check=True)
        t = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append([threads, policy or "default (active)", f"{t['wall_s']:.2f}", f"{t['cpu_s']:.2f}"])
    return format_table(["threads", "OMP_WAIT_POLICY", f"DDIM {steps} s", "CPU s"], rows) + (
        f"\n{n} digits, warm, one fresh process per row, in this order")


def overhead_row(model, schedule, n: int, x, t, y, repeat: int) -> str:
    free = FreeNetwork(model.config)
    steps = 50
    with torch.inference_mode():
        times = measure({"sampler": lambda: sample(free, schedule, n, steps=steps, generator=torch.Generator()),
                         "forward": lambda: model(x, t, y)}, repeat)
    per_step = times["sampler"].cpu_s / steps
    return (f"sampler arithmetic without the network: {per_step * 1000:.2f} CPU ms per DDIM step, "
            f"{per_step / times['forward'].cpu_s:.2%} of one forward's CPU time")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--compile", action="store_true", help="also time torch.compile (minutes on 2 cores)")
    p.add_argument("--thread-probe", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.thread_probe:
        return thread_probe(args.n, args.thread_probe)
    torch.manual_seed(0)
    model, schedule = UNet(UNetConfig()).eval(), Schedule.cosine(1000)
    for param in model.parameters():  # non-zero weights everywhere, so that max |diff| means something
        torch.nn.init.normal_(param, std=0.05)
    g = torch.Generator().manual_seed(0)
    x, t, y = torch.randn(args.n, 1, 28, 28, generator=g), torch.randint(0, 1000, (args.n,), generator=g), \
        torch.randint(0, 11, (args.n,), generator=g)
    print(machine_note(args.threads))
    print(layout_table(model, x, t, y, args.repeat))
    print(overhead_row(model, schedule, args.n, x, t, y, args.repeat))
    if args.compile:
        print(compile_row(model, x, t, y, args.repeat))
    print(thread_table(args.n, steps=10))
    return 0


if __name__ == "__main__":
    sys.exit(main())
