"""A small MNIST classifier: the feature extractor behind metrics.py (FID, precision/recall, class scores).

Inception-v3 features (Heusel et al. 2017) describe natural photographs, not 28x28 digits, so ddpm-lite
measures samples with its own CNN. It reads the model range [-1, 1], the same as generated samples, and
its 128-dim penultimate layer is the feature space for the Frechet distance. The shipped weights
(mnist_classifier.pt, shipped in ddpm_lite.weights) come from `python -m ddpm_lite train-classifier`; the exact command
and the measured test accuracy are stored in the file.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoint import CLASSIFIER_NAME, read, shipped
from ..data import load_images, to_model_range

FORMAT, VERSION = "ddpm-lite-classifier", 1


@dataclass(frozen=True)
class ClassifierConfig:
    channels: tuple = (16, 32, 64)  # conv stages, each a 3x3 conv then a 2x2 max-pool: 28 -> 14 -> 7 -> 3
    feature_dim: int = 128  # penultimate layer: the FID feature space
    num_classes: int = 10
    dropout: float = 0.3


def _stage(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(2))


class Classifier(nn.Module):
    def __init__(self, cfg: ClassifierConfig = ClassifierConfig()):
        super().__init__()
        self.config = cfg
        widths = (1, *cfg.channels)
        self.body = nn.Sequential(*[_stage(a, b) for a, b in zip(widths, widths[1:])], nn.Flatten())
        self.features_head = nn.Sequential(nn.Linear(widths[-1] * 9, cfg.feature_dim), nn.ReLU())
        self.logits_head = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(cfg.feature_dim, cfg.num_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, 28, 28) in [-1, 1] -> (B, feature_dim) penultimate activations."""
        return self.features_head(self.body(x))  # body: (B, 1, 28, 28) -> (B, channels[-1] * 3 * 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits_head(self.features(x))  # (B, num_classes)


def shift(x: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Move image b by offsets[b] = (dx, dy) pixels (bilinear between pixels); the border fills with -1."""
    theta = torch.zeros(len(x), 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, :, 2] = -offsets * (2 / x.shape[-1])  # normalised coordinates span 2 over the image width
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x + 1, grid, align_corners=False, padding_mode="zeros") - 1  # zero of x + 1 is -1


def random_shift(x: torch.Tensor, max_px: float, generator: torch.Generator) -> torch.Tensor:
    """Augmentation: each image moved by up to max_px pixels in x and in y."""
    return shift(x, (1 - 2 * torch.rand(len(x), 2, generator=generator)) * max_px)  # uniform in +-max_px


@torch.inference_mode()
def accuracy(model: Classifier, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000) -> float:
    """Share of correct predictions; images uint8 (N, 1, 28, 28)."""
    model.eval()
    correct = sum((model(to_model_range(images[i:i + batch_size])).argmax(1) == labels[i:i + batch_size]).sum().item()
                  for i in range(0, len(images), batch_size))
    return correct / len(images)


def train_classifier(epochs: int = 3, batch_size: int = 128, lr: float = 2e-3, seed: int = 0, max_shift: float = 2.0,
                     data_root=None, cfg: ClassifierConfig = ClassifierConfig(), progress: bool = True) -> dict:
    """Train on the 60k MNIST training digits (AdamW, one-cycle LR, random shifts); return the checkpoint dict."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    images, labels = load_images("mnist", data_root, train=True)
    model = Classifier(cfg)
    per_epoch = math.ceil(len(images) / batch_size)
    steps = epochs * per_epoch
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    bar = range(steps)
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(bar, desc="train classifier")
    start, order = time.time(), None
    model.train()
    for step in bar:
        k = step % per_epoch
        if k == 0:  # a fresh permutation each epoch
            order = torch.randperm(len(images), generator=g)
        idx = order[k * batch_size:(k + 1) * batch_size]
        x = random_shift(to_model_range(images[idx]), max_shift, g) if max_shift else to_model_range(images[idx])
        loss = F.cross_entropy(model(x), labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if progress and step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    test_images, test_labels = load_images("mnist", data_root, train=False)
    return {"format": FORMAT, "version": VERSION, "config": asdict(cfg), "state_dict": model.state_dict(),
            "test_accuracy": accuracy(model, test_images, test_labels),
            "train": {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed, "max_shift": max_shift,
                      "seconds": round(time.time() - start, 1), "threads": torch.get_num_threads(),
                      "torch": str(torch.__version__)}}  # str(): a TorchVersion object would need unpickling


def load_classifier(path=None, device="cpu") -> Classifier:
    """The classifier in eval mode (default: the shipped mnist_classifier.pt)."""
    ckpt = read(path or shipped(CLASSIFIER_NAME), FORMAT, "classifier",
                "train one with `python -m ddpm_lite train-classifier`")
    cfg = ClassifierConfig(**{**ckpt["config"], "channels": tuple(ckpt["config"]["channels"])})
    model = Classifier(cfg)
    model.load_state_dict(ckpt["state_dict"])
    model.test_accuracy = ckpt.get("test_accuracy")
    return model.to(device).eval()
