"""Shared fixtures: the data root, seeded generators, tiny models and their checkpoints.

Everything here is small on purpose: the whole suite runs in a couple of minutes on two busy CPU cores.
"""
from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
if "DDPM_LITE_DATA" not in os.environ and SHARED_DATA.is_dir():
    os.environ["DDPM_LITE_DATA"] = str(SHARED_DATA)

# Tiny convolutions run ~20x faster on one thread than on threads fighting a busy 2-core machine.
torch.set_num_threads(1)

from ddpm_lite import checkpoint  # noqa: E402  (after DDPM_LITE_DATA is set)
from ddpm_lite.data import DataNotFoundError, load_images  # noqa: E402
from ddpm_lite.schedule import Schedule  # noqa: E402
from ddpm_lite.unet import UNet, UNetConfig  # noqa: E402

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(reason: str):
    """Something the suite needs is absent (a required dependency, the shipped weights, MNIST): a skip that says why on
    a developer's machine, a failure in CI (CI=true), where a skip would pass without testing. Optional extras
    (diffusers, ipycanvas, Playwright and Chromium) skip with pytest's own skips instead."""
    if IN_CI:
        pytest.fail(f"missing in CI: {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def require(module: str):
    """Import a required module, or `missing` naming it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        missing(f"{module} is not installed ({e}): pip install '.[dev,notebooks]'")


TINY = dict(base_channels=8, channel_mults=(1, 2), attention_levels=(1,), groups=4)


def tiny_config(**kw) -> UNetConfig:
    """A UNet of a few thousand parameters; kw overrides (image_size, in_channels, num_classes...)."""
    return UNetConfig(**{**TINY, **kw})


def tiny_unet(seed: int = 0, **kw) -> UNet:
    """A tiny UNet whose output layer is not zero (a fresh UNet predicts eps = 0 everywhere by design)."""
    torch.manual_seed(seed)
    model = UNet(tiny_config(**kw))
    torch.nn.init.normal_(model.conv_out.weight, std=0.2)
    torch.nn.init.normal_(model.conv_out.bias, std=0.2)
    return model.eval()


def tiny_train_data():
    """64 random 8x8 grey images with labels: enough for a few training steps of tiny_config(image_size=8)."""
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (64, 1, 8, 8), generator=g, dtype=torch.uint8)  # (N, C, H, W)
    return images, torch.randint(0, 10, (64,), generator=g)


def tiny_train_config(out_dir, **kw):
    """A TrainConfig of a few steps on tiny_train_data(); kw overrides."""
    from ddpm_lite.recipe import TrainConfig
    base = dict(steps=6, batch_size=8, lr=2e-3, warmup=2, T=50, ckpt_every=3, log_every=3, out_dir=str(out_dir),
                device="cpu", seed=0)
    return TrainConfig(**{**base, **kw})


def save_tiny_checkpoint(path, model: UNet, schedule: Schedule) -> Path:
    return checkpoint.save({"model_config": model.config.to_dict(), "schedule": schedule.to_dict(),
                            "ema": model.state_dict()}, path)


class SinglePointPredictor(torch.nn.Module):
    """The exact noise predictor for data that is one point c (per label, when labelled).

    eps*(x_t, t) = (x_t - sqrt(alpha_bar_t) c) / sqrt(1 - alpha_bar_t). centres: (K + 1, C, H, W), row y is
    the point for label y and row K the point for "no label"; one row means an unconditional predictor.
    """

    def __init__(self, schedule: Schedule, centres: torch.Tensor):
        super().__init__()
        k = len(centres) - 1
        self.config = SimpleNamespace(num_classes=k or None, in_channels=centres.shape[1],
                                      image_size=centres.shape[2])
        self.alpha_bars = schedule.alpha_bars.double()
        self.centres = centres.double()
        self.dummy = torch.nn.Parameter(torch.zeros(()))  # so that sample() finds the device
        self.batch_sizes = []  # one entry per call, to see how the network is driven

    def forward(self, x, t, labels=None):
        self.batch_sizes.append(len(x))
        if labels is None:
            labels = torch.full_like(t, len(self.centres) - 1)
        ab = self.alpha_bars[t][:, None, None, None]  # (B, 1, 1, 1)
        c = self.centres[labels]  # (B, C, H, W)
        return ((x.double() - ab.sqrt() * c) / (1 - ab).sqrt()).to(x.dtype)


@pytest.fixture
def gen():
    """A seeded CPU generator: every random draw in a test comes from here or from a seed it names."""
    return torch.Generator().manual_seed(1234)


@pytest.fixture
def tiny_model():
    return tiny_unet()


@pytest.fixture(scope="session")
def tiny_ckpts(tmp_path_factory):
    """Checkpoint files of tiny 28x28 models on a cosine T=20 schedule: conditional and unconditional."""
    root = tmp_path_factory.mktemp("ckpts")
    schedule = Schedule.cosine(20)
    return SimpleNamespace(
        schedule=schedule,
        cond=save_tiny_checkpoint(root / "cond.pt", tiny_unet(seed=1), schedule),
        uncond=save_tiny_checkpoint(root / "uncond.pt", tiny_unet(seed=2, num_classes=None), schedule),
    )


@pytest.fixture(scope="session")
def mnist():
    """The real MNIST training set, or `missing` saying how to provide it."""
    try:
        return load_images("mnist", train=True, download=False)
    except DataNotFoundError as e:
        missing(f"real MNIST not available (set DDPM_LITE_DATA to a folder holding MNIST/raw): {e}")
