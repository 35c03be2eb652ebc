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
from typing import NamedTuple

import torch

from ..data import check_images, load_images
from .classifier import load_classifier

CONFIDENT, K = 0.9, 3


class Reference(NamedTuple):
    features: torch.Tensor  # (10000, D) classifier features of the MNIST test digits
    probs: torch.Tensor  # (10000, 10)
    labels: torch.Tensor  # (10000,)


@torch.inference_mode()
def embed(classifier, images, batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """(features (N, D), softmax probabilities (N, 10)) for images as data.check_images takes them (uint8 pixels or
    floats in [-1, 1]), (N, 1, 28, 28) or (N, 28, 28) as a --npy file holds them."""
    x = torch.as_tensor(images)
    x = x[:, None] if x.dim() == 3 else x  # (N, 1, 28, 28)
    feats, probs = [], []
    for i in range(0, len(x), batch_size):
        f = classifier.features(check_images(x[i:i + batch_size]))
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


def evaluate(images, labels=None, classifier=None, seed: int = 0, data_root=None, batch_size: int = 1000,
             ref: Reference | None = None) -> dict:
    """{"model": figures for the images, "real": the real-data row at the same n}.
    ref: reference(classifier) computed once, for scoring several image sets against the same test digits."""
    classifier = classifier or load_classifier()
    ref = ref if ref is not None else reference(classifier, data_root, batch_size)
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
