"""Progress snapshots: small copies of one training run at a few points, for watching a model learn (notebook 03).

A snapshot is a release-style checkpoint (checkpoint.py's layout: EMA weights, model config, schedule, and the
source's recommended "sampling" if it has one) with the weights stored in float16, half the size of float32, and a
"progress" entry that says how far training had got: optimizer steps, images seen, epochs, minutes of training and
the loss of the last logged steps, all read from the training checkpoint it was made from. checkpoint.load returns
its weights as float32. tools/export_progress.py writes them; shipped_snapshots() lists the ones installed with
the package. snapshot_samples decodes the same noise with each, with one fixed sampler (the slider and its twin).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import NamedTuple

import torch

from .. import checkpoint
from ..errors import CheckpointError
from ..samplers import SamplerSettings, resolve_labels, sample
from ..recipe import RECIPE_SAMPLING

SHIPPED_DIR = "progress"  # the shipped snapshots of one training run (checkpoints/progress/), earliest first
TRAIN_IMAGES = {"mnist": 60_000, "fashion-mnist": 60_000, "cifar10": 50_000}  # one epoch of each training set
# One sampler for every snapshot: the recipe's (recipe.RECIPE_SAMPLING: DDIM 20, eta 1, eps / 0.98) without its
# guidance, so that the pictures show the network alone (guidance is notebook 06's subject), and with the labels
# chosen by the caller instead of at random.
LEARNING_SETTINGS = replace(RECIPE_SAMPLING, labels=None, guidance=0.0)


def shipped_snapshots() -> list[Path]:
    """The shipped progress snapshots (checkpoints/progress/*.pt), in training order: their names carry the step."""
    found = sorted(checkpoint.shipped(SHIPPED_DIR).glob("*.pt"))
    if not found:
        raise CheckpointError(f"no progress snapshots are installed in {checkpoint.shipped(SHIPPED_DIR)}; write them "
                              f"with tools/export_progress.py (see checkpoints/README.md) or pass snapshot paths")
    return found


@dataclass(frozen=True)
class Progress:
    """How far a run had trained when a checkpoint was written. epochs is None for a dataset of unknown size; loss is
    the training loss of the last logged steps (history's mean, of the raw weights), None before the first row."""
    step: int
    images: int
    epochs: float | None
    minutes: float
    loss: float | None

    def describe(self, sep: str = ", ") -> str:
        """"step 469, 60,032 images, 1.00 epochs, 4.9 min of training, loss 0.0312" (what is known)."""
        parts = [f"step {self.step:,}", f"{self.images:,} images"]
        parts += [f"{self.epochs:.2f} epochs"] if self.epochs is not None else []
        parts += [f"{self.minutes:.1f} min of training"]
        return sep.join(parts + ([f"loss {self.loss:.4f}"] if self.loss is not None else []))


def training_progress(ckpt: dict) -> Progress:
    """A snapshot's stored Progress, or one read from a training checkpoint: step, its train_config's (global)
    batch size and dataset, meta.elapsed_s and the last history row. Steps count this run only (a run started
    with --init continues another, whose steps are not included)."""
    if "progress" in ckpt:
        return Progress(**ckpt["progress"])
    cfg = ckpt.get("train_config") or {}
    if "step" not in ckpt or "batch_size" not in cfg:
        raise CheckpointError("this checkpoint does not say how far training had got (no step or train_config); "
                              "pass a training checkpoint (a run's last.pt or a copy of it), not a release export")
    images = ckpt["step"] * cfg["batch_size"]  # the global batch, whatever the number of processes
    size = TRAIN_IMAGES.get(cfg.get("dataset"))
    history = ckpt.get("history") or []
    return Progress(step=ckpt["step"], images=images, epochs=images / size if size else None,
                    minutes=(ckpt.get("meta") or {}).get("elapsed_s", 0.0) / 60,
                    loss=float(history[-1][1]) if history else None)


def snapshot_payload(ckpt: dict) -> dict:
    """The snapshot of a loaded training checkpoint: float16 EMA weights, configs, its sampling, its Progress.
    checkpoint.save writes it (tools/export_progress.py)."""
    ema = {k: v.half() if v.is_floating_point() else v for k, v in ckpt["ema"].items()}
    too_big = [k for k, v in ema.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if too_big:  # float16 ends at 65504: a larger weight would become inf
        raise CheckpointError(f"weights {too_big[:3]} do not fit in float16; this checkpoint cannot be a snapshot")
    payload = {k: ckpt[k] for k in ("model_config", "schedule", "sampling") if k in ckpt}
    return {**payload, "ema": ema, "step": ckpt.get("step"), "progress": asdict(training_progress(ckpt))}


def settings_text(s: SamplerSettings, T: int) -> str:
    """"DDIM 20 steps, eta 1, eps / 0.98": the sampler and the knobs that differ from the plain defaults."""
    parts = [f"{s.sampler.upper()} {s.resolved_steps(T)} steps"] + ([f"eta {s.eta:g}"] if s.sampler != "ddpm" else [])
    parts += [f"eps / {s.eps_scaling:g}"] if s.eps_scaling != 1 else []
    parts += ["trailing grid"] if s.grid == "trailing" else []
    parts += [f"guidance w = {s.guidance:g}"] if s.guidance else []
    return ", ".join(parts + ([s.precision] if s.precision != "fp32" else []))


class Snapshot(NamedTuple):
    progress: Progress
    labels: torch.Tensor | None  # (n,) the labels asked for
    x: torch.Tensor  # (n, C, H, W) in [-1, 1]
    sampler: str  # how: settings_text and the seed


def snapshot_samples(path, n: int = 20, labels="all", seed: int = 0, settings: SamplerSettings | None = None,
                     device="cpu") -> Snapshot:
    """n digits from the checkpoint at `path`, drawn with `settings` (default LEARNING_SETTINGS) whatever the file
    recommends, from the generator torch.Generator().manual_seed(seed): every snapshot gets the same x_T and the
    same noise at each step, so only the weights differ. labels: as sample() takes them ("all": 0..9 in turn)."""
    ckpt = checkpoint.load(path)
    model, schedule = checkpoint.build(ckpt, device=device)
    model.sampling = settings or LEARNING_SETTINGS
    y = resolve_labels(labels, n, model.config.num_classes, seed)
    x = sample(model, schedule, n, labels=y, generator=torch.Generator().manual_seed(seed))
    return Snapshot(training_progress(ckpt), y, x, f"{settings_text(model.sampling, schedule.T)}, seed {seed}")
