"""The recipe: how a model is trained and how the trained model is sampled, as values apart from the loop.

TrainConfig holds a run's settings and refuses one outside RANGES (the command line's flags check the same ranges);
lr_at and ema_decay_at are the learning-rate and EMA schedules the loop (training.py) follows; RECIPE_SAMPLING and
recommended_sampling say how the model a run produces is sampled, stored in every checkpoint it writes; EPOCHS is a
run's length when none is asked for, and epochs_of / steps_for_epochs convert between epochs and optimizer steps.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, replace
from typing import NamedTuple

import torch

from .data import DATASETS
from .samplers import SamplerSettings
from .schedule import KINDS as SCHEDULES
from .unet import UNetConfig

EPOCHS = 2.0  # a run's length unless steps or epochs are asked for: two passes over the training set


class Range(NamedTuple):
    """The values a setting may take: an interval (open or closed at each end), optionally of integers."""
    low: float
    high: float = math.inf
    low_closed: bool = True
    high_closed: bool = False
    integer: bool = False

    def __contains__(self, value) -> bool:
        kind = numbers.Integral if self.integer else numbers.Real
        if isinstance(value, bool) or not isinstance(value, kind) or math.isnan(value):
            return False
        above = value >= self.low if self.low_closed else value > self.low
        below = value <= self.high if self.high_closed else value < self.high
        return above and below

    def __str__(self) -> str:  # reads after "must be": "in [0, 1)", "an integer >= 1"
        if self.integer and self.high == math.inf:
            return f"an integer >= {int(self.low)}"
        low, high = (f"{v:g}" if math.isinf(v) or v != int(v) else str(int(v)) for v in (self.low, self.high))
        interval = f"{'[' if self.low_closed else '('}{low}, {high}{']' if self.high_closed else ')'}"
        return f"an integer in {interval}" if self.integer else f"in {interval}"


COUNT = Range(1, integer=True)
RANGES = {  # TrainConfig fields and the values that mean something; the command line's flags check the same
    "steps": COUNT, "batch_size": COUNT, "ckpt_every": COUNT, "log_every": COUNT, "T": COUNT,
    "warmup": Range(0, integer=True),
    "seed": Range(0, 2 ** 32, integer=True),  # seed * 1_000_003 + 7_919 * step stays inside a generator's seed
    "lr": Range(0, low_closed=False),  # open at both ends: 0, inf and nan are refused
    "lr_min_ratio": Range(0, 1, high_closed=True),
    "weight_decay": Range(0),
    "grad_clip": Range(0, low_closed=False),
    "ema_decay": Range(0, 1),  # 1 would never move the EMA weights
    "label_dropout": Range(0, 1, high_closed=True),
    "min_snr_gamma": Range(0, low_closed=False),  # or None: plain L_simple
}
CHOICES = {"schedule": SCHEDULES, "dataset": DATASETS,
           "device": ("auto", "cpu", "cuda", "cuda:N", "mps")}  # cuda:N: any GPU index


@dataclass(frozen=True)
class TrainConfig:
    dataset: str = "mnist"
    data_root: str | None = None
    steps: int = 10_000
    # small batches and a short warm-up: more optimizer steps per epoch at the same images/s on a CPU
    # (the model card and benchmarks/README.md say how this was chosen)
    batch_size: int = 32  # the global batch: under torchrun each of N processes takes batch_size / N of it
    lr: float = 1e-3
    warmup: int = 100  # linear learning-rate warm-up steps, then cosine decay to lr_min_ratio * lr
    lr_min_ratio: float = 0.1
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.999  # the cap of the warm-up: ema_decay_at
    label_dropout: float = 0.1  # share of labels replaced by "no label" (classifier-free guidance)
    min_snr_gamma: float | None = 5.0  # None: plain L_simple
    schedule: str = "cosine"
    T: int = 1000
    seed: int = 0
    out_dir: str = "runs/mnist"
    ckpt_every: int = 500
    log_every: int = 50
    device: str = "auto"
    amp: bool = True  # bfloat16 autocast, CUDA only
    init: str | None = None  # start from this checkpoint's EMA weights (fine-tuning); the optimizer starts fresh

    def __post_init__(self):
        """Refuse a setting outside its meaning before any work, in one line naming field, value and range."""
        for name, allowed in RANGES.items():
            value = getattr(self, name)
            if value not in allowed and not (name == "min_snr_gamma" and value is None):
                raise ValueError(f"{name} must be {allowed}, got {value!r}")
        for name in ("schedule", "dataset"):
            if getattr(self, name) not in CHOICES[name]:
                raise ValueError(f"{name} must be one of {', '.join(CHOICES[name])}, got {getattr(self, name)!r}")
        if not _is_device(self.device):
            raise ValueError(f"device must be one of {', '.join(CHOICES['device'])}, got {self.device!r}")


def _is_device(name) -> bool:
    try:
        return name == "auto" or torch.device(name).type in ("cpu", "cuda", "mps")
    except (RuntimeError, TypeError):
        return False


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up over cfg.warmup steps, then cosine decay to lr_min_ratio * lr at cfg.steps."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (cfg.lr_min_ratio + (1 - cfg.lr_min_ratio) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


EMA_WARMUP = 10


def ema_decay_at(n: int, cap: float, warmup: int = EMA_WARMUP) -> float:
    """The EMA's decay at optimizer step n (from 0): min(cap, (1 + n) / (warmup + n)), which weighs about the last
    n / (warmup - 1) steps until the cap binds, so the random initial weights are soon forgotten (how the warm-up
    was chosen: benchmarks/README.md, "The EMA's horizon")."""
    return min(cap, (1 + n) / (warmup + n))


# How a model of this recipe is sampled at 20 steps: DDIM, eps / 0.98, a random label each, as the release, but
# eta = 1 (DDPM's posterior noise on the strided steps: fresh noise corrects some of an under-trained network's
# errors) and a touch of classifier-free guidance, w = 0.1. Every training checkpoint and its export carries it, so
# a model you trained samples with no flags, like the shipped one. How each setting was chosen, and what it scores:
# the model card (checkpoints/README.md) and benchmarks/README.md, "Sampling a short run".
RECIPE_SAMPLING = SamplerSettings(sampler="ddim", steps=20, eta=1.0, eps_scaling=0.98, guidance=0.1, labels="random")

# A longer run is sampled as the release is, eta 0.7 and no guidance: once the network is trained well, those aids
# cost more than they correct (benchmarks/README.md, "Ten epochs of the recipe"). Runs shorter than LONG_RUN_EPOCHS
# keep RECIPE_SAMPLING.
LONG_RUN_EPOCHS = 10.0
LONG_RUN_SAMPLING = replace(RECIPE_SAMPLING, eta=0.7, guidance=0.0)


def recommended_sampling(model_cfg: UNetConfig, label_dropout: float = 0.1, epochs: float = 2.0) -> SamplerSettings:
    """RECIPE_SAMPLING, or LONG_RUN_SAMPLING after LONG_RUN_EPOCHS epochs of training; without labels for an
    unconditional model, without guidance where no "no label" was trained."""
    base = LONG_RUN_SAMPLING if epochs >= LONG_RUN_EPOCHS else RECIPE_SAMPLING
    if not model_cfg.num_classes:
        return replace(base, labels=None, guidance=0.0)
    return base if label_dropout > 0 else replace(base, guidance=0.0)


def epochs_of(steps: int, n_images: int, batch_size: int) -> float:
    """Passes over n_images in `steps` steps of batch_size pictures (the global batch: every process's share); the
    inverse of steps_for_epochs, without its rounding up."""
    return steps * batch_size / n_images


def steps_for_epochs(epochs: float, n_images: int, batch_size: int) -> int:
    """Optimizer steps for `epochs` passes over n_images in batches of batch_size: ceil(epochs * N / B), at least 1."""
    return max(1, math.ceil(epochs * n_images / batch_size))


def model_config_for(images: torch.Tensor, labels: torch.Tensor | None = None, **overrides) -> UNetConfig:
    """The UNet for this data: channels and size from images (N, C, H, W), one class per label value (labels 0..K-1),
    unconditional (num_classes None) when there is only one label or none; overrides win."""
    _, channels, height, width = images.shape
    if height != width:
        raise ValueError(f"pictures must be square, got {height}x{width}; load a folder with "
                         f"load_images('folder', root, image_size=...), which crops the middle square")
    k = int(labels.max()) + 1 if labels is not None and len(labels) else 1
    return UNetConfig(**{"in_channels": channels, "image_size": height, "num_classes": k if k > 1 else None,
                         **overrides})
