"""`python -m ddpm_lite train`: train a UNet noise predictor (resumable), and `export` its small EMA release file."""
from __future__ import annotations

import argparse
import sys
from dataclasses import fields, replace
from pathlib import Path

from .. import checkpoint
from ..data import DATASETS, load_images
from ..errors import UsageError
from ..parallel.distributed import is_main_process, launched
from ..recipe import EPOCHS, RANGES, TrainConfig, epochs_of, model_config_for, steps_for_epochs
from ..schedule import KINDS
from ..training import pick_device, train
from ..unet import UNetConfig
from .args import (Help, add_sampler_settings, device_name, int_tuple, nonneg_float, one_of, positive_float,
                   positive_int, sampler_overrides)

NAME, HELP = "train", "train a UNet noise predictor (resumable)"


def ranged(name: str):
    """An argparse type for a TrainConfig field: the library's own range (recipe.RANGES), checked at parse time."""
    allowed = RANGES[name]

    def parse(s: str):
        try:
            value = int(s) if allowed.integer else float(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {s}") from None
        if value not in allowed:
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {s}")
        return value
    return parse


def train_device(s: str) -> str:
    return s if s == "auto" else device_name(s)


def add_arguments(sub) -> None:
    p = sub.add_parser(NAME, help=HELP, formatter_class=Help)
    d = TrainConfig()
    p.add_argument("--dataset", default=d.dataset, type=one_of(DATASETS, "dataset"))
    p.add_argument("--data-root", default=None, help="folder holding MNIST/ etc. (default: $DDPM_LITE_DATA or "
                                                     "~/.cache/ddpm_lite/data)")
    p.add_argument("--steps", type=ranged("steps"), default=None, help="optimizer steps (default: --epochs')")
    p.add_argument("--epochs", type=positive_float, default=None,
                   help=f"passes over the data, instead of --steps (default: {EPOCHS:g})")
    p.add_argument("--batch-size", type=ranged("batch_size"), default=d.batch_size)
    p.add_argument("--lr", type=ranged("lr"), default=d.lr)
    p.add_argument("--warmup", type=ranged("warmup"), default=d.warmup, help="linear learning-rate warm-up steps")
    p.add_argument("--ema-decay", type=ranged("ema_decay"), default=d.ema_decay)
    p.add_argument("--label-dropout", type=ranged("label_dropout"), default=d.label_dropout,
                   help="guidance: share of labels dropped")
    p.add_argument("--min-snr-gamma", type=nonneg_float, default=d.min_snr_gamma, help="0 for plain L_simple")
    p.add_argument("--grad-clip", type=ranged("grad_clip"), default=d.grad_clip)
    p.add_argument("--schedule", default=d.schedule, type=one_of(KINDS, "schedule"))
    p.add_argument("--T", type=ranged("T"), default=d.T)
    p.add_argument("--seed", type=ranged("seed"), default=d.seed)
    p.add_argument("--out", default=d.out_dir, help="run folder: last.pt (resume state)")
    p.add_argument("--ckpt-every", type=ranged("ckpt_every"), default=d.ckpt_every)
    p.add_argument("--device", type=train_device, default=d.device, help="auto (a GPU if there is one), cpu, cuda "
                                                                         "or mps")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt exactly where it stopped")
    p.add_argument("--init", default=None, help="fine-tune: start from this checkpoint's EMA weights (a path, or a shipped file by name: "
                   "ddpm_mnist.pt), fresh optimizer")
    p.add_argument("--unconditional", action="store_true", help="no class conditioning")
    p.add_argument("--base-channels", type=positive_int, default=UNetConfig.base_channels)
    p.add_argument("--channel-mults", type=int_tuple, default=UNetConfig.channel_mults, help="e.g. 1,2,2")
    p.add_argument("--num-res-blocks", type=positive_int, default=UNetConfig.num_res_blocks)
    p.add_argument("--attention-levels", type=int_tuple, default=UNetConfig.attention_levels, help="e.g. 2")
    p.add_argument("--image-size", type=positive_int, default=None, help="default: 28 grey, 32 for cifar10")
    p.add_argument("--channels", type=positive_int, default=None, help="default: 1 grey, 3 for cifar10")
    p.add_argument("--export", default=None, help="also write the small EMA-only file here at the end")
    p.add_argument("--no-progress", action="store_true")


def check_args(args) -> None:
    """The checks that need no data, so a bad flag fails before the dataset is loaded."""
    if args.steps and args.epochs:
        raise UsageError("give --steps or --epochs, not both")
    if args.resume and args.init:
        raise UsageError("give --resume (continue a run) or --init (start a new run from weights), not both")
    if args.resume and not (Path(args.out) / "last.pt").is_file():
        raise UsageError(f"--resume given but there is no checkpoint at {Path(args.out) / 'last.pt'}; "
                         f"check --out (the run's folder) or start without --resume")
    if args.init and not checkpoint.resolve(args.init).is_file():
        raise UsageError(f"--init {args.init}: no such file; pass a checkpoint path, or a shipped one by name, "
                         f"such as ddpm_mnist.pt")


def configs(args, images, labels) -> tuple[TrainConfig, UNetConfig]:
    """Channels, size and classes from the data (a folder may hold any number of classes, or one: unconditional);
    the architecture and the recipe from the flags."""
    shaped = model_config_for(images, labels)
    model_cfg = replace(shaped, base_channels=args.base_channels, channel_mults=args.channel_mults,
                        num_res_blocks=args.num_res_blocks, attention_levels=args.attention_levels,
                        num_classes=None if args.unconditional else shaped.num_classes)
    n_images = len(images)
    steps = args.steps or steps_for_epochs(args.epochs or EPOCHS, n_images, args.batch_size)
    names = {f.name for f in fields(TrainConfig)}
    kw = {k: v for k, v in vars(args).items() if k in names}
    kw.update(steps=steps, out_dir=args.out, min_snr_gamma=args.min_snr_gamma or None, data_root=args.data_root)
    return TrainConfig(**kw), model_cfg


def start_line(cfg: TrainConfig, n_images: int, device, *, asked: str = "auto", resume: bool = False,
               bar: bool = True) -> str:
    """What the run is about to do and where, before the first step (the progress bar then counts the time left).
    On a CPU picked because there is no GPU (`asked` auto) it says that a GPU would be used, and where to get one."""
    epochs = epochs_of(cfg.steps, n_images, cfg.batch_size)
    line = (f"{'continuing to' if resume else 'training'} {cfg.steps:,} steps ({epochs:.3g} epochs of {n_images:,} "
            f"images, batch {cfg.batch_size}) on {device}")
    if bar:
        line += "; the bar below shows the time left"
    if str(device) == "cpu" and asked == "auto":
        line += (". No GPU found, so this runs on the CPU; with one, the same command uses it "
                 "(on Colab: Runtime > Change runtime type > GPU)")
    return line


def run(args) -> int:
    check_args(args)
    colour = args.dataset == "cifar10"
    images, labels = load_images(args.dataset, args.data_root, train=True,
                                 image_size=args.image_size or (32 if colour else 28),
                                 channels=args.channels or (3 if colour else 1))
    cfg, model_cfg = configs(args, images, labels)
    if launched() is None:  # a plain process (torchrun's ranks each pick their own); stderr, with the bar
        print(start_line(cfg, len(images), pick_device(cfg.device), asked=cfg.device,
                         resume=args.resume, bar=not args.no_progress), file=sys.stderr, flush=True)
    ckpt = train(cfg, model_cfg, resume=args.resume, progress=not args.no_progress, data=(images, labels))
    if not is_main_process():  # under torchrun rank 0 reports and exports
        return 0
    print(f"trained {ckpt['step']} steps; final loss {ckpt['history'][-1][1]:.4f}; checkpoint {cfg.out_dir}/last.pt")
    if args.export:
        print(f"exported EMA weights to {checkpoint.export_ema(f'{cfg.out_dir}/last.pt', args.export)}")
    return 0


def add_export(sub) -> None:
    p = sub.add_parser("export", formatter_class=Help,
                       help="write the small EMA-only release file from a training checkpoint",
                       description="Write the EMA weights and configs of SRC to DST. Sampling flags given here are "
                                   "stored in DST as its recommended settings, which `sample` and `evaluate` then "
                                   "use for every flag their user leaves out.")
    p.add_argument("src", help="training checkpoint, e.g. runs/mnist/last.pt")
    p.add_argument("dst", help="output file, e.g. checkpoints/mine.pt")
    add_sampler_settings(p)
    p.add_argument("--label", type=one_of(("random", "none"), "label"), default=None,
                   help="how `sample` picks labels when none is asked for: random (a random digit each) or none "
                        "(the \"no label\" path); default: SRC's own setting")


def run_export(args) -> int:
    given = {k: v for k, v in sampler_overrides(args).items() if v is not None}
    sampling = None
    if given or args.label:
        sampling = checkpoint.sampling_settings(checkpoint.load(args.src)).with_overrides(**given)
        if args.label:
            sampling = replace(sampling, labels=None if args.label == "none" else "random")
    print(f"wrote {checkpoint.export_ema(args.src, args.dst, sampling=sampling)}")
    return 0
