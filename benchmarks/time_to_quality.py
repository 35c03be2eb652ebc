"""Minutes of training until samples reach a quality level: the classifier-confident share of metrics.py.

    python -m benchmarks.time_to_quality RUN_OR_CHECKPOINTS... [--level 0.9] [--n 500] [--steps 20]
    python -m benchmarks.time_to_quality --collect runs/mnist snapshots/      # while `train --out runs/mnist` runs

For each checkpoint (a file, or every .pt file in a folder): its step, the training minutes that reached it (the
checkpoint's meta.elapsed_s, else summed from its history rows [step, loss, lr, images/s]), the last logged loss,
the share of n DDIM samples from its EMA weights that ddpm-lite's MNIST classifier assigns to one class with
p >= 0.9 (metrics.confident_share), and the balance of the predicted classes (metrics.class_balance). The answer is
the first checkpoint at or above --level whose balance also reaches --min-balance (the classifier calls the
clipped noise of an untrained network an "8" with p = 1); the one before it bounds the time from below. Real
training digits score the same way, for reference.

train.py overwrites last.pt every --ckpt-every steps, so a finished run folder holds one point. --collect polls a
running run's last.pt and keeps a copy of each new step (EMA weights, history and timing only: a few MB each);
score the copies afterwards, so that scoring does not slow the training it times.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from ddpm_lite import checkpoint
from ddpm_lite.data import to_uint8
from ddpm_lite.samplers import sample


def training_minutes(ckpt: dict) -> float | None:
    """Training time up to this checkpoint: meta.elapsed_s, or the history's logged throughput integrated."""
    if "meta" in ckpt:
        return ckpt["meta"]["elapsed_s"] / 60
    history, batch = ckpt.get("history"), ckpt.get("train_config", {}).get("batch_size")
    if not history or not batch:
        return None
    seconds, prev = 0.0, 0
    for step, _loss, _lr, images_per_s in history:
        seconds += (step - prev) * batch / images_per_s  # each row: images since the last row / their rate
        prev = step
    return seconds / 60


@torch.inference_mode()
def quality(model, schedule, classifier, n: int, steps: int, seed: int, batch: int = 250) -> tuple[float, float]:
    """(confident share, class balance) of n plain DDIM samples (eta 0, no epsilon scaling, the "no label" path,
    whatever the checkpoint recommends), rounded to uint8 as `sample --npy` writes them."""
    from ddpm_lite.evaluation.metrics import class_balance, confident_share, embed
    g, images = torch.Generator().manual_seed(seed), []
    for i in range(0, n, batch):
        images.append(to_uint8(sample(model, schedule, min(batch, n - i), sampler="ddim", steps=steps, eta=0.0,
                                      eps_scaling=1.0, labels="none", generator=g)))
    probs = embed(classifier, torch.cat(images))[1]
    return confident_share(probs), class_balance(probs.argmax(1)) + 0.0  # + 0.0: no "-0.000"


def checkpoints_in(paths: list) -> list:
    files = [f for p in map(Path, paths) for f in (sorted(p.glob("*.pt")) if p.is_dir() else [p])]
    ckpts = [(f, checkpoint.load(f)) for f in files]
    return sorted(ckpts, key=lambda fc: fc[1].get("step", 0))


def score(args) -> int:
    from ddpm_lite.evaluation.classifier import load_classifier
    classifier = load_classifier(args.classifier)
    reached, below = None, None
    print(f"{'checkpoint':<24}{'step':>8}{'minutes':>9}{'loss':>9}{'confident':>11}{'balance':>9}")
    for path, ckpt in checkpoints_in(args.paths):
        model, schedule = checkpoint.build(ckpt)
        minutes = training_minutes(ckpt)
        share, balance = quality(model, schedule, classifier, args.n, args.steps, args.seed)
        loss = ckpt["history"][-1][1] if ckpt.get("history") else float("nan")
        print(f"{path.name:<24}{ckpt.get('step', -1):>8}{minutes if minutes is not None else float('nan'):>9.1f}"
              f"{loss:>9.4f}{share:>11.3f}{balance:>9.3f}", flush=True)
        if reached is None:
            if share >= args.level and balance >= args.min_balance:
                reached = (ckpt.get("step"), minutes)
            else:
                below = (ckpt.get("step"), minutes)
    print(f"confident: share of p_max >= 0.9 from the MNIST classifier; balance: entropy of its predicted classes / "
          f"log 10; {args.n} samples, DDIM {args.steps}, EMA weights, seed {args.seed}; real training digits: "
          f"{real_scores(classifier, args.n, args.seed)}")
    if reached is None:
        print(f"level (confident >= {args.level}, balance >= {args.min_balance}) not reached by these checkpoints")
    else:
        minutes = lambda m: "?" if m is None else f"{m:.1f}"  # noqa: E731
        before = f"; step {below[0]} ({minutes(below[1])} min) was still below" if below else ""
        print(f"level (confident >= {args.level}, balance >= {args.min_balance}) reached at step {reached[0]} "
              f"after {minutes(reached[1])} training minutes{before}")
    return 0


def real_scores(classifier, n: int, seed: int) -> str:
    from ddpm_lite.data import DataNotFoundError, load_images
    from ddpm_lite.evaluation.metrics import class_balance, confident_share, embed
    try:
        images, _ = load_images("mnist", train=True)
    except DataNotFoundError:
        return "n/a (MNIST not found)"
    idx = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:n]
    probs = embed(classifier, images[idx])[1]
    return f"confident {confident_share(probs):.3f}, balance {class_balance(probs.argmax(1)):.3f}"


def collect(run_dir: str, out_dir: str, poll_s: float) -> int:
    """Copy each new step of run_dir/last.pt to out_dir/step_XXXXXX.pt until the run reaches its last step."""
    src, out = Path(run_dir) / "last.pt", Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seen = None
    while True:
        if src.is_file() and src.stat().st_mtime != seen:
            seen = src.stat().st_mtime
            ckpt = checkpoint.load(src)  # train.py writes atomically, so a file that exists is whole
            step, total = ckpt["step"], ckpt["train_config"]["steps"]
            keep = ("model_config", "schedule", "ema", "history", "train_config", "step", "meta")
            dst = checkpoint.save({k: ckpt[k] for k in keep if k in ckpt}, out / f"step_{step:06d}.pt")
            print(f"step {step}/{total} -> {dst}", flush=True)
            if step >= total:
                return 0
        time.sleep(poll_s)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("paths", nargs="*", help="checkpoint files or folders of them")
    p.add_argument("--level", type=float, default=0.9, help="confident share to reach (default: 0.9)")
    p.add_argument("--min-balance", type=float, default=0.9,
                   help="class balance the samples must also reach (default: 0.9): noise from an untrained network "
                        "is classified as one digit with p = 1, so the confident share alone is reached at step 0")
    p.add_argument("--n", type=int, default=500, help="samples per checkpoint (default: 500)")
    p.add_argument("--steps", type=int, default=20, help="DDIM steps (default: 20)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--classifier", default=None, help="default: checkpoints/mnist_classifier.pt")
    p.add_argument("--collect", nargs=2, metavar=("RUN_DIR", "OUT_DIR"), help="snapshot a running run instead")
    p.add_argument("--poll", type=float, default=10.0, help="--collect: seconds between looks (default: 10)")
    args = p.parse_args(argv)
    if args.collect:
        return collect(*args.collect, args.poll)
    if not args.paths:
        p.error("give checkpoint files or folders, or --collect RUN_DIR OUT_DIR")
    return score(args)


if __name__ == "__main__":
    sys.exit(main())
