"""Command line: python -m ddpm_lite {train, sample, export, ...} --help.

Arguments are checked before any work starts; a bad one gets one line on stderr and exit code 2.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from dataclasses import fields

from .train import TrainConfig, mps_available
from .unet import UNetConfig


EXTENSIONS = ("evaluate", "classifier", "benchmark")  # modules that add sub-commands: evaluate, train-classifier, benchmark


class UsageError(Exception):
    pass


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


def positive_int(s: str) -> int:
    v = int(s)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {s}")
    return v


def nonneg_float(s: str) -> float:
    v = float(s)
    if not v >= 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {s}")
    return v


def positive_float(s: str) -> float:
    v = float(s)
    if not 0 < v < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {s}")
    return v


def spacing_power(s: str) -> float:
    v = float(s)
    if not v >= 1:
        raise argparse.ArgumentTypeError(f"must be a number >= 1 (1 = evenly spaced steps), got {s}")
    return v


def device_name(s: str) -> str:
    """A torch device this machine has: cpu, cuda, cuda:N or mps."""
    import torch
    try:
        device = torch.device(s)
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"{s!r} is not a device; use cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"{s!r}: PyTorch sees no CUDA GPU on this machine; use cpu (or, on a machine "
                                         f"with an NVIDIA GPU, a CUDA build of torch)")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise argparse.ArgumentTypeError(f"{s!r}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                                         f"numbered from 0")
    if device.type == "mps" and not mps_available():
        raise argparse.ArgumentTypeError(f"{s!r}: Apple's MPS is not available on this machine; use cpu")
    return s


def train_device(s: str) -> str:
    return s if s == "auto" else device_name(s)


def int_list(s: str) -> tuple:
    return tuple(int(v) for v in s.split(",") if v.strip())


def add_train(sub):
    p = sub.add_parser("train", help="train a UNet noise predictor (resumable)",
                       formatter_class=Help)
    d = TrainConfig()
    p.add_argument("--dataset", default=d.dataset, choices=["mnist", "fashion-mnist", "cifar10", "folder"])
    p.add_argument("--data-root", default=None, help="folder holding MNIST/ etc. (default: $DDPM_LITE_DATA or ~/.cache/ddpm_lite/data)")
    p.add_argument("--steps", type=positive_int, default=None, help="optimizer steps (default 10000)")
    p.add_argument("--epochs", type=float, default=None, help="alternative to --steps: passes over the data")
    p.add_argument("--batch-size", type=positive_int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--warmup", type=int, default=d.warmup)
    p.add_argument("--ema-decay", type=float, default=d.ema_decay)
    p.add_argument("--label-dropout", type=float, default=d.label_dropout, help="guidance: share of labels dropped")
    p.add_argument("--min-snr-gamma", type=float, default=d.min_snr_gamma, help="0 for plain L_simple")
    p.add_argument("--grad-clip", type=float, default=d.grad_clip)
    p.add_argument("--schedule", default=d.schedule, choices=["linear", "cosine"])
    p.add_argument("--T", type=positive_int, default=d.T)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--out", default=d.out_dir, help="run folder: last.pt (resume state) and ema.pt")
    p.add_argument("--ckpt-every", type=positive_int, default=d.ckpt_every)
    p.add_argument("--device", type=train_device, default=d.device,
                   help="auto (a GPU if there is one), cpu, cuda or mps")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt exactly where it stopped")
    p.add_argument("--init", default=None, help="fine-tune: start from this checkpoint's EMA weights, fresh optimizer")
    p.add_argument("--unconditional", action="store_true", help="no class conditioning")
    p.add_argument("--base-channels", type=positive_int, default=UNetConfig.base_channels)
    p.add_argument("--channel-mults", type=int_list, default=UNetConfig.channel_mults, help="e.g. 1,2,2")
    p.add_argument("--num-res-blocks", type=positive_int, default=UNetConfig.num_res_blocks)
    p.add_argument("--attention-levels", type=int_list, default=UNetConfig.attention_levels, help="e.g. 2")
    p.add_argument("--image-size", type=positive_int, default=None, help="default: 28 grey, 32 for cifar10")
    p.add_argument("--channels", type=positive_int, default=None, help="default: 1 grey, 3 for cifar10")
    p.add_argument("--export", default=None, help="also write the small EMA-only file here at the end")
    p.add_argument("--no-progress", action="store_true")


def add_sample(sub):
    p = sub.add_parser("sample", help="generate images from a checkpoint (default: the shipped one)",
                       formatter_class=Help)
    p.add_argument("--checkpoint", default=None, help="default: checkpoints/ddpm_mnist.pt or $DDPM_LITE_CHECKPOINT")
    p.add_argument("--n", type=positive_int, default=64, help="number of samples")
    p.add_argument("--sampler", default="ddim", help="ddim (default), dpm++ (DPM-Solver++(2M), second order) or ddpm")
    p.add_argument("--steps", type=int, default=None, help="1..T (default: 50 for ddim, 20 for dpm++, T for ddpm)")
    p.add_argument("--eta", type=nonneg_float, default=0.0,
                   help="noise of ddim or dpm++: 0 deterministic (default), 1 = DDPM's posterior on the strided steps "
                        "(dpm++: the SDE solver); ddim at 1 with 50 steps gives the shipped model's best digits, "
                        "0.7 the best at 20 steps (model card)")
    p.add_argument("--variance", default="beta_tilde", choices=["beta_tilde", "beta"], help="DDPM variance")
    p.add_argument("--spacing", type=spacing_power, default=1.0,
                   help="where the steps sit: t_i = (T-1)(1 - (i/(S-1))^p); 1 evenly spaced (default), 2 denser "
                        "near t = T: higher precision, lower recall (model card)")
    p.add_argument("--eps-scaling", type=positive_float, default=1.0, metavar="LAMBDA",
                   help="epsilon scaling (Ning et al. 2024): the sampler uses eps_theta / LAMBDA; 1 = off (default); "
                        "0.98 with --steps 20 --eta 0.7 --label random is the fast setting (model card)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"],
                   help="the network's arithmetic: bf16/fp16 run it under autocast, faster on GPUs and on CPUs with "
                        "bfloat16 instructions, slightly different digits (default: fp32)")
    p.add_argument("--guidance", type=nonneg_float, default=0.0,
                   help="classifier-free guidance w: eps = (1+w) eps(y) - w eps(no label); needs --label K, all or random")
    p.add_argument("--label", default=None, help="digit 0..9 for every sample, 'all' for rows 0..9, 'random' for a random digit each")
    p.add_argument("--seed", type=int, default=0, help="same seed, same samples")
    p.add_argument("--out", default="samples.png", help="PNG grid")
    p.add_argument("--gif", default=None, help="also write a GIF of the reverse process")
    p.add_argument("--npy", default=None, help="also write uint8 samples (N, 28, 28) for evaluation")
    p.add_argument("--nrow", type=positive_int, default=None, help="images per grid row (default: 8, or 10 with --label all)")
    p.add_argument("--device", type=device_name, default="cpu", help="cpu, cuda or mps")
    p.add_argument("--no-progress", action="store_true")


def add_export(sub):
    p = sub.add_parser("export", help="write the small EMA-only release file from a training checkpoint")
    p.add_argument("src", help="training checkpoint, e.g. runs/mnist/last.pt")
    p.add_argument("dst", help="output file, e.g. checkpoints/ddpm_mnist.pt")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m ddpm_lite", description="Small, correct DDPM on MNIST.")
    sub = parser.add_subparsers(dest="command", required=True)
    add_train(sub)
    add_sample(sub)
    add_export(sub)
    import importlib
    for name in EXTENSIONS:  # each module adds its own sub-command: add_parser(sub) sets func=run
        importlib.import_module(f".{name}", __package__).add_parser(sub)
    return parser


def main(argv=None) -> int:
    from . import commands
    from .checkpoint import CheckpointError
    from .data import DataNotFoundError
    from .train import TrainingDiverged
    args = build_parser().parse_args(argv)
    try:
        handler = getattr(args, "func", None) or commands.run
        return handler(args) or 0
    except (UsageError, CheckpointError, DataNotFoundError, TrainingDiverged, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the last checkpoint written is intact", file=sys.stderr)
        return 130


def check_train_args(args) -> None:
    """The checks that need no data, so a bad flag fails before the dataset is loaded."""
    if args.steps and args.epochs:
        raise UsageError("give --steps or --epochs, not both")
    if args.epochs is not None and args.epochs <= 0:
        raise UsageError(f"--epochs must be positive, got {args.epochs}")
    if args.resume and args.init:
        raise UsageError("give --resume (continue a run) or --init (start a new run from weights), not both")
    if args.resume and not (Path(args.out) / "last.pt").is_file():
        raise UsageError(f"--resume given but there is no checkpoint at {Path(args.out) / 'last.pt'}; "
                         f"check --out (the run's folder) or start without --resume")
    if args.init and not Path(args.init).is_file():
        raise UsageError(f"--init {args.init}: no such file; pass a checkpoint such as checkpoints/ddpm_mnist.pt")


def train_config_from(args, n_images: int) -> tuple[TrainConfig, UNetConfig]:
    import math
    colour = args.dataset == "cifar10"
    model_cfg = UNetConfig(in_channels=args.channels or (3 if colour else 1), image_size=args.image_size or (32 if colour else 28),
                           base_channels=args.base_channels, channel_mults=args.channel_mults,
                           num_res_blocks=args.num_res_blocks, attention_levels=args.attention_levels,
                           num_classes=None if args.unconditional else 10)
    check_train_args(args)
    steps = args.steps or (math.ceil(args.epochs * n_images / args.batch_size) if args.epochs else TrainConfig.steps)
    names = {f.name for f in fields(TrainConfig)}
    kw = {k: v for k, v in vars(args).items() if k in names}
    kw.update(steps=steps, out_dir=args.out, min_snr_gamma=args.min_snr_gamma or None, data_root=args.data_root)
    return TrainConfig(**kw), model_cfg
