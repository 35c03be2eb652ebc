"""Sample quality for MNIST, measured in the feature space of ddpm-lite's own classifier (classifier.py).

- FID (Heusel et al. 2017): d^2 = |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)) between Gaussians fitted to
  128-dim classifier features of the samples and of the 10,000 MNIST test digits. Not comparable with
  Inception-FID figures from papers: compare only with other figures from this classifier.
- precision / recall (Kynkaanniemi et al. 2019): the share of samples inside the real data's k-NN balls,
  and the share of real digits inside the samples' balls, k = 3, equal set sizes.
- confident share (max softmax >= 0.9), class balance (entropy of the predicted-class histogram divided
  by log 10: 1 = every digit equally often, 0 = one digit only), conditional accuracy (labels given).
Each figure comes with a real-data row: N random training digits measured the same way, N = sample count.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import torch

from .data import load_images, to_model_range

CONFIDENT, K = 0.9, 3


class Reference(NamedTuple):
    features: torch.Tensor  # (10000, D) classifier features of the MNIST test digits
    probs: torch.Tensor  # (10000, 10)
    labels: torch.Tensor  # (10000,)


def as_model_range(images) -> torch.Tensor:
    """uint8 (N, 28, 28) or (N, 1, 28, 28), array or tensor, or float in [-1, 1] -> float (N, 1, 28, 28)."""
    x = torch.as_tensor(images)
    x = x[:, None] if x.dim() == 3 else x  # (N, 1, 28, 28)
    if x.dtype == torch.uint8:
        return to_model_range(x)
    if not x.is_floating_point():
        raise ValueError(f"images must be uint8 pixels or floats in [-1, 1], got {x.dtype}")
    return x.float()


@torch.inference_mode()
def embed(classifier, images, batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """(features (N, D), softmax probabilities (N, 10)) for images in any form `as_model_range` takes."""
    feats, probs = [], []
    for i in range(0, len(images), batch_size):
        f = classifier.features(as_model_range(images[i:i + batch_size]))
        feats.append(f)
        probs.append(classifier.logits_head(f).softmax(1))
    return torch.cat(feats), torch.cat(probs)


def gaussian(feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and unbiased covariance, in float64."""
    f = feats.double()
    return f.mean(0), torch.cov(f.T)


def sqrtm_psd(a: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of a positive semi-definite matrix via eigh (tiny negative eigenvalues -> 0)."""
    w, v = torch.linalg.eigh(a.double())
    return (v * w.clamp(min=0).sqrt()) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Squared Frechet distance between N(mu1, sigma1) and N(mu2, sigma2) (Dowson & Landau 1982)."""
    mu1, sigma1, mu2, sigma2 = (t.double() for t in (mu1, sigma1, mu2, sigma2))
    root1 = sqrtm_psd(sigma1)
    m = root1 @ sigma2 @ root1  # similar to sigma1 sigma2, but symmetric: same eigenvalues, eigh applies
    tr_cross = torch.linalg.eigvalsh((m + m.T) / 2).clamp(min=0).sqrt().sum()  # tr (sigma1 sigma2)^(1/2)
    return float(((mu1 - mu2) ** 2).sum() + sigma1.trace() + sigma2.trace() - 2 * tr_cross)


def fid(feats1: torch.Tensor, feats2: torch.Tensor) -> float:
    return frechet_distance(*gaussian(feats1), *gaussian(feats2))


def knn_radii(x: torch.Tensor, k: int = K, chunk: int = 1000) -> torch.Tensor:
    """Distance from each point to its k-th nearest other point (the point itself, at 0, is skipped)."""
    if len(x) <= k:
        raise ValueError(f"k-NN radii need more than k={k} points, got {len(x)}")
    return torch.cat([torch.cdist(x[i:i + chunk], x).topk(k + 1, largest=False).values[:, -1]
                      for i in range(0, len(x), chunk)])


def share_inside(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, chunk: int = 1000) -> float:
    """Share of points within radii[j] of at least one centre j (the k-NN manifold estimate)."""
    inside = [(torch.cdist(points[i:i + chunk], centres) <= radii).any(1) for i in range(0, len(points), chunk)]
    return torch.cat(inside).double().mean().item()


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = K) -> tuple[float, float]:
    """Kynkaanniemi et al. 2019: precision = fakes inside the real manifold, recall = reals inside the fake one."""
    real, fake = real.float(), fake.float()
    return share_inside(fake, real, knn_radii(real, k)), share_inside(real, fake, knn_radii(fake, k))


def confident_share(probs: torch.Tensor, threshold: float = CONFIDENT) -> float:
    """Share of images whose top class gets probability >= threshold."""
    return (probs.max(1).values >= threshold).double().mean().item()


def class_balance(predicted: torch.Tensor, num_classes: int = 10) -> float:
    """Entropy of the predicted-class histogram / log(num_classes): 1 = uniform, 0 = a single class."""
    p = torch.bincount(predicted, minlength=num_classes).double() / len(predicted)
    p = p[p > 0]
    return float(-(p * p.log()).sum() / math.log(num_classes))


def conditional_accuracy(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of images the classifier assigns to the class they were generated for."""
    return (probs.argmax(1) == labels.to(probs.device)).double().mean().item()


def scores(feats, probs, ref: Reference, labels=None, k: int = K, seed: int = 0) -> dict:
    """Every figure for one image set against the test-set reference."""
    n = len(feats)
    real = ref.features
    if n < len(real):  # precision/recall are only fair at equal set sizes (k-NN radii shrink as sets grow)
        real = real[torch.randperm(len(real), generator=torch.Generator().manual_seed(seed))[:n]]
    precision, recall = precision_recall(real, feats, k)
    return {"n": n, "fid": fid(feats, ref.features), "precision": precision, "recall": recall,
            "confident": confident_share(probs), "class_balance": class_balance(probs.argmax(1)),
            "conditional_accuracy": None if labels is None else conditional_accuracy(probs, labels)}


def reference(classifier, data_root=None, batch_size: int = 1000) -> Reference:
    """Features of the 10,000 MNIST test digits: the target every figure is measured against."""
    images, labels = load_images("mnist", data_root, train=False)
    return Reference(*embed(classifier, images, batch_size), labels)


def real_row(classifier, ref: Reference, n: int, seed: int = 0, data_root=None, batch_size: int = 1000) -> dict:
    """The same figures for n random real training digits (seeded): what a perfect generator would score."""
    images, labels = load_images("mnist", data_root, train=True)
    idx = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:n]
    feats, probs = embed(classifier, images[idx], batch_size)
    return scores(feats, probs, ref, labels[idx], seed=seed)


def evaluate(images, labels=None, classifier=None, seed: int = 0, data_root=None, batch_size: int = 1000) -> dict:
    """{"model": figures for the images, "real": the real-data row at the same n}."""
    from .classifier import load_classifier
    classifier = classifier or load_classifier()
    ref = reference(classifier, data_root, batch_size)
    feats, probs = embed(classifier, images, batch_size)
    return {"model": scores(feats, probs, ref, labels, seed=seed),
            "real": real_row(classifier, ref, len(feats), seed, data_root, batch_size)}


ROWS = [("n", "n", "{:d}"), ("fid", "FID (classifier features)", "{:.2f}"),
        ("precision", f"precision (k={K})", "{:.3f}"), ("recall", f"recall (k={K})", "{:.3f}"),
        ("confident", f"confident share (p_max >= {CONFIDENT})", "{:.3f}"),
        ("class_balance", "class balance (H / log 10)", "{:.3f}"),
        ("conditional_accuracy", "conditional accuracy", "{:.3f}")]


def table(result: dict, model_name: str = "model") -> str:
    fmt = lambda f, v: "-" if v is None else f.format(v)  # noqa: E731
    lines = [f"{'metric':<34}{model_name:>14}{'real MNIST':>14}"]
    lines += [f"{label:<34}{fmt(f, result['model'][key]):>14}{fmt(f, result['real'][key]):>14}"
              for key, label, f in ROWS]
    return "\n".join(lines + [f"real MNIST: {result['real']['n']} random training digits (true labels for accuracy); "
                              f"every figure is measured against the 10,000 test digits"])


def add_parser(sub):
    from .cli import nonneg_float, positive_int
    p = sub.add_parser("evaluate", help="FID, precision/recall and class scores of samples, beside real MNIST")
    p.add_argument("--checkpoint", default=None, help="model to sample from (default: the shipped one)")
    p.add_argument("--npy", default=None, help="score these uint8 (N, 28, 28) images instead (from `sample --npy`)")
    p.add_argument("--n", type=positive_int, default=None, help="image count (default: 1000, or all of --npy)")
    p.add_argument("--sampler", default="ddim", help="ddpm or ddim (default: ddim)")
    p.add_argument("--steps", type=int, default=None, help="1..T (default: 50 for ddim, T for ddpm)")
    p.add_argument("--eta", type=nonneg_float, default=0.0, help="DDIM noise (default: 0, deterministic)")
    p.add_argument("--guidance", type=nonneg_float, default=0.0, help="classifier-free guidance w; needs --conditional")
    p.add_argument("--conditional", action="store_true",
                   help="labels cycle 0..9 (as `sample --label all` writes them); reports conditional accuracy")
    p.add_argument("--seed", type=int, default=0, help="sampling noise and the real-data subset (default: 0)")
    p.add_argument("--batch-size", type=positive_int, default=250, help="(default: 250)")
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
    import argparse
    from . import checkpoint
    from .cli import UsageError
    from .commands import check_sample_args
    ckpt = checkpoint.load(args.checkpoint or checkpoint.default_checkpoint())
    if args.conditional and not ckpt["model_config"].get("num_classes"):
        raise UsageError("--conditional needs a class-conditional checkpoint; this one was trained without labels")
    check_sample_args(argparse.Namespace(**vars(args), label="all" if args.conditional else None), ckpt)
    return checkpoint.build(ckpt)


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
                       labels=None if labels is None else labels[i:i + n], guidance=args.guidance)
            out.append(to_uint8(x))  # the same rounding as `sample --npy`, so both routes score alike
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
    if args.guidance and not args.conditional:
        raise UsageError("--guidance needs --conditional (guidance steers each sample towards its label)")
    images = _read_npy(args.npy, args.n) if args.npy else None
    args.n = len(images) if images is not None else args.n or 1000
    if args.n < 10:
        raise UsageError(f"need at least 10 images (FID needs a covariance, precision/recall {K} neighbours), "
                         f"got {args.n}")
    model, schedule = (None, None) if args.npy else _check_model(args)
    classifier = load_classifier(args.classifier)
    labels = torch.arange(args.n) % 10 if args.conditional else None
    settings = {"source": args.npy or str(args.checkpoint or default_checkpoint()), "conditional": args.conditional,
                "seed": args.seed, "confident_threshold": CONFIDENT, "k": K, "class_balance": "entropy / log 10",
                "classifier_test_accuracy": classifier.test_accuracy}
    if images is None:
        steps = args.steps or (schedule.T if args.sampler == "ddpm" else 50)
        settings.update(sampler=args.sampler, steps=steps, eta=args.eta, guidance=args.guidance)
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
