"""Argument types that know their ranges, the parser, and the sampling flags that `sample`, `evaluate` and `export`
share, declared once from the library's own constants, with the checks that need a checkpoint or the file system.
A leaf of the command line: it imports the library only.

A bad value fails in the parser with one line and exit status 2, before any file is read.
"""
from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from .. import checkpoint
from ..devices import missing_device
from ..errors import UsageError
from ..samplers import GRIDS, LABEL_CHOICES, PRECISIONS, SAMPLERS, VARIANCES, SamplerSettings, resolve_labels


class Parser(argparse.ArgumentParser):
    """argparse, but a bad argument prints one line (no usage dump) and exits with code 2."""

    def error(self, message):
        self.exit(2, f"error: {self.prog}: {message} (see --help)\n")


class Help(argparse.ArgumentDefaultsHelpFormatter):
    """Show a flag's default unless it is None or the help text already states it."""

    def _get_help_string(self, action):
        if action.default is None or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def number(kind=float, low=None, high=None, low_open=False, high_open=False, what=None):
    """An argparse type: a finite `kind` in [low, high] (open ends where asked), else one line naming the range
    (or `what`, a description of it)."""
    lo = "" if low is None else f"{'>' if low_open else '>='} {low:g}"
    hi = "" if high is None else f"{'<' if high_open else '<='} {high:g}"
    name = "an integer" if kind is int else "a number"
    bounds = " and".join(b for b in (f" {lo}" if lo else "", f" {hi}" if hi else "") if b)
    rule = "must be " + (what or name + bounds)

    def parse(s: str):
        try:
            v = kind(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{rule}, got {s}") from None
        ok = math.isfinite(v) and (low is None or (v > low if low_open else v >= low)) and \
            (high is None or (v < high if high_open else v <= high))
        if not ok:
            raise argparse.ArgumentTypeError(f"{rule}, got {s}")
        return v
    return parse


positive_int = number(int, 1, what="a positive integer")
nonneg_int = number(int, 0)
positive_float = number(float, 0, low_open=True, what="a positive number")
nonneg_float = number(float, 0)
fraction = number(float, 0, 1)  # a share, 0..1
spacing_power = number(float, 1, what="a number >= 1 (1 = evenly spaced steps)")


def int_tuple(s: str) -> tuple:
    """Comma-separated integers, e.g. 1,2,2."""
    try:
        return tuple(int(v) for v in s.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated integers such as 1,2,2, got {s}") from None


def one_of(choices, flag: str):
    """An argparse type for a fixed set of names, with the names in the message."""
    def parse(s: str) -> str:
        if s not in choices:
            raise argparse.ArgumentTypeError(f"unknown {flag} {s!r}; choose one of {', '.join(choices)}")
        return s
    return parse


def label_spec(s: str):
    """--label: a digit (checked against the checkpoint later), or one of LABEL_CHOICES."""
    if s in LABEL_CHOICES:
        return s
    try:
        return int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer 0..9, {', '.join(map(repr, LABEL_CHOICES))}, "
                                         f"got {s!r}") from None


def device_name(s: str) -> str:
    """A torch device this machine has: cpu, cuda, cuda:N or mps."""
    why = missing_device(s)
    if why:
        raise argparse.ArgumentTypeError(why)
    return s


FROM_CHECKPOINT = "default: the checkpoint's recommended setting"


def add_sampler_settings(p) -> None:
    """The flags of SamplerSettings. Each defaults to None: the checkpoint's recommended value fills it in."""
    d = SamplerSettings()
    p.add_argument("--sampler", type=one_of(SAMPLERS, "sampler"), default=None,
                   help=f"{', '.join(SAMPLERS)}: ancestral DDPM, DDIM, or DPM-Solver++(2M) ({FROM_CHECKPOINT}, "
                        f"else {d.sampler}); another sampler than the checkpoint's starts its other knobs plain")
    p.add_argument("--steps", type=positive_int, default=None,
                   help=f"network evaluations, 1..T ({FROM_CHECKPOINT}, else 50 for ddim, 20 for dpm++, T for ddpm)")
    p.add_argument("--eta", type=nonneg_float, default=None,
                   help=f"noise of ddim or dpm++: 0 deterministic, 1 DDPM's posterior on the strided steps "
                        f"({FROM_CHECKPOINT}, else 0)")
    p.add_argument("--variance", type=one_of(VARIANCES, "variance"), default=None,
                   help=f"DDPM's variance: beta_tilde (Eq. 7) or beta ({FROM_CHECKPOINT}, else {d.variance})")
    p.add_argument("--spacing", type=spacing_power, default=None,
                   help=f"where the steps sit: t_i = (T-1)(1 - (i/(S-1))^p); 1 evenly spaced, larger p denser near "
                        f"t = T ({FROM_CHECKPOINT}, else 1)")
    p.add_argument("--grid", type=one_of(GRIDS, "grid"), default=None,
                   help=f"the timesteps: linspace from T-1 to 0, or trailing, even strides from T-1 that end one stride "
                        f"above 0 (a distilled student's grid) ({FROM_CHECKPOINT}, else {d.grid})")
    p.add_argument("--eps-scaling", type=positive_float, default=None, metavar="LAMBDA",
                   help=f"epsilon scaling (Ning et al. 2024): the sampler uses eps_theta / LAMBDA; 1 = off "
                        f"({FROM_CHECKPOINT}, else 1)")
    p.add_argument("--precision", type=one_of(tuple(PRECISIONS), "precision"), default=None,
                   help=f"the network's arithmetic: bf16 / fp16 run it under autocast, faster on GPUs and on CPUs "
                        f"with bfloat16 instructions, slightly different digits ({FROM_CHECKPOINT}, else fp32)")
    p.add_argument("--guidance", type=nonneg_float, default=None,
                   help=f"classifier-free guidance w: eps = (1+w) eps(y) - w eps(no label); needs labels "
                        f"({FROM_CHECKPOINT}, else 0)")


def add_sampling(p, n_default: int, n_help: str) -> None:
    """What `sample` and `evaluate` share: checkpoint, count, settings, labels, seed, batch size, device."""
    p.add_argument("--checkpoint", default=None,
                   help="model file, or a shipped one by name, e.g. ddpm_mnist_4step.pt (default: the shipped "
                        "release, or $DDPM_LITE_CHECKPOINT)")
    p.add_argument("--n", type=positive_int, default=n_default, help=n_help)
    add_sampler_settings(p)
    p.add_argument("--label", type=label_spec, default=None,
                   help=f"a digit 0..9 for every sample, 'all' for 0..9 in turn, 'random' for a random digit each, "
                        f"'none' for the model's \"no label\" path ({FROM_CHECKPOINT})")
    p.add_argument("--seed", type=int, default=0, help="same seed, same samples (default: 0)")
    p.add_argument("--batch-size", type=positive_int, default=250,
                   help="samples through the network at once; the seed gives the same samples at any count "
                        "drawn in batches of this size (default: 250)")
    p.add_argument("--device", type=device_name, default="cpu", help="cpu, cuda, cuda:N or mps (default: cpu)")
    p.add_argument("--no-progress", action="store_true")


def sampler_overrides(args) -> dict:
    """The SamplerSettings the user gave on the command line (None for each left to the checkpoint)."""
    return {"sampler": args.sampler, "steps": args.steps, "eta": args.eta, "variance": args.variance,
            "spacing": args.spacing, "grid": args.grid, "eps_scaling": args.eps_scaling, "precision": args.precision,
            "guidance": args.guidance}


def settings_from(args, ckpt: dict):
    """The sampling flags checked against a loaded checkpoint: (SamplerSettings, labels for all --n or None)."""
    s = checkpoint.sampling_settings(ckpt).with_overrides(**sampler_overrides(args))
    if args.eta and s.sampler == "ddpm":
        raise UsageError(f"--eta (the sampler's noise) applies to --sampler ddim or dpm++ only, not {s.sampler}")
    T = ckpt["schedule"]["T"]
    if s.steps is not None and not 1 <= s.steps <= T:
        raise UsageError(f"--steps must be between 1 and T={T}, got {s.steps}")
    k = ckpt["model_config"].get("num_classes")
    if args.label not in (None, "none") and not k:
        raise UsageError("--label given but this checkpoint is unconditional (trained without labels)")
    if isinstance(args.label, int) and not 0 <= args.label < k:
        raise UsageError(f"--label must be between 0 and {k - 1}, got {args.label}")
    check_fits(args.n, ckpt["model_config"])
    labels = resolve_labels(s.labels if args.label is None else args.label, args.n, k, args.seed)
    if s.guidance and labels is None:
        raise UsageError("--guidance needs --label K, all or random (guidance steers towards a class)")
    return s, labels


def model_for(args):
    """(model carrying the checked sampling settings, schedule, labels for all --n) from --checkpoint and the
    sampling flags, every check done before the weights are built."""
    ckpt = checkpoint.load(checkpoint.resolve(args.checkpoint))
    settings, labels = settings_from(args, ckpt)
    model, schedule = checkpoint.build(ckpt, device=args.device)
    model.sampling = settings
    return model, schedule, labels


def check_fits(n: int, model_config: dict) -> None:
    """Refuse, before any work, a sample count whose images alone would not fit in this machine's memory."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not on this platform: the allocator's own error still reads well
        return
    side = model_config.get("image_size", 28)
    need = 3 * n * model_config.get("in_channels", 1) * side * side * 4  # float32 samples, a copy, the uint8 files
    if need > memory:
        raise UsageError(f"--n {n} asks for {need / 2 ** 30:,.0f} GiB of images, more than this machine's "
                         f"{memory / 2 ** 30:,.0f} GiB of memory; ask for fewer (--n), in several runs with other "
                         f"--seed")


def check_writable(*paths) -> None:
    """Refuse, before any work, an output file that cannot be written: its nearest existing folder must be a
    writable folder, and the file itself no folder."""
    for path in filter(None, paths):
        path = Path(path)
        if path.is_dir():
            raise UsageError(f"{path} is a folder; give a file name to write")
        folder = next(p for p in path.absolute().parents if p.exists())
        if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
            raise UsageError(f"cannot write {path}: {folder} is not a writable folder")
