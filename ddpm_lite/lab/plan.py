"""Planning a training run on your own data and this machine: the time a step takes here (measured on a few steps
of `train` itself), and a time budget turned into steps and a message (notebook 09).

Training time is counted in epochs (passes over the data), converted to steps by recipe.steps_for_epochs as the
command line's --epochs is. A step's time depends on the device, the network and the batch, not on the pictures, so
a few probe steps after a short warm-up (lazy initialisation, cuDNN's autotuning) predict the whole run.
"""
from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, replace
from time import perf_counter

import torch

from ..recipe import TrainConfig, epochs_of, steps_for_epochs
from ..training import train
from ..unet import UNetConfig

SHORT_RUN_WARMUP = 5  # a run shorter than 5x the recipe's warm-up warms up over its first fifth instead


def step_seconds(stamps: list, warmup: int) -> float:
    """Mean seconds per step from the times at the end of each step, leaving out the first `warmup` steps."""
    return (stamps[-1] - stamps[warmup - 1]) / (len(stamps) - warmup)


def seconds_per_step(cfg: TrainConfig, model_cfg: UNetConfig, data, *, warmup: int = 2, steps: int = 5) -> float:
    """Wall-clock seconds of one optimizer step of `train(cfg, model_cfg, data=data)` on cfg.device: the mean of
    `steps` steps after `warmup` steps (at least 1), measured in a throwaway run folder that is deleted after."""
    if warmup < 1 or steps < 1:
        raise ValueError(f"warmup and steps must be at least 1, got warmup={warmup}, steps={steps}")
    stamps = []

    def clock(step, loss, model, ema):  # after every step; the loss's .item() has waited for the device
        stamps.append(perf_counter())
        return step < warmup + steps  # False: stop here, before the last step's checkpoint would be timed
    with tempfile.TemporaryDirectory(prefix="ddpm_lite_probe_") as tmp:
        probe = replace(cfg, steps=warmup + steps + 1, out_dir=tmp, ckpt_every=10 ** 9, log_every=10 ** 9)
        train(probe, model_cfg, callback=clock, progress=False, data=data)
    return step_seconds(stamps, warmup)


def amp_pays(device) -> bool:
    """Whether bfloat16 autocast speeds training up here: on CUDA GPUs with bf16 tensor cores (compute capability
    8.0 and up: A100, RTX 30xx, L4, H100). Colab's free T4 (7.5) has none, so it trains in fp32."""
    device = torch.device(device)
    return device.type == "cuda" and torch.cuda.get_device_capability(device) >= (8, 0)


def duration(seconds: float) -> str:
    """A time as people say it: '45 s', '12 min', '2 h 05 min'."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 90 else f"{minutes // 60} h {minutes % 60:02d} min"


def _number(x: float) -> str:
    """Two significant digits below 10 (0.23, 2.5, 2), whole numbers above (12)."""
    return f"{x:.2g}" if x < 10 else f"{x:.0f}"


@dataclass(frozen=True)
class Plan:
    """A training run sized to a time budget on this machine: `steps` for this run, and what a full run would be."""
    device: str
    seconds_per_step: float
    batch_size: int
    n_images: int
    steps: int
    full_epochs: float

    @property
    def full_steps(self) -> int:
        return steps_for_epochs(self.full_epochs, self.n_images, self.batch_size)

    @property
    def epochs(self) -> float:
        return epochs_of(self.steps, self.n_images, self.batch_size)

    def seconds(self, steps: int | None = None) -> float:
        return (self.steps if steps is None else steps) * self.seconds_per_step

    def message(self) -> str:
        """What the run will do and how long it takes here, and, if it is shorter, what a full run would take."""
        head = (f"On {self.device}, one step of {self.batch_size} pictures takes {self.seconds_per_step:.3g} s "
                f"(measured). This run: {self.steps:,} steps ({_number(self.epochs)} epochs of "
                f"{self.n_images:,} pictures), about {duration(self.seconds())}.")
        if self.steps >= self.full_steps:
            return f"{head} That is a full run ({_number(self.full_epochs)} epochs)."
        return (f"{head} A full run of {_number(self.full_epochs)} epochs ({self.full_steps:,} steps) would take "
                f"about {duration(self.seconds(self.full_steps))} here.")

    def train_config(self, **settings) -> TrainConfig:
        """The recipe (TrainConfig's defaults, then `settings`) for this plan's steps and batch size. Unless a
        warm-up is given, a run shorter than SHORT_RUN_WARMUP times the recipe's warm-up warms up over its first
        fifth, so that it reaches the full learning rate at all."""
        warmup = min(TrainConfig.warmup, self.steps // SHORT_RUN_WARMUP)
        return TrainConfig(**{"warmup": warmup, **settings, "steps": self.steps, "batch_size": self.batch_size})


def for_budget(seconds_per_step: float, *, budget_s: float, n_images: int, batch_size: int, full_epochs: float,
               device: str = "cpu", max_steps: int | None = None) -> Plan:
    """The run that fits budget_s seconds of training at seconds_per_step: at least one step, at most a full run of
    full_epochs, and at most max_steps if given (a quick check such as CI's)."""
    full, fits = steps_for_epochs(full_epochs, n_images, batch_size), budget_s / seconds_per_step
    steps = full if fits >= full else math.floor(fits)  # an infinite budget: the full run
    return Plan(str(device), seconds_per_step, batch_size, n_images, max(1, min(steps, max_steps or steps)),
                full_epochs)
