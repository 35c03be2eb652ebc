"""Time to quality, side by side: ddpm-lite's recipe against the plain recipe a user writes with diffusers.

    python -m benchmarks.time_to_quality_race --budgets 10,20,40 --out runs/race --json race.json  # 40 min, scoring
    python -m benchmarks.time_to_quality_race --score-only runs/race --n 2000 --json race_2000.json  # score again
    python -m benchmarks.time_to_quality_race --smoke --out runs/race     # seconds: the code runs, figures mean nothing

The two recipes train at the same time, in two processes on this machine, each with --threads torch threads, one
run each up to the largest budget. Each keeps its EMA weights when its own training clock passes a budget: the clock
counts the recipe's setup (building the network, optimizer and EMA) and its steps (batch, forward, backward,
optimizer, EMA), not loading the data and not saving snapshots. After both have finished, every snapshot is sampled and
scored with the project's metric (metrics.evaluate: classifier-FID, precision/recall, confident share, class balance,
beside real digits' row at the same n), so scoring takes no training time.

- ours: ddpm_lite.train(TrainConfig(...), UNetConfig()) with the library's defaults as they are at run time; this
  script sets only the run's length, folder, seed and device (and ckpt_every = the whole run, so that no checkpoint
  is written mid-run). train() takes a step count and decays its learning rate to the end, so a short probe, run
  while the other recipe probes too, measures seconds per step first, and steps = largest budget / that; a callback
  stops the run if it turns out slower than probed. Sampled with sample() and the snapshot's settings
  (model.sampling: the checkpoint's recommended ones, or SamplerSettings' plain defaults when it has none).
- diffusers' plain recipe (PLAIN below): UNet2DModel in our block layout, unconditional, at the widths whose
  parameter count matches ours (benchmarks/versus_diffusers.py; 28x28 as it is: this layout needs no padding to 32),
  DDPMScheduler(num_train_timesteps=1000) (linear betas), add_noise, MSE on eps, torch's AdamW(lr=1e-3) (its
  default weight decay 0.01) held constant after a 100-step linear warm-up (diffusers.optimization's
  "constant_with_warmup"), gradients clipped at norm 1 (as diffusers' train_unconditional example does), batch 128,
  diffusers.training_utils.EMAModel(decay=0.999) with its default warm-up (decay min(0.999, (1 + n) / (10 + n)) at
  update n). Sampled with DDIMScheduler.from_config(the training scheduler's config), 20 steps, eta 0.
Both see the same data in the same order (the MNIST training set, train.Batches with the same seed; t and eps are drawn
from the same per-step generators), both start from torch.manual_seed(seed), and both sample from the same seed.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F

from ddpm_lite import checkpoint
from ddpm_lite.evaluation import metrics
from benchmarks.timing import machine_note
from ddpm_lite.cli.args import Parser, nonneg_int, positive_int
from ddpm_lite.data import load_images, to_model_range, to_uint8
from ddpm_lite.errors import DdpmLiteError
from ddpm_lite.samplers import sample
from benchmarks.versus_diffusers import diffusers_unet, matched_widths
from ddpm_lite.lab.plan import step_seconds
from ddpm_lite.recipe import TrainConfig
from ddpm_lite.training import Batches, train
from ddpm_lite.unet import UNet, UNetConfig, count_parameters

RECIPES = ("ours", "diffusers")
PLAIN = {"T": 1000, "lr": 1e-3, "warmup": 100, "batch_size": 128, "grad_clip": 1.0, "ema_decay": 0.999,
         "ddim_steps": 20}  # diffusers' plain recipe; see the docstring


class Level(NamedTuple):
    """A quality level against the real digits' row: FID at most fid_ratio times real's (None: FID not asked), the
    confident share and the class balance each within this much of real's, above or below."""
    fid_ratio: float | None
    confident: float
    balance: float


LEVELS = {"bar": Level(2.0, 0.02, 0.02), "recognisable": Level(None, 0.05, 0.02)}  # issue #18 and the model card
EDGE = 1e-9  # a difference of exactly 0.02 computed in floats (0.979 - 0.959 = 0.0200000000000000018) meets it


class Setup(NamedTuple):
    unet: UNetConfig
    budgets: tuple  # minutes
    n: int  # samples per snapshot
    n_images: int | None  # None: the whole training set
    batch_size: int | None  # None: each recipe's own (TrainConfig's default; PLAIN's)
    probe_steps: int
    probe_warm: int  # probe steps left out of the rate (first calls of oneDNN's kernels, the allocator)


FULL = Setup(UNetConfig(), (10.0, 20.0, 40.0), 10_000, None, None, 20, 5)
SMOKE = Setup(UNetConfig(base_channels=8, channel_mults=(1, 2), attention_levels=(1,), groups=4), (0.03, 0.06),
              32, 1024, 16, 4, 1)  # seconds of training, a tiny network: the figures mean nothing


# ---- quality levels (pure functions of score rows) ----

def meets(row: dict, level: Level) -> bool:
    """Whether a score row (fid, confident, balance and their *_real twins) reaches the level."""
    fid_ok = level.fid_ratio is None or row["fid"] <= level.fid_ratio * row["fid_real"] + EDGE
    return (fid_ok and abs(row["confident"] - row["confident_real"]) <= level.confident + EDGE
            and abs(row["balance"] - row["balance_real"]) <= level.balance + EDGE)


def first_budgets(rows: list) -> dict:
    """{recipe: {level name: the smallest budget (minutes) whose row meets the level, or None}}."""
    firsts = {}
    for row in sorted(rows, key=lambda r: r["budget_min"]):
        mine = firsts.setdefault(row["recipe"], dict.fromkeys(LEVELS))
        for name, level in LEVELS.items():
            if mine[name] is None and meets(row, level):
                mine[name] = row["budget_min"]
    return firsts


def described(name: str) -> str:
    level = LEVELS[name]
    fid = f"FID <= {level.fid_ratio:g}x real's, " if level.fid_ratio is not None else ""
    return f"{name} ({fid}confident share within {level.confident:g}, balance within {level.balance:g})"


def crossing_lines(firsts: dict) -> list:
    """One line per recipe: the first budget that meets each level, or that none does."""
    said = lambda m: "not within the budgets" if m is None else f"first at {m:g} min"  # noqa: E731
    return [f"{recipe}: " + "; ".join(f"{described(name)} {said(m)}" for name, m in mine.items())
            for recipe, mine in firsts.items()]


# ---- the training clock and the snapshots ----

class Clock:
    """Training seconds: wall time since it was made, less the time spent in paused() blocks."""

    def __init__(self):
        self.start, self.excluded = time.perf_counter(), 0.0

    def seconds(self) -> float:
        return time.perf_counter() - self.start - self.excluded

    @contextmanager
    def paused(self):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.excluded += time.perf_counter() - t0


class Snapshots:
    """Saves a recipe's EMA weights each time its training clock passes a budget (saving is not training time)."""

    def __init__(self, folder: Path, budgets: tuple, clock: Clock, base: dict, meta: dict):
        self.folder, self.budgets, self.clock, self.base, self.meta = folder, budgets, clock, base, meta
        self.saved = 0

    def after_step(self, step: int, weights) -> bool:
        """Save every budget passed by now; True once the last is saved. weights() -> the EMA state dict."""
        while self.saved < len(self.budgets) and self.clock.seconds() >= self.budgets[self.saved] * 60:
            self._save(step, weights, ended_early=False)
        return self.saved == len(self.budgets)

    def finish(self, step: int, weights) -> None:
        """The run ended before its clock passed the remaining budgets: they all get its final weights."""
        while self.saved < len(self.budgets):
            self._save(step, weights, ended_early=True)

    def _save(self, step: int, weights, ended_early: bool) -> None:
        train_s = self.clock.seconds()
        with self.clock.paused():
            meta = {**self.meta, "budget_min": self.budgets[self.saved], "train_s": train_s, "elapsed_s": train_s,
                    "ended_early": ended_early}  # elapsed_s: time_to_quality.py reads it too
            checkpoint.save({**self.base, "ema": weights(), "step": step, "meta": meta},
                            self.folder / f"budget_{self.saved + 1:02d}.pt")
            self.saved += 1


# ---- ours: the library's train() ----

def ours_config(args, setup: Setup, steps: int, out_dir: Path) -> TrainConfig:
    """TrainConfig's defaults as they are now; only the run's length, folder, seed, device (and --smoke's batch)."""
    batch = {} if setup.batch_size is None else {"batch_size": setup.batch_size}
    return TrainConfig(steps=steps, ckpt_every=steps, out_dir=str(out_dir), seed=args.seed, device="cpu", **batch)


RUN_KEYS = ("model", "ema", "optimizer", "rng", "step", "history", "meta", "train_config")  # one run's own


def probe_ours(args, setup: Setup, data) -> tuple:
    """(seconds per step, what train()'s checkpoints hold besides one run's own state: the model config, the
    schedule, and the sampling settings it recommends if it writes any), from a short run of train()."""
    stamps = []
    with tempfile.TemporaryDirectory() as tmp:
        final = train(ours_config(args, setup, setup.probe_steps, Path(tmp)), setup.unet, progress=False, data=data,
                      callback=lambda *_: stamps.append(time.perf_counter()))
    return step_seconds(stamps, setup.probe_warm), {k: v for k, v in final.items() if k not in RUN_KEYS}


def run_ours(args, setup: Setup, data, folder: Path, probe: tuple, meta: dict) -> None:
    steps = max(1, round(max(args.budgets) * 60 / probe[0]))  # the learning-rate schedule ends at the last budget
    cfg = ours_config(args, setup, steps, folder / "run")
    base = {**probe[1], "train_config": asdict(cfg)}
    clock = Clock()
    snaps = Snapshots(folder, args.budgets, clock, base, {**meta, "planned_steps": steps, "settings": asdict(cfg),
                                                           "batch_size": cfg.batch_size})

    def callback(step, loss, model, ema):  # False once the last budget's snapshot is saved: the run is over
        return not snaps.after_step(step, ema.state_dict)
    final = train(cfg, setup.unet, callback=callback, progress=False, data=data)
    snaps.finish(final["step"], lambda: final["ema"])  # nothing left to save when the callback stopped the run


def race_ours(args, setup: Setup, data, folder: Path, start, meta: dict) -> None:
    meta = {**meta, "params": count_parameters(UNet(setup.unet))}
    start("ready")
    probe = probe_ours(args, setup, data)
    meta["probe_s_per_step"] = probe[0]
    start("probed")
    run_ours(args, setup, data, folder, probe, meta)


# ---- diffusers' plain recipe ----

class Plain(NamedTuple):
    unet: torch.nn.Module
    scheduler: object  # DDPMScheduler
    opt: torch.optim.Optimizer
    lr_sched: object
    ema: object  # EMAModel


def plain_unet_config(cfg: UNetConfig) -> UNetConfig:
    return replace(cfg, num_classes=None)  # unconditional


def plain_recipe(widths: tuple, cfg: UNetConfig, seed: int) -> Plain:
    """What the Hugging Face course and diffusers' examples have a user write (PLAIN)."""
    from diffusers import DDPMScheduler
    from diffusers.optimization import get_scheduler
    from diffusers.training_utils import EMAModel
    torch.manual_seed(seed)
    unet = diffusers_unet(plain_unet_config(cfg), widths).train()
    opt = torch.optim.AdamW(unet.parameters(), lr=PLAIN["lr"])
    return Plain(unet, DDPMScheduler(num_train_timesteps=PLAIN["T"]), opt,
                 get_scheduler("constant_with_warmup", opt, num_warmup_steps=PLAIN["warmup"]),
                 EMAModel(unet.parameters(), decay=PLAIN["ema_decay"]))


def plain_step(p: Plain, images: torch.Tensor, batches: Batches, step: int) -> float:
    """One step: x_t = add_noise(x0, eps, t) (Eq. 4), MSE between the predicted and the true eps, AdamW, EMA."""
    idx, g = batches.indices(step), batches.generator(step)
    t = torch.randint(0, PLAIN["T"], (len(idx),), generator=g)  # the draws train.py makes, in the same order
    eps = torch.randn((len(idx), *images.shape[1:]), generator=g)  # (B, 1, 28, 28)
    xt = p.scheduler.add_noise(to_model_range(images[idx]), eps, t)
    loss = F.mse_loss(p.unet(xt, t).sample, eps)
    p.opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(p.unet.parameters(), PLAIN["grad_clip"])
    p.opt.step()
    p.lr_sched.step()
    p.ema.step(p.unet.parameters())
    return loss.item()


def plain_ema_weights(p: Plain) -> dict:
    snap = copy.deepcopy(p.unet)
    p.ema.copy_to(snap.parameters())
    return snap.state_dict()


def probe_plain(widths, setup: Setup, images, batch: int, seed: int) -> float:
    p, batches, stamps = plain_recipe(widths, setup.unet, seed), Batches(len(images), batch, seed), []
    for step in range(setup.probe_steps):
        plain_step(p, images, batches, step)
        stamps.append(time.perf_counter())
    return step_seconds(stamps, setup.probe_warm)


def race_plain(args, setup: Setup, data, folder: Path, start, meta: dict) -> None:
    images, batch = data[0], setup.batch_size or PLAIN["batch_size"]
    widths = matched_widths(setup.unet)
    meta = {**meta, "params": count_parameters(diffusers_unet(plain_unet_config(setup.unet), widths)),
            "widths": widths, "settings": {**PLAIN, "batch_size": batch}, "batch_size": batch}
    start("ready")
    meta["probe_s_per_step"] = probe_plain(widths, setup, images, batch, args.seed)
    start("probed")
    clock = Clock()
    p, batches = plain_recipe(widths, setup.unet, args.seed), Batches(len(images), batch, args.seed)
    base = {"unet_config": plain_unet_config(setup.unet).to_dict(), "widths": list(widths),
            "scheduler_config": json.dumps(dict(p.scheduler.config))}
    snaps, step = Snapshots(folder, args.budgets, clock, base, meta), 0
    while True:
        plain_step(p, images, batches, step)
        step += 1
        if snaps.after_step(step, lambda: plain_ema_weights(p)):
            return


# ---- the race: two worker processes started together ----

RACERS = {"ours": race_ours, "diffusers": race_plain}
PHASES = ("ready", "probed", "done")  # a worker says each on its stdout; the parent says "go" when both have


def worker(args) -> int:
    """One recipe's side of the race (`--worker NAME`, started by race())."""
    pipe, sys.stdout = sys.stdout, sys.stderr  # the parent's pipe carries the phases only; any print goes to stderr

    def start(phase: str) -> None:  # wait at the start line until the other recipe is there too
        print(phase, file=pipe, flush=True)
        if sys.stdin.readline().strip() != "go":
            raise SystemExit(1)  # the parent gave up
    torch.set_num_threads(args.threads)
    setup = SMOKE if args.smoke else FULL
    try:
        images, labels = load_images("mnist", args.data_root, train=True)
        data = (images[:setup.n_images], labels[:setup.n_images])
        meta = {"recipe": args.worker, "n_images": len(data[0]), "threads": args.threads, "seed": args.seed,
                "smoke": args.smoke, "machine": machine_note(args.threads)}  # the load average as the race starts
        RACERS[args.worker](args, setup, data, Path(args.out) / args.worker, start, meta)
    except DdpmLiteError as e:
        print(f"error: {args.worker} worker: {e}", file=sys.stderr)
        return 2
    print("done", file=pipe, flush=True)
    return 0


def start_worker(args, name: str) -> subprocess.Popen:
    argv = [sys.executable, "-m", __spec__.name, "--worker", name, "--out", str(args.out),
            "--threads", str(args.threads),
            "--seed", str(args.seed), "--budgets", ",".join(f"{b:g}" for b in args.budgets)]
    argv += ["--smoke"] * args.smoke + (["--data-root", args.data_root] if args.data_root else [])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),  # these benchmarks, this ddpm_lite
           "OMP_NUM_THREADS": str(args.threads)}
    return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)


def race(args) -> None:
    """Both recipes load their data, probe together, then train together; returns when both are done."""
    workers = {name: start_worker(args, name) for name in RECIPES}
    try:
        for phase in PHASES:
            for name, w in workers.items():
                if w.stdout.readline().strip() != phase:
                    raise RuntimeError(f"the {name} worker stopped before it was {phase} (exit status {w.wait()}); "
                                       f"its error is printed above")
            if phase != "done":
                for w in workers.values():
                    w.stdin.write("go\n")
                    w.stdin.flush()
    finally:
        for w in workers.values():
            if w.poll() is None:
                w.kill()  # only when the other one failed
            w.wait()


# ---- scoring, after the race ----

def draw_ours(ckpt: dict, n: int, seed: int, batch: int = 500) -> tuple:
    model, schedule = checkpoint.build(ckpt)
    x = sample(model, schedule, n, generator=torch.Generator().manual_seed(seed), batch_size=batch)
    return to_uint8(x), f"sample() with the snapshot's settings (model.sampling): {model.sampling}"


@torch.inference_mode()
def draw_plain(ckpt: dict, n: int, seed: int, batch: int = 500) -> tuple:
    """The loop of diffusers' pipelines: DDIMScheduler from the training scheduler's config, 20 steps, eta 0."""
    from diffusers import DDIMScheduler
    cfg = UNetConfig(**ckpt["unet_config"])
    unet = diffusers_unet(cfg, tuple(ckpt["widths"]))
    unet.load_state_dict(ckpt["ema"])
    unet.eval()
    scheduler = DDIMScheduler.from_config(json.loads(ckpt["scheduler_config"]))
    scheduler.set_timesteps(PLAIN["ddim_steps"])
    g, out = torch.Generator().manual_seed(seed), []
    for i in range(0, n, batch):
        x = torch.randn(min(batch, n - i), cfg.in_channels, cfg.image_size, cfg.image_size, generator=g)
        for t in scheduler.timesteps:
            x = scheduler.step(unet(x, t).sample, t, x, eta=0.0).prev_sample
        out.append(to_uint8(x))
    c = scheduler.config
    return torch.cat(out), (f"DDIMScheduler.from_config(training config) {PLAIN['ddim_steps']} steps, eta 0 "
                            f"(clip_sample={c.clip_sample}, timestep_spacing={c.timestep_spacing!r})")


DRAW = {"ours": draw_ours, "diffusers": draw_plain}


def snapshot_files(folder: Path) -> list:
    files = [f for recipe in RECIPES for f in sorted((folder / recipe).glob("budget_*.pt"))]
    if not files:
        raise DdpmLiteError(f"{folder} holds no snapshots (ours/budget_*.pt, diffusers/budget_*.pt); run the race "
                            f"with --out {folder} first")
    return files


def score_row(ckpt: dict, result: dict, sampler: str) -> dict:
    meta, model, real = ckpt["meta"], result["model"], result["real"]
    images = ckpt["step"] * meta["batch_size"]
    return {"recipe": meta["recipe"], "budget_min": meta["budget_min"], "train_min": meta["train_s"] / 60,
            "steps": ckpt["step"], "epochs": images / meta["n_images"], "images_per_s": images / meta["train_s"],
            "n": model["n"], "fid": model["fid"], "fid_real": real["fid"], "fid_ratio": model["fid"] / real["fid"],
            "precision": model["precision"], "recall": model["recall"], "confident": model["confident"],
            "confident_real": real["confident"], "balance": model["class_balance"] + 0.0,
            "balance_real": real["class_balance"] + 0.0, "ended_early": meta["ended_early"], "sampler": sampler}


def score(folder: Path, n: int | None, seed: int, data_root=None) -> tuple:
    """(rows, {recipe: its training meta}) for every snapshot in the folder, n samples each (None: 10,000, or
    --smoke's n for snapshots of a smoke run)."""
    from ddpm_lite.evaluation.classifier import load_classifier
    classifier = load_classifier()
    ref = metrics.reference(classifier, data_root)  # the 10,000 test digits, embedded once
    rows, recipes = [], {}
    for path in snapshot_files(folder):
        ckpt = checkpoint.load(path)
        n = n or (SMOKE if ckpt["meta"]["smoke"] else FULL).n
        images, sampler = DRAW[ckpt["meta"]["recipe"]](ckpt, n, seed)
        result = metrics.evaluate(images, classifier=classifier, seed=seed, data_root=data_root, ref=ref)
        rows.append(score_row(ckpt, result, sampler))
        recipes.setdefault(ckpt["meta"]["recipe"], {k: v for k, v in ckpt["meta"].items()
                                                   if k not in ("budget_min", "train_s", "elapsed_s", "ended_early")})
        print(f"scored {path} ({rows[-1]['train_min']:.2f} training min, FID {rows[-1]['fid']:.2f})",
              file=sys.stderr, flush=True)
    return sorted(rows, key=lambda r: (RECIPES.index(r["recipe"]), r["budget_min"])), recipes


# ---- the report ----

COLUMNS = ["recipe", "budget (min)", "trained (min)", "steps", "epochs", "images/s", "FID (real)", "FID / real",
           "confident (real)", "balance (real)"]


def markdown_row(r: dict) -> str:
    cells = [r["recipe"], f"{r['budget_min']:g}", f"{r['train_min']:.2f}" + " (ended)" * r["ended_early"],
             f"{r['steps']:,}", f"{r['epochs']:.2f}", f"{r['images_per_s']:.0f}",
             f"{r['fid']:.2f} ({r['fid_real']:.2f})", f"{r['fid_ratio']:.1f}x",
             f"{r['confident']:.3f} ({r['confident_real']:.3f})", f"{r['balance']:.3f} ({r['balance_real']:.3f})"]
    return "| " + " | ".join(cells) + " |"


HOUSEKEEPING = ("dataset", "data_root", "out_dir", "ckpt_every", "log_every", "device", "amp", "init")


def recipe_lines(recipes: dict, rows: list) -> list:
    """What each recipe was: size, speed, settings, sampler, and the machine it trained on."""
    lines = []
    for name, meta in recipes.items():
        size = f"{meta['params']:,} parameters" + (f", widths {tuple(meta['widths'])}" if "widths" in meta else "")
        planned = (f", {meta['planned_steps']:,} steps planned from it so that the learning-rate schedule ends at "
                   f"the last budget" if "planned_steps" in meta else "")
        settings = {k: v for k, v in meta["settings"].items() if k not in HOUSEKEEPING}
        sampler = next(r["sampler"] for r in rows if r["recipe"] == name)
        lines.append(f"{name}: {size}; probe {meta['probe_s_per_step']:.3f} s/step{planned}; settings {settings}; "
                     f"sampled with {sampler}; trained on {meta['machine']}")
    return lines


def report(rows: list, recipes: dict) -> str:
    table = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)] + [markdown_row(r) for r in rows]
    notes = [f"n = {rows[0]['n']:,} samples per snapshot, scored with metrics.evaluate (real: {rows[0]['n']:,} random "
             f"training digits); trained (min): the recipe's training clock at the snapshot; '(ended)': its run "
             f"ended before this budget"]
    return "\n".join(table + [""] + crossing_lines(first_budgets(rows)) + [""] + notes + recipe_lines(recipes, rows))


# ---- the command line ----

def budget_list(s: str) -> tuple:
    try:
        budgets = sorted({float(v) for v in s.split(",") if v.strip()})
    except ValueError:
        budgets = []
    if not budgets or not all(0 < b < math.inf for b in budgets):
        raise argparse.ArgumentTypeError(f"must be comma-separated positive minutes, e.g. 10,20,40, got {s}")
    return tuple(budgets)


def parse(argv) -> argparse.Namespace:
    p = Parser(description=__doc__.splitlines()[0])
    p.add_argument("--budgets", type=budget_list, default=None,
                   help="training minutes at which each recipe is scored (default: 10,20,40; --smoke: 0.03,0.06)")
    p.add_argument("--threads", type=positive_int, default=max(1, (os.cpu_count() or 1) // 2),
                   help="torch threads per recipe while training (default: half the cores); scoring uses both shares")
    p.add_argument("--n", type=positive_int, default=None,
                   help="samples per snapshot (default: 10000; 32 for --smoke and its snapshots)")
    p.add_argument("--seed", type=nonneg_int, default=0)
    p.add_argument("--out", default="runs/time_to_quality_race", help="folder for the snapshots (must hold none)")
    p.add_argument("--score-only", metavar="FOLDER", help="score the snapshots of an earlier race again")
    p.add_argument("--json", help="write every row, the first budgets and the recipes' settings here")
    p.add_argument("--data-root", default=None, help="MNIST's folder (default: $DDPM_LITE_DATA, else the cache)")
    p.add_argument("--smoke", action="store_true", help="seconds of training, tiny network and n: checks the code")
    p.add_argument("--worker", choices=RECIPES, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    setup = SMOKE if args.smoke else FULL
    args.budgets = args.budgets or setup.budgets
    args.n = args.n or (None if args.score_only else setup.n)  # --score-only: the snapshots say which
    if args.n is not None and args.n <= metrics.K:
        p.error(f"--n must be more than {metrics.K} (precision and recall use k-nearest neighbours), got {args.n}")
    return args


def check_out_folder(folder: Path) -> None:
    if any(folder.glob("*/budget_*.pt")):
        raise DdpmLiteError(f"--out {folder} already holds snapshots of a race; pass an empty folder, or score them "
                            f"with --score-only {folder}")


def main(argv=None) -> int:
    args = parse(argv)
    if args.worker:
        return worker(args)
    try:
        import diffusers  # noqa: F401
    except ImportError:
        print("error: diffusers is not installed: pip install -e '.[bench]'", file=sys.stderr)
        return 2
    folder, threads = Path(args.score_only or args.out), torch.get_num_threads()
    try:
        if not args.score_only:
            check_out_folder(folder)
            race(args)
        torch.set_num_threads(min(os.cpu_count() or 1, 2 * args.threads))  # the two recipes' shares together
        rows, recipes = score(folder, args.n, args.seed, args.data_root)
    except (DdpmLiteError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        torch.set_num_threads(threads)  # as it was: main() may run inside another program (the tests)
    print(report(rows, recipes))
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "first_budgets": first_budgets(rows),
                                               "recipes": recipes}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
