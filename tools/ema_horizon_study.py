#!/usr/bin/env python
"""Several EMA horizons from one training run: the recipe's run, with extra EMAs of the same weights kept beside it.

    python -m tools.ema_horizon_study --seed 0 --out runs/ema/s0 --variant k5:0.9999 --variant k3:0.9999

A variant kK:CAP averages the weights with decay `recipe.ema_decay_at(n, CAP, K)` at step n, which weighs roughly the
last n / (K - 1) steps: the recipe's own EMA is k10:0.999 (`TrainConfig.ema_decay` with its warm-up), a ninth of the
run. At each --at step (default: the ends of epoch 1 and 2 of the default recipe) every variant is written as
OUT/k<K>c<CAP's digits>_step<step>.pt (k5:0.9999 -> k5c9999), the run's checkpoint with that EMA in place of its own,
for `python -m ddpm_lite evaluate`. The recipe's EMA is carried along as a variant too and checked against the run's,
so the two agree bit for bit.
"""
from __future__ import annotations

import argparse
import copy
import math
from dataclasses import replace
from pathlib import Path

import torch

from ddpm_lite import checkpoint
from ddpm_lite.recipe import EMA_WARMUP, TrainConfig, ema_decay_at
from ddpm_lite.training import ema_update, train
from ddpm_lite.unet import UNetConfig


def parse_variant(text: str) -> tuple[str, int, float]:
    """'k5:0.9999' -> ('k5c9999', 5, 0.9999); K > 1 and 0 < CAP < 1, else an error naming the form."""
    try:
        k_part, cap_part = text.split(":")
        k, cap = int(k_part.removeprefix("k")), float(cap_part)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a variant is kK:CAP, e.g. k5:0.9999, got {text!r}") from None
    if k < 2 or not 0 < cap < 1:
        raise argparse.ArgumentTypeError(f"a variant needs K >= 2 and 0 < CAP < 1, got {text!r}")
    return f"k{k}c{cap_part.split('.')[-1]}", k, cap


def study(cfg: TrainConfig, variants, at, *, model_cfg: UNetConfig = UNetConfig(), data=None) -> list[Path]:
    """Train cfg with one extra EMA per (name, K, CAP) variant; write each at the steps in `at`; return the files."""
    out, written = Path(cfg.out_dir), []
    recipe = parse_variant(f"k{EMA_WARMUP}:{cfg.ema_decay}")
    variants = [recipe] + [v for v in variants if v != recipe]
    shadows: dict[str, torch.nn.Module] = {}

    def callback(step, loss, model, ema):
        if not shadows:  # after step 1 every variant has made the recipe's first update (decay 1/10: near the model)
            shadows.update({name: copy.deepcopy(ema) for name, _, _ in variants})
        else:  # the update of optimizer step n = step - 1, as train's own (train._step)
            for name, k, cap in variants:
                ema_update(shadows[name], model, ema_decay_at(step - 1, cap, k))
        if step in at:
            assert all(torch.equal(a, b) for a, b in zip(shadows[recipe[0]].parameters(), ema.parameters())), \
                f"{recipe[0]} drifted from the run's own EMA"
            payload = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
            kept = {key: v for key, v in payload.items() if key not in ("model", "optimizer")}
            for name, shadow in shadows.items():
                written.append(checkpoint.save({**kept, "ema": shadow.state_dict()}, out / f"{name}_step{step}.pt"))
            print(f"step {step}: {len(shadows)} EMAs written to {out}", flush=True)

    train(replace(cfg, ckpt_every=math.gcd(*at)), model_cfg, callback=callback, progress=False, data=data)
    return written


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=3750, help="the default recipe's 2 epochs of 60,000 in batches of 32")
    p.add_argument("--at", type=int, nargs="+", default=[1875, 3750])
    p.add_argument("--variant", type=parse_variant, action="append", required=True)
    args = p.parse_args(argv)
    study(TrainConfig(steps=args.steps, seed=args.seed, out_dir=args.out), args.variant, set(args.at))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
