"""Cost per forward pass of UNet variants: which architecture could draw 64 digits with DDIM in about 2 s.

    python -m benchmarks.architectures [--threads 1] [--n 64] [--repeat 3]

Only cost is measured here, never sample quality: every variant is freshly initialised. For each: parameters,
GFLOP per forward of a batch of n (convolutions and matrix products), the wall and CPU time of that forward and of
a guided forward (batch 2n), best of --repeat with all variants interleaved, and the seconds that n digits with
DDIM 10 / 20 steps take in CPU time (steps x forward CPU time; the sampler's own arithmetic adds well under 1 %).
With --threads 1 the CPU time is the wall time the work takes on one free core, however busy the machine is;
two free cores take roughly half of it.
"""
from __future__ import annotations

import argparse
import sys

import torch
import torch.nn as nn

from benchmarks.timing import count_flops, format_table, machine_note, measure
from ddpm_lite.unet import ResBlock, UNet, UNetConfig, count_parameters

VARIANTS = {  # name: (UNetConfig overrides, drop the second GroupNorm of every residual block)
    "default: 32, (1,2,2), attention 7x7 + mid": ({}, False),
    "attention in the middle only": (dict(attention_levels=()), False),
    "one GroupNorm per residual block": ({}, True),
    "base 24": (dict(base_channels=24), False),
    "base 24, attention in the middle only": (dict(base_channels=24, attention_levels=()), False),
    "base 16, (1,2,2)": (dict(base_channels=16), False),
    "base 16, (1,2,4)": (dict(base_channels=16, channel_mults=(1, 2, 4)), False),
}


def build(overrides: dict, one_norm: bool) -> UNet:
    model = UNet(UNetConfig(**overrides)).eval()
    if one_norm:  # cost only: a network without norm2 would have to be trained to say anything about quality
        for block in model.modules():
            if isinstance(block, ResBlock):
                block.norm2 = nn.Identity()
    return model


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    models = {name: build(*spec) for name, spec in VARIANTS.items()}
    inputs = {}
    for b in (args.n, 2 * args.n):
        g = torch.Generator().manual_seed(0)
        inputs[b] = (torch.randn(b, 1, 28, 28, generator=g), torch.randint(0, 1000, (b,), generator=g),
                     torch.randint(0, 10, (b,), generator=g))
    calls = {(name, b): (lambda m=m, b=b: m(*inputs[b])) for name, m in models.items() for b in inputs}
    with torch.inference_mode():
        t = measure(calls, args.repeat)
    base = t[(next(iter(models)), args.n)].cpu_s
    rows = []
    for name, m in models.items():
        one, two = t[(name, args.n)], t[(name, 2 * args.n)]
        rows.append([name, f"{count_parameters(m):,}", f"{count_flops(calls[(name, args.n)]) / 1e9:.2f}",
                     f"{one.wall_s * 1000:.0f}", f"{one.cpu_s * 1000:.0f}", f"{one.cpu_s / base:.2f}",
                     f"{10 * one.cpu_s:.2f}", f"{20 * one.cpu_s:.2f}", f"{20 * two.cpu_s:.2f}"])
    print(machine_note(args.threads))
    print(format_table(["variant", "params", "GFLOP", "fwd ms", "CPU ms", "rel. CPU", "DDIM 10", "DDIM 20",
                        "DDIM 20 w>0"], rows))
    print(f"forward of a batch of {args.n} (guided: {2 * args.n}), best of {args.repeat}, interleaved; "
          f"DDIM columns: CPU seconds = steps x forward CPU time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
