"""`python -m ddpm_lite distill`: progressive distillation of a checkpoint to fewer sampling steps (resumable).

    python -m ddpm_lite distill --out runs/distill                       # the release, 32 -> 16 -> 8 -> 4 steps
    python -m ddpm_lite distill --final-steps 1 --out runs/distill       # on to 2 and 1 step
    python -m ddpm_lite distill --out runs/distill                       # the same command again: continues

Before the first step it times a few steps on this machine and says how long the whole run will take.
"""
from __future__ import annotations

import sys
from dataclasses import fields

from .. import checkpoint
from ..data import DATASETS, load_images
from ..distill import DistillConfig, distill, seconds_per_step
from ..samplers import PREDICTIONS
from ..training import pick_device
from .args import Help, fraction, nonneg_int, one_of, positive_float, positive_int
from .train_command import train_device

NAME, HELP = "distill", "distil a checkpoint to fewer sampling steps (progressive distillation, resumable)"


def add_arguments(sub) -> None:
    p = sub.add_parser(NAME, help=HELP, formatter_class=Help,
                       description="Each stage trains a student to take in one DDIM step what its teacher takes in "
                                   "two (Salimans & Ho 2022), halving the steps from --start-steps to "
                                   "--final-steps. Every stage's student is written to OUT/student_N.pt; run the "
                                   "same command again to continue an interrupted run.")
    d = DistillConfig()
    p.add_argument("--teacher", default=None, help="checkpoint to distil, a path or a shipped name (default: the "
                                                   "shipped release)")
    p.add_argument("--start-steps", type=positive_int, default=d.start_steps, help="the teacher's DDIM steps")
    p.add_argument("--final-steps", type=positive_int, default=d.final_steps, help="the last student's steps")
    p.add_argument("--steps-per-stage", type=positive_int, default=d.steps_per_stage, help="optimizer steps a stage")
    p.add_argument("--batch-size", type=positive_int, default=d.batch_size)
    p.add_argument("--lr", type=positive_float, default=d.lr)
    p.add_argument("--label-dropout", type=fraction, default=d.label_dropout)
    p.add_argument("--prediction", type=one_of(PREDICTIONS, "prediction"), default=d.prediction,
                   help="what the student predicts: v (recommended for few steps) or eps")
    p.add_argument("--seed", type=nonneg_int, default=d.seed)
    p.add_argument("--dataset", default=d.dataset, type=one_of(DATASETS, "dataset"))
    p.add_argument("--data-root", default=None, help="folder holding MNIST/ (default: $DDPM_LITE_DATA)")
    p.add_argument("--out", default=d.out_dir, help="run folder: stage_N.pt (resume state), student_N.pt")
    p.add_argument("--device", type=train_device, default=d.device, help="auto (a GPU if there is one), cpu, cuda")
    p.add_argument("--export", default=None, help="also copy the last student here at the end")
    p.add_argument("--no-progress", action="store_true")


def config(args) -> DistillConfig:
    names = {f.name for f in fields(DistillConfig)}
    kw = {k: v for k, v in vars(args).items() if k in names}
    return DistillConfig(**kw, out_dir=args.out)


def plan_line(cfg: DistillConfig, seconds: float, device) -> str:
    stages = cfg.stages()
    total = len(stages) * cfg.steps_per_stage
    return (f"distilling {cfg.start_steps} -> {' -> '.join(map(str, stages))} steps: {len(stages)} stage(s) of "
            f"{cfg.steps_per_stage:,} steps (batch {cfg.batch_size}) on {device}, {seconds:.2f} s a step here: about "
            f"{total * seconds / 60:.0f} min in all, {cfg.steps_per_stage * seconds / 60:.0f} min a stage")


def run(args) -> int:
    cfg = config(args)  # a bad combination (steps that do not halve) fails here, before any data is read
    checkpoint.load(checkpoint.resolve(cfg.teacher))  # a missing or unreadable teacher fails before the data
    images, labels = load_images(cfg.dataset, cfg.data_root, train=True)
    print(plan_line(cfg, seconds_per_step(cfg, images, labels), pick_device(cfg.device)), file=sys.stderr, flush=True)
    path = distill(cfg, data=(images, labels), progress=not args.no_progress)
    print(f"student: {path}")
    if args.export:
        print(f"exported to {checkpoint.export_ema(path, args.export)}")
    return 0
