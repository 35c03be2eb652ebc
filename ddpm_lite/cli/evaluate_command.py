"""`python -m ddpm_lite evaluate`: sample from a checkpoint (or read an .npy), score with metrics.py, print a table.

    python -m ddpm_lite evaluate --n 10000                    # the checkpoint's recommended sampling
    python -m ddpm_lite evaluate --label all --guidance 2     # labels 0..9 in turn, guided
    python -m ddpm_lite evaluate --npy samples.npy            # images written by `sample --npy`

With the same flags and seed it scores the very digits `sample --npy` writes.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from .. import checkpoint
from ..evaluation.classifier import load_classifier
from ..data import load_images, to_uint8
from ..errors import UsageError
from ..evaluation.metrics import CONFIDENT, K, evaluate, table
from ..samplers import sample
from .args import Help, add_sampling, check_writable, model_for

NAME, HELP = "evaluate", "FID, precision/recall and class scores of samples, beside real MNIST"


def add_arguments(sub) -> None:
    p = sub.add_parser(NAME, help=HELP, formatter_class=Help)
    add_sampling(p, None, "image count (default: 1000, or all of --npy)")
    p.add_argument("--npy", default=None, help="score these uint8 (N, 28, 28) images instead (from `sample --npy`)")
    p.add_argument("--conditional", action="store_true", help="the same as --label all")
    p.add_argument("--classifier", default=None, help="default: the shipped MNIST classifier")
    p.add_argument("--data-root", default=None, help="folder holding MNIST/ (default: $DDPM_LITE_DATA)")
    p.add_argument("--json", default=None, help="also write the figures as JSON to this file ('-': stdout only)")


def read_npy(path: str, n: int | None) -> torch.Tensor:
    import numpy as np
    try:
        arr = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise UsageError(f"--npy {path} does not exist; write one with "
                         f"`python -m ddpm_lite sample --n 1000 --npy {path}`") from None
    except (ValueError, OSError) as e:
        raise UsageError(f"--npy {path} is not a readable .npy file ({e})") from None
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[1:] != (28, 28):
        raise UsageError(f"--npy {path} holds {arr.dtype} {arr.shape}; expected uint8 (N, 28, 28) as written "
                         f"by `python -m ddpm_lite sample --npy`")
    if n is not None and n > len(arr):
        raise UsageError(f"--n {n} is more than the {len(arr)} images in {path}")
    return torch.from_numpy(arr[:n])


def check_args(args) -> None:
    """The checks that need no file, so a contradiction costs nothing."""
    if args.npy and args.checkpoint:
        raise UsageError("give --checkpoint (generate samples) or --npy (score saved ones), not both")
    if args.conditional and args.label not in (None, "all"):
        raise UsageError(f"--conditional means --label all; give one of them, not --label {args.label} too")
    if isinstance(args.label, int):
        raise UsageError(f"evaluate --label takes all, random or none, not a single digit ({args.label}): "
                         f"scores such as class balance need every digit")
    args.label = "all" if args.conditional else args.label
    if args.npy and args.label == "random":
        raise UsageError("--npy images carry no labels; score them with --label all if `sample --label all` "
                         "wrote them, or with no --label")
    if args.npy and args.guidance:
        raise UsageError("--guidance needs --label all or random and a checkpoint to sample (not --npy)")


def model_and_labels(args):
    """(model with its checked settings, schedule, labels), loaded before any sampling starts."""
    if torch.device(args.device).type == "cuda":
        # fp32 means fp32: cuDNN's default TF32 convolutions round to 10 mantissa bits, and the first DDIM step
        # from t = T multiplies rounding errors by 1 / sqrt(alpha_bar) (~20,000 here)
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    return model_for(args)


def generate(model, schedule, labels, args) -> torch.Tensor:
    """args.n samples as uint8 (N, 1, 28, 28), in batches, all noise from one seeded generator: the same digits
    `sample --npy` writes with the same flags."""
    x = sample(model, schedule, args.n, labels="none" if labels is None else labels, batch_size=args.batch_size,
               generator=torch.Generator().manual_seed(args.seed), device=args.device, progress=not args.no_progress)
    return to_uint8(x.cpu())


def settings_record(args, model=None, schedule=None) -> dict:
    """What the figures were measured on, for the JSON file."""
    record = {"source": args.npy or str(args.checkpoint or checkpoint.default_checkpoint()),
              "conditional": args.label not in (None, "none"), "labels": args.label, "seed": args.seed,
              "confident_threshold": CONFIDENT, "k": K, "class_balance": "entropy / log 10"}
    if model is not None:
        s = model.sampling
        record.update(sampler=s.sampler, steps=s.resolved_steps(schedule.T), eta=s.eta, guidance=s.guidance,
                      precision=s.precision, variance=s.variance, spacing=s.spacing, grid=s.grid, eps_scaling=s.eps_scaling,
                      device=args.device)
    return record


def run(args) -> int:
    check_args(args)
    check_writable(None if args.json == "-" else args.json)
    images = read_npy(args.npy, args.n) if args.npy else None
    args.n = len(images) if images is not None else args.n or 1000
    if args.n < 10:
        raise UsageError(f"need at least 10 images (FID needs a covariance, precision/recall {K} neighbours), "
                         f"got {args.n}")
    model = schedule = None
    if images is None:
        model, schedule, labels = model_and_labels(args)
        args.label = "random" if args.label is None and labels is not None else args.label  # the checkpoint's
    else:
        labels = torch.arange(args.n) % 10 if args.label == "all" else None
    classifier = load_classifier(args.classifier)
    settings = {**settings_record(args, model, schedule), "classifier_test_accuracy": classifier.test_accuracy}
    load_images("mnist", args.data_root, train=False)  # the real digits: missing MNIST fails here, before sampling
    if images is None:
        images = generate(model, schedule, labels, args)
    result = {**evaluate(images, labels, classifier, args.seed, args.data_root, args.batch_size), "settings": settings}
    return report(result, args)


def report(result: dict, args) -> int:
    if args.json == "-":
        print(json.dumps(result, indent=2))
        return 0
    s = result["settings"]
    print(table(result, f"{s['sampler']}-{s['steps']}" if "steps" in s else "samples"))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0
