"""ddpm-lite against diffusers on a CPU: training throughput and memory, sampling latency, share of machine peak.

    python -m benchmarks.versus_diffusers [--threads 1] [--ddim-steps 20,10] [--only sample] [--no-diffusers]
    python -m ddpm_lite benchmark [the same flags]          the same, from a checkout

The baseline is diffusers' UNet2DModel in our block layout (one residual block per level, single-head attention
at our attention levels and in the middle, the same GroupNorm groups, a "no label" class embedding) at the widths
whose parameter count comes closest to ours, on 28x28 inputs as they are (this layout needs no padding to 32),
sampled with the loop of diffusers' pipelines around DDIMScheduler / DDPMScheduler. Both are freshly initialised:
speed does not depend on the weights. Every ratio compares figures measured in this run, interleaved.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F

from benchmarks.timing import (count_flops, format_table, load_average, machine_note, machine_peak, measure,
                               peak_rss_mb, rss_mb)
from ddpm_lite.cli.args import Help, Parser, int_tuple, number, positive_int
from ddpm_lite.errors import DdpmLiteError, UsageError
from ddpm_lite.samplers import sample
from ddpm_lite.schedule import Schedule
from ddpm_lite.unet import UNet, UNetConfig, count_parameters

SMOKE = UNetConfig(base_channels=8, channel_mults=(1, 2), attention_levels=(1,), groups=4, image_size=8)


class Contender(NamedTuple):
    name: str
    module: torch.nn.Module
    forward: Callable  # (x, t, labels) -> eps
    sample: Callable  # (n, *, sampler, steps, labels, guidance, generator) -> x


def ours(cfg: UNetConfig) -> Contender:
    model, schedule = UNet(cfg), Schedule.cosine(1000)
    return Contender("ddpm-lite", model, model, lambda n, **kw: sample(model, schedule, n, **kw))


def diffusers_unet(cfg: UNetConfig, widths: tuple):
    from diffusers import UNet2DModel
    levels = range(len(widths))
    return UNet2DModel(
        sample_size=cfg.image_size, in_channels=cfg.in_channels, out_channels=cfg.in_channels,
        block_out_channels=tuple(widths), layers_per_block=cfg.num_res_blocks, norm_num_groups=cfg.groups,
        down_block_types=tuple("AttnDownBlock2D" if i in cfg.attention_levels else "DownBlock2D" for i in levels),
        up_block_types=tuple("AttnUpBlock2D" if i in cfg.attention_levels else "UpBlock2D" for i in reversed(levels)),
        attention_head_dim=None,  # one head per attention layer, as ours
        num_class_embeds=cfg.num_classes + 1 if cfg.num_classes else None)  # + the "no label" class


@torch.inference_mode()
def diffusers_sample(unet, cfg: UNetConfig, n: int, *, sampler, steps, labels, guidance, generator):
    """The loop of diffusers' pipelines; classifier-free guidance as one batch of 2n, like ours."""
    from diffusers import DDIMScheduler, DDPMScheduler
    scheduler = (DDIMScheduler if sampler == "ddim" else DDPMScheduler)(
        num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", clip_sample=True)  # our cosine schedule
    scheduler.set_timesteps(steps)
    null = torch.full((n,), cfg.num_classes)
    guided = labels is not None and guidance > 0
    y = torch.cat([labels, null]) if guided else (null if labels is None else labels)
    x = torch.randn(n, cfg.in_channels, cfg.image_size, cfg.image_size, generator=generator)
    for t in scheduler.timesteps:
        eps = unet(torch.cat([x, x]) if guided else x, t, class_labels=y).sample
        if guided:
            eps_c, eps_u = eps.chunk(2)
            eps = (1 + guidance) * eps_c - guidance * eps_u
        x = scheduler.step(eps, t, x, generator=generator).prev_sample
    return x


def matched_widths(cfg: UNetConfig) -> tuple:
    """The UNet2DModel widths whose parameter count comes closest to our UNet's: multiples of cfg.groups, from half
    of our width to all of it, equal where our levels' widths are equal and never narrower deeper down.

    UNet2DModel's up blocks hold one residual block more than ours, so equal widths are larger: (32, 64, 64) gives
    it 1.11 M parameters; the default UNetConfig's match is (24, 56, 56), 817,529 against our 799,873."""
    target, mults = count_parameters(UNet(cfg)), sorted(set(cfg.channel_mults))
    options = [range(max(cfg.groups, cfg.base_channels * m // 2 // cfg.groups * cfg.groups),
                     cfg.base_channels * m + 1, cfg.groups) for m in mults]
    shapes = [dict(zip(mults, ws)) for ws in itertools.product(*options) if list(ws) == sorted(ws)]
    widths = [tuple(shape[m] for m in cfg.channel_mults) for shape in shapes]
    return min(widths, key=lambda ws: abs(count_parameters(diffusers_unet(cfg, ws)) - target))


def theirs(cfg: UNetConfig, widths: tuple) -> Contender:
    unet = diffusers_unet(cfg, widths)
    return Contender("diffusers", unet, lambda x, t, y: unet(x, t, class_labels=y).sample,
                     lambda n, **kw: diffusers_sample(unet, cfg, n, **kw))


def contenders(args, cfg: UNetConfig) -> tuple[list, str]:
    """[ours, diffusers] or [ours] with the reason diffusers is left out."""
    if args.no_diffusers:
        return [ours(cfg)], "diffusers left out (--no-diffusers)"
    try:
        import diffusers
    except ImportError:
        return [ours(cfg)], "diffusers is not installed (pip install 'ddpm-lite[bench]'): its columns are skipped"
    widths = args.diffusers_widths or (matched_widths(cfg) if cfg == UNetConfig() else cfg_widths(cfg))
    return [ours(cfg), theirs(cfg, widths)], f"diffusers {diffusers.__version__}, UNet2DModel widths {widths}"


def cfg_widths(cfg: UNetConfig) -> tuple:
    return tuple(cfg.base_channels * m for m in cfg.channel_mults)


def batch(cfg: UNetConfig, n: int, seed: int = 0):
    """A fixed (x_t, t, labels, eps) batch; labels include the "no label" class, as in training."""
    g = torch.Generator().manual_seed(seed)
    shape = (n, cfg.in_channels, cfg.image_size, cfg.image_size)
    return (torch.randn(shape, generator=g), torch.randint(0, 1000, (n,), generator=g),
            torch.randint(0, cfg.num_classes + 1, (n,), generator=g), torch.randn(shape, generator=g))


def train_step(c: Contender, data) -> Callable:
    """Eq. 14 on a fixed batch: forward, backward, AdamW step; the same code for every contender."""
    xt, t, y, eps = data
    c.module.train()
    opt = torch.optim.AdamW(c.module.parameters(), lr=1e-4)

    def step():
        loss = F.mse_loss(c.forward(xt, t, y), eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def probe_train_memory(args, cfg: UNetConfig) -> int:
    """(In a fresh subprocess.) Print resident memory before and the peak after a few training steps, as JSON."""
    c = {c.name: c for c in contenders(args, cfg)[0]}[args.probe_train]
    step = train_step(c, batch(cfg, args.batch))
    before = rss_mb()
    for _ in range(2):
        step()
    print(json.dumps({"before_mb": before, "peak_mb": peak_rss_mb()}))
    return 0


def train_memory(args, name: str) -> str:
    """Peak RSS growth of training, measured in a subprocess of its own so the configurations do not mix."""
    argv = [sys.executable, "-m", __spec__.name, "--probe-train", name, "--threads", str(args.threads),
            "--batch", str(args.batch)]
    argv += ["--smoke"] * args.smoke + ["--diffusers-widths", ",".join(map(str, args.diffusers_widths or ()))]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),  # this very suite and ddpm_lite
           "MALLOC_MMAP_THRESHOLD_": "65536"}  # glibc: large blocks come from mmap and go back on free, so RSS follows
    # the live tensors; with glibc's adaptive threshold the same run peaks anywhere within about +-100 MB
    out = subprocess.run(argv, capture_output=True, text=True, env=env)
    if out.returncode:
        return f"failed: {out.stderr.strip().splitlines()[-1]}"
    m = json.loads(out.stdout.strip().splitlines()[-1])
    return f"{m['peak_mb'] - m['before_mb']:.0f}"


def versus(times: dict, cs: list) -> str:
    """How many times faster ours is than diffusers: wall time, then CPU time in brackets."""
    a, b = (times[c.name] for c in cs)
    return f"{b.wall_s / a.wall_s:.2f}x ({b.cpu_s / a.cpu_s:.2f}x)"


def train_section(args, cfg, cs) -> str:
    data = batch(cfg, args.batch)
    times = measure({c.name: train_step(c, data) for c in cs}, args.repeat)
    rows = []
    for c in cs:
        gflop = count_flops(lambda c=c: c.forward(*data[:3])) / args.batch / 1e9
        memory = "-" if args.no_memory else train_memory(args, c.name)
        images_per_s = args.batch / times[c.name].wall_s
        rows.append([c.name, f"{count_parameters(c.module):,}", f"{gflop:.3f}", f"{images_per_s:.1f}",
                     f"{times[c.name].cpu_s * 1000:.0f}", memory])
    text = format_table(["training step", "params", "fwd GFLOP/img", "images/s", "CPU ms/step", "peak RSS +MB"], rows)
    if len(cs) == 2:
        text += f"\nthroughput ddpm-lite / diffusers: {versus(times, cs)}, from wall time (from CPU time)"
    return text + (f"\nbatch {args.batch}, fwd + bwd + AdamW on a fixed batch, best of {args.repeat}; peak RSS: "
                   f"VmHWM after 2 steps minus RSS before them,\none fresh process per row, glibc mmap threshold "
                   f"64 KiB")


def sample_section(args, cfg, cs) -> str:
    labels = torch.arange(args.n) % 10
    runs = [("DDPM 1000", "ddpm", args.ddpm_prefix)] + [(f"DDIM {s}", "ddim", s) for s in args.ddim_steps]
    for c in cs:  # warm: allocator, oneDNN kernels and the scheduler code paths have run once
        c.sample(args.n, sampler="ddim", steps=2, labels=labels, guidance=1.0, generator=torch.Generator())
    rows = []
    for name, sampler, steps in runs:
        scale = 1000 / steps if sampler == "ddpm" else 1.0  # DDPM: a measured prefix, extrapolated to 1000 steps
        for w in (0.0, args.guidance):
            fns = {c.name: (lambda c=c: c.sample(args.n, sampler=sampler, steps=steps, labels=labels, guidance=w,
                                                 generator=torch.Generator().manual_seed(0))) for c in cs}
            t = measure(fns, repeat=1, warmup=0)
            seconds = [f"{t[c.name].wall_s * scale:.2f} ({t[c.name].cpu_s * scale:.2f})" for c in cs]
            rows.append([name, f"{w:g}", *seconds] + ([versus(t, cs)] if len(cs) == 2 else []))  # lazy: no diffusers, no ratio
    headers = [f"{args.n} digits", "w"] + [f"{c.name} s (CPU s)" for c in cs] + ["diffusers / ours"] * (len(cs) == 2)
    return format_table(headers, rows) + (
        f"\nwall seconds end to end, warm, one run each, process CPU seconds in brackets; DDPM 1000 = "
        f"{args.ddpm_prefix} strided steps\nmeasured, times {1000 / args.ddpm_prefix:g}; w > 0: conditional and "
        f"unconditional passes in one batch")


def distilled_section(args, cfg, cs) -> str:
    """A distilled student's few steps (its trailing grid, v-prediction) against the teacher's usual 20 DDIM steps:
    the speed-up distillation buys, as a ratio measured in this run (checkpoints/README.md scores the student)."""
    labels, student = torch.arange(args.n) % 10, UNet(cfg)
    student.prediction = "v"
    schedule, steps = Schedule.cosine(1000), (2 if args.smoke else args.student_steps)
    fns = {"student": lambda: sample(student, schedule, args.n, steps=steps, grid="trailing", labels=labels,
                                     generator=torch.Generator().manual_seed(0))}
    for c in cs:
        fns[c.name] = lambda c=c: c.sample(args.n, sampler="ddim", steps=2 if args.smoke else 20, labels=labels,
                                           guidance=0.0, generator=torch.Generator().manual_seed(0))
    t = measure(fns, repeat=args.repeat)
    rows = [[f"ddpm-lite student, DDIM {steps}", f"{t['student'].wall_s:.3f}", f"{t['student'].cpu_s:.3f}", "1"]]
    rows += [[f"{c.name}, DDIM {2 if args.smoke else 20}", f"{t[c.name].wall_s:.3f}", f"{t[c.name].cpu_s:.3f}",
              f"{t['student'].wall_s / t[c.name].wall_s:.3f}"] for c in cs]
    return format_table([f"{args.n} digits", "s", "CPU s", "student / row"], rows) + (
        f"\nwarm wall seconds, best of {args.repeat}, interleaved; the last column is the student's time over the "
        f"row's (goal: at most 0.2 against diffusers' DDIM 20)")


def efficiency_section(args, cfg, cs, smoke: bool) -> str:
    x, t, y, _ = batch(cfg, args.n)
    for c in cs:
        c.module.eval()
    with torch.inference_mode():
        times = measure({c.name: (lambda c=c: c.forward(x, t, y)) for c in cs}, args.repeat)
    size = 64 if smoke else 1024
    peak = machine_peak(size, conv_batch=1 if smoke else 32, repeat=args.repeat)
    rows = []
    for c in cs:
        gflop, tc = count_flops(lambda c=c: c.forward(x, t, y)) / 1e9, times[c.name]
        shares = [f"{gflop / tc.wall_s / peak[k].wall_s:.0%} ({gflop / tc.cpu_s / peak[k].cpu_s:.0%})"
                  for k in ("conv2d", "matmul")]
        rows.append([c.name, f"{gflop:.2f}", f"{tc.wall_s * 1000:.0f}", f"{tc.cpu_s * 1000:.0f}",
                     f"{gflop / tc.wall_s:.1f}", *shares])
    text = format_table([f"forward, batch {args.n}", "GFLOP", "ms", "CPU ms", "GFLOP/s", "of conv peak",
                         "of matmul peak"], rows)
    return text + (f"\nmachine peak, same run: conv2d {peak['conv2d'].wall_s:.1f} GFLOP/s (64 -> 64 channels, 3x3, "
                   f"28x28), matmul {peak['matmul'].wall_s:.1f} GFLOP/s ({size} x {size});\nshares from wall time, "
                   f"from CPU time in brackets; FLOPs of convolutions and matrix products (FlopCounterMode); best of "
                   f"{args.repeat}")


SECTIONS = ("train", "sample", "distilled", "efficiency")


def parser() -> Parser:
    p = Parser(prog="python -m benchmarks.versus_diffusers", formatter_class=Help,
               description="Speed against diffusers: training, sampling latency, share of machine peak.")
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
    p.add_argument("--probe-train", default=None, help=argparse.SUPPRESS)  # train_memory's subprocess
    return p


def check_options(args) -> None:
    if not args.ddim_steps or not all(1 <= s <= 1000 for s in args.ddim_steps):
        raise UsageError(f"--ddim-steps must be numbers of steps between 1 and 1000, got {args.ddim_steps}")
    unknown = set(args.only.split(",")) - set(SECTIONS)
    if unknown:
        raise UsageError(f"unknown --only section(s) {', '.join(sorted(unknown))}; choose from {','.join(SECTIONS)}")


def main(argv=None) -> int:
    """Parse the flags, then run the sections named in --only; a bad flag: one line and exit status 2."""
    args = parser().parse_args(argv)
    try:
        check_options(args)
        return run(args)
    except DdpmLiteError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def run(args) -> int:
    """Run the sections named in args.only and print their tables (args: parser()'s)."""
    torch.set_num_threads(args.threads)
    cfg = SMOKE if args.smoke else UNetConfig()
    if args.probe_train:
        return probe_train_memory(args, cfg)
    if args.smoke:  # tiny sizes: the code runs end to end, the figures mean nothing
        args.n, args.batch, args.repeat, args.ddim_steps, args.ddpm_prefix = 2, 2, 1, (2,), 2
    cs, note = contenders(args, cfg)
    print(f"ddpm-lite speed benchmark ({'SMOKE: tiny sizes, figures mean nothing' if args.smoke else 'default UNet'})")
    print(machine_note(args.threads))
    print(f"ddpm-lite UNet {cfg_widths(cfg)}, {count_parameters(cs[0].module):,} parameters; {note}")
    sections = {"train": lambda: train_section(args, cfg, cs), "sample": lambda: sample_section(args, cfg, cs),
                "distilled": lambda: distilled_section(args, cfg, cs),
                "efficiency": lambda: efficiency_section(args, cfg, cs, args.smoke)}
    for name in args.only.split(","):
        print(f"\n{sections[name]()}", flush=True)
    print(f"\nload average (1/5/15 min) at the end: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
