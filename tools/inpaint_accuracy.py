#!/usr/bin/env python
"""How often the classifier reads an inpainted digit as the digit it was: real MNIST test digits with one half
hidden, filled in by the shipped model (ddpm_lite.editing.inpaint, no label given), against the same rate for the
unmasked originals and for the visible half alone (the hidden half left as background).

    python -m tools.inpaint_accuracy                                  # n=500, left half, paste / RePaint r=5
    python -m tools.inpaint_accuracy --n 1000 --hide top --out results/eval/inpaint_top_half.json

Rates come with their binomial standard error sqrt(p (1 - p) / n). Sampling uses the checkpoint's own settings
(the shipped one: DDIM 20 steps, eta 0.7, eps / 0.98); the digits are a seeded random subset of the test set.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import torch

import ddpm_lite
from ddpm_lite import editing
from ddpm_lite.evaluation import metrics
from ddpm_lite.evaluation.classifier import load_classifier


def rate(probs: torch.Tensor, labels: torch.Tensor) -> dict:
    p = (probs.argmax(1) == labels).float().mean().item()
    return {"rate": round(p, 4), "se": round(math.sqrt(p * (1 - p) / len(labels)), 4)}


def inpainted(model, schedule, x0, mask, args, resample: int) -> torch.Tensor:
    """The whole subset inpainted in batches; one generator, seeded once, so the run repeats exactly."""
    g, out = torch.Generator().manual_seed(args.seed), []
    for i in range(0, len(x0), args.batch):
        out.append(editing.inpaint(model, schedule, x0[i:i + args.batch], mask, jump=args.jump, resample=resample,
                                   labels="none", generator=g))
    return torch.cat(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=500, help="test digits")
    p.add_argument("--hide", default="left", choices=editing.MASKS, help="the region the model fills")
    p.add_argument("--resample", type=int, nargs="+", default=[1, 5], help="RePaint runs per block (1 = paste only)")
    p.add_argument("--jump", type=int, default=2, help="RePaint block length, in sampler steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--out", type=Path, default=Path("results/eval/inpaint_left_half.json"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, schedule = ddpm_lite.load_model()
    classifier = load_classifier()
    images, labels = ddpm_lite.load_images("mnist", train=False)
    pick = torch.randperm(len(images), generator=torch.Generator().manual_seed(args.seed))[:args.n]
    x0, y = ddpm_lite.to_model_range(images[pick]), labels[pick]
    mask = editing.make_mask(args.hide, x0.shape[-1])
    result = {"n": args.n, "hide": args.hide, "sampling": model.sampling.to_dict(), "labels": "none",
              "jump": args.jump, "seed": args.seed, "command": " ".join(["python", *sys.argv]),
              "original": rate(metrics.embed(classifier, x0)[1], y),
              "visible half only": rate(metrics.embed(classifier, mask * x0 + (1 - mask) * -1)[1], y)}
    for r in args.resample:
        start = time.perf_counter()
        x = inpainted(model, schedule, x0, mask, args, r)
        result[f"inpainted, resample {r}"] = {**rate(metrics.embed(classifier, x)[1], y),
                                              "seconds": round(time.perf_counter() - start, 1)}
        print(r, result[f"inpainted, resample {r}"], flush=True)
    result["machine"] = f"{platform.processor() or platform.machine()}, {args.threads} thread(s), torch {torch.__version__}"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
