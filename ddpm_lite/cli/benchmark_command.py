"""`python -m ddpm_lite benchmark`: speed against diffusers (training, sampling latency, share of machine peak)."""
from __future__ import annotations

import argparse

import torch

from ..errors import UsageError
from ..speed import main as run_suite
from .args import Help, int_tuple, number, positive_int

NAME, HELP = "benchmark", "speed against diffusers: training, sampling latency, share of machine peak"
SECTIONS = ("train", "sample", "distilled", "efficiency")


def add_arguments(sub) -> None:
    p = sub.add_parser(NAME, help=HELP, formatter_class=Help)
    p.add_argument("--threads", type=positive_int, default=torch.get_num_threads(),
                   help="torch threads (default: all cores; use 1 on a machine busy with other work)")
    p.add_argument("--n", type=positive_int, default=64, help="digits per sampling run and forward batch")
    p.add_argument("--batch", type=positive_int, default=128, help="training batch size")
    p.add_argument("--repeat", type=positive_int, default=3, help="timed repeats of each short measurement")
    p.add_argument("--ddim-steps", type=int_tuple, default=(50, 20, 10), help="default: 50,20,10")
    p.add_argument("--student-steps", type=positive_int, default=4,
                   help="the distilled student's steps in the 'distilled' section (against DDIM 20)")
    p.add_argument("--ddpm-prefix", type=positive_int, default=10,
                   help="DDPM 1000 steps is extrapolated from this many measured steps")
    p.add_argument("--guidance", type=number(float, 0), default=2.0, help="guidance weight w of the guided rows")
    p.add_argument("--diffusers-widths", type=int_tuple, default=None,
                   help="UNet2DModel block_out_channels (default: the widths that match our parameter count)")
    p.add_argument("--only", default=",".join(SECTIONS), help=f"sections to run (default: all: {','.join(SECTIONS)})")
    p.add_argument("--no-diffusers", action="store_true", help="measure ours only")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    p.add_argument("--smoke", action="store_true", help="tiny model and sizes: checks the code runs, measures nothing")
    p.add_argument("--probe-train", default=None, help=argparse.SUPPRESS)  # speed.train_memory's subprocess


def check_options(args) -> None:
    if not args.ddim_steps or not all(1 <= s <= 1000 for s in args.ddim_steps):
        raise UsageError(f"--ddim-steps must be numbers of steps between 1 and 1000, got {args.ddim_steps}")
    unknown = set(args.only.split(",")) - set(SECTIONS)
    if unknown:
        raise UsageError(f"unknown --only section(s) {', '.join(sorted(unknown))}; choose from {','.join(SECTIONS)}")


def run(args) -> int:
    check_options(args)
    return run_suite(args)
