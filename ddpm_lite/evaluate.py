"""The `evaluate` command: sample from a checkpoint (or read an .npy), score it with metrics.py, print a table.

    python -m ddpm_lite evaluate --n 10000 --steps 20            # unconditional, DDIM-20
    python -m ddpm_lite evaluate --conditional --guidance 2       # labels 0..9 in turn, guided
    python -m ddpm_lite evaluate --label random --n 10000         # unconditional digits through random labels
    python -m ddpm_lite evaluate --npy samples.npy                # images written by `sample --npy`
"""
from __future__ import annotations

from pathlib import Path

import torch

from .metrics import CONFIDENT, K, evaluate, table
from .samplers import default_steps


def add_parser(sub):
    from .cli import device_name, nonneg_float, positive_float, positive_int, spacing_power
    p = sub.add_parser("evaluate", help="FID, precision/recall and class scores of samples, beside real MNIST")
    p.add_argument("--checkpoint", default=None, help="model to sample from (default: the shipped one)")
    p.add_argument("--npy", default=None, help="score these uint8 (N, 28, 28) images instead (from `sample --npy`)")
    p.add_argument("--n", type=positive_int, default=None, help="image count (default: 1000, or all of --npy)")
    p.add_argument("--sampler", default="ddim", help="ddim (default), dpm++ (DPM-Solver++(2M), second order) or ddpm")
    p.add_argument("--steps", type=int, default=None, help="1..T (default: 50 for ddim, 20 for dpm++, T for ddpm)")
    p.add_argument("--eta", type=nonneg_float, default=0.0, help="ddim or dpm++ noise (default: 0, deterministic)")
    p.add_argument("--variance", default="beta_tilde", choices=["beta_tilde", "beta"], help="DDPM variance")
    p.add_argument("--spacing", type=spacing_power, default=1.0,
                   help="step placement power: 1 evenly spaced (default), 2 denser near t = T (see `sample --help`)")
    p.add_argument("--eps-scaling", type=positive_float, default=1.0, metavar="LAMBDA",
                   help="epsilon scaling: sample with eps_theta / LAMBDA; 1 = off (default; see `sample --help`)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"],
                   help="the network's arithmetic while sampling (default: fp32; see `sample --help`)")
    p.add_argument("--guidance", type=nonneg_float, default=0.0, help="classifier-free guidance w; needs --label")
    p.add_argument("--label", choices=("all", "random"), default=None,
                   help="class-conditional sampling, reporting conditional accuracy: all: labels cycle 0..9 (as "
                        "`sample --label all` writes them); random: each drawn uniformly, seeded (as `sample --label "
                        "random`), i.e. unconditional digits whose class balance is the model's own")
    p.add_argument("--conditional", action="store_true", help="the same as --label all")
    p.add_argument("--seed", type=int, default=0, help="sampling noise and the real-data subset (default: 0)")
    p.add_argument("--batch-size", type=positive_int, default=250, help="(default: 250)")
    p.add_argument("--device", type=device_name, default="cpu",
                   help="where the model samples: cpu (default), cuda or mps; the noise is drawn on the CPU either "
                        "way, so a seed gives the same draws")
    p.add_argument("--classifier", default=None, help="default: checkpoints/mnist_classifier.pt")
    p.add_argument("--data-root", default=None, help="folder holding MNIST/ (default: $DDPM_LITE_DATA)")
    p.add_argument("--json", default=None, help="also write the figures as JSON to this file ('-': stdout only)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def _read_npy(path: str, n: int | None) -> torch.Tensor:
    import numpy as np
    from .cli import UsageError
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


def _check_model(args):
    """Load the DDPM checkpoint and check the sampling flags against it, before any work starts."""
    from . import checkpoint
    from .cli import UsageError
    from .commands import check_sample_args
    ckpt = checkpoint.load(args.checkpoint or checkpoint.default_checkpoint())
    if args.label and not ckpt["model_config"].get("num_classes"):
        raise UsageError(f"--label {args.label} needs a class-conditional checkpoint; this one was trained "
                         f"without labels")
    labels = check_sample_args(args, ckpt)
    if torch.device(args.device).type == "cuda":
        # fp32 means fp32: cuDNN's default TF32 convolutions round to 10 mantissa bits, and the first DDIM step
        # from t = T multiplies rounding errors by 1 / sqrt(alpha_bar) (~20,000 here)
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    return checkpoint.build(ckpt, device=args.device), labels


def _generate(model, schedule, labels, args) -> torch.Tensor:
    """args.n samples as uint8 (N, 1, 28, 28), in batches, all noise from one seeded generator."""
    from tqdm.auto import tqdm
    from .data import to_uint8
    from .samplers import sample
    g, out = torch.Generator().manual_seed(args.seed), []
    with tqdm(total=args.n, desc=f"{args.sampler} samples", disable=args.no_progress) as bar:
        for i in range(0, args.n, args.batch_size):
            n = min(args.batch_size, args.n - i)
            x = sample(model, schedule, n, sampler=args.sampler, steps=args.steps, eta=args.eta, generator=g,
                       variance=args.variance, spacing=args.spacing, eps_scaling=args.eps_scaling,
                       guidance=args.guidance, labels=None if labels is None else labels[i:i + n],
                       precision=args.precision, device=args.device)
            out.append(to_uint8(x.cpu()))  # the same rounding as `sample --npy`, so both routes score alike
            bar.update(n)
    return torch.cat(out)


def run(args) -> int:
    import json
    from .checkpoint import default_checkpoint
    from .classifier import load_classifier
    from .cli import UsageError
    from .commands import check_sampler
    if args.npy and args.checkpoint:
        raise UsageError("give --checkpoint (generate samples) or --npy (score saved ones), not both")
    check_sampler(args.sampler)
    if args.conditional and args.label not in (None, "all"):
        raise UsageError(f"--conditional means --label all; give one of them, not --label {args.label} too")
    args.label = args.label or ("all" if args.conditional else None)
    args.conditional = args.label is not None
    if args.guidance and not args.label:
        raise UsageError("--guidance needs --label all or random (guidance steers each sample towards its label)")
    if args.npy and args.label == "random":
        raise UsageError("--npy images carry no labels; score them with --label all if `sample --label all` "
                         "wrote them, or with no --label")
    images = _read_npy(args.npy, args.n) if args.npy else None
    args.n = len(images) if images is not None else args.n or 1000
    if args.n < 10:
        raise UsageError(f"need at least 10 images (FID needs a covariance, precision/recall {K} neighbours), "
                         f"got {args.n}")
    (model, schedule), labels = ((None, None), None) if args.npy else _check_model(args)
    if args.npy and args.label == "all":
        labels = torch.arange(args.n) % 10
    classifier = load_classifier(args.classifier)
    settings = {"source": args.npy or str(args.checkpoint or default_checkpoint()), "conditional": args.conditional,
                "labels": args.label,
                "seed": args.seed, "confident_threshold": CONFIDENT, "k": K, "class_balance": "entropy / log 10",
                "classifier_test_accuracy": classifier.test_accuracy}
    if images is None:
        steps = args.steps or default_steps(args.sampler, schedule.T)
        settings.update(sampler=args.sampler, steps=steps, eta=args.eta, guidance=args.guidance,
                        precision=args.precision, variance=args.variance, spacing=args.spacing,
                        eps_scaling=args.eps_scaling, device=args.device)
        images = _generate(model, schedule, labels, args)
    result = {**evaluate(images, labels, classifier, args.seed, args.data_root, args.batch_size), "settings": settings}
    if args.json == "-":
        print(json.dumps(result, indent=2))
        return 0
    print(table(result, f"{args.sampler}-{settings['steps']}" if "steps" in settings else "samples"))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0
