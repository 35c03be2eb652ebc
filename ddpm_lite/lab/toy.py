"""A 2-D Gaussian mixture whose noised densities, scores and ideal noise predictions are known in closed form.

For data x0 ~ sum_k w_k N(mu_k, s_k^2 I), the forward process (Eq. 4) keeps a mixture at every t:
q_t = sum_k w_k N(sqrt(ab) mu_k, (ab s_k^2 + 1 - ab) I). So the score grad log q_t and the ideal noise
predictor E[eps | x_t] = -sqrt(1 - ab) grad log q_t are exact, and `ExactDenoiser` can stand in for the network
in ddpm_lite's samplers. Points are shaped (B, 2, 1, 1), the library's (B, C, H, W). Used by notebook 04b.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from types import SimpleNamespace

import torch
from torch import nn

from ..unet import timestep_embedding


@dataclass(frozen=True)
class Mixture:
    means: torch.Tensor  # (K, 2)
    stds: torch.Tensor  # (K,)
    weights: torch.Tensor  # (K,), sums to 1
    classes: torch.Tensor  # (K,): the class label of each component

    @staticmethod
    def two_moons_like(std: float = 0.08) -> "Mixture":
        """Eight components on two arcs, class 0 (left) and class 1 (right), inside [-1, 1]^2."""
        a = torch.linspace(0.15, 0.85, 4) * math.pi
        left = torch.stack([-0.3 - 0.5 * torch.sin(a), 0.6 * torch.cos(a)], 1)
        means = torch.cat([left, -left])  # (8, 2)
        k = len(means)
        return Mixture(means, torch.full((k,), std), torch.full((k,), 1 / k), torch.arange(k) // (k // 2))

    def given(self, label: int) -> "Mixture":
        """The class-conditional mixture p(x | y = label)."""
        keep = self.classes == label
        return Mixture(self.means[keep], self.stds[keep], self.weights[keep] / self.weights[keep].sum(),
                       self.classes[keep])

    def noised(self, alpha_bar: float) -> "Mixture":
        """q_t for alpha_bar_t: means sqrt(ab) mu_k, variances ab s_k^2 + 1 - ab."""
        ab = torch.as_tensor(alpha_bar, dtype=torch.float64)
        stds = (ab * self.stds.double() ** 2 + 1 - ab).sqrt().float()
        return Mixture(ab.sqrt().float() * self.means, stds, self.weights, self.classes)

    def sample(self, n: int, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
        """n points (n, 2) and their class labels (n,)."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        x = self.means[k] + self.stds[k, None] * torch.randn(n, 2, generator=generator)
        return x, self.classes[k]

    def _log_components(self, x: torch.Tensor) -> torch.Tensor:  # (B, K): log w_k + log N(x; mu_k, s_k^2 I)
        d2 = ((x[:, None, :] - self.means[None]) ** 2).sum(-1)
        var = self.stds[None] ** 2
        return self.weights.log()[None] - d2 / (2 * var) - torch.log(2 * math.pi * var)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log density at points x (B, 2)."""
        return self._log_components(x).logsumexp(1)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """grad_x log p(x) (B, 2): responsibilities times each component's score (mu_k - x) / s_k^2."""
        r = self._log_components(x).softmax(1)  # (B, K)
        return (r[..., None] * (self.means[None] - x[:, None, :]) / self.stds[None, :, None] ** 2).sum(1)


class ExactDenoiser(nn.Module):
    """The ideal eps(x_t, t, y) = -sqrt(1 - ab_t) grad log q_t(x_t | y) of a Mixture, as a drop-in 'network'
    for ddpm_lite.sample: inputs (B, 2, 1, 1); label `num_classes` (or None) means no label."""

    def __init__(self, mixture: Mixture, schedule):
        super().__init__()
        self.mixture, self.schedule = mixture, schedule
        num_classes = int(mixture.classes.max()) + 1
        self.config = SimpleNamespace(num_classes=num_classes, in_channels=2, image_size=1)
        self.register_buffer("_device", torch.zeros(1))  # sample() reads the device from the parameters/buffers

    def parameters(self, recurse: bool = True):
        yield self._device

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels=None) -> torch.Tensor:
        points, out = x.flatten(1).float(), torch.empty(len(x), 2)
        labels = torch.full((len(x),), self.config.num_classes) if labels is None else labels
        for (ti, yi) in {(int(a), int(b)) for a, b in zip(t, labels)}:
            rows = (t == ti) & (labels == yi)
            ab = self.schedule.alpha_bars[ti].double()
            m = self.mixture if yi == self.config.num_classes else self.mixture.given(yi)
            out[rows] = -(1 - ab).sqrt().float() * m.noised(ab).score(points[rows])
        return out.view_as(x)


class MLP(nn.Module):
    """A small noise-prediction network for 2-D points (B, 2, 1, 1): MLP on [x, emb(t), label embedding]."""

    def __init__(self, hidden: int = 128, num_classes: int | None = None, emb_dim: int = 32):
        super().__init__()
        self.config = SimpleNamespace(num_classes=num_classes, in_channels=2, image_size=1)
        self.emb_dim = emb_dim
        self.label = nn.Embedding(num_classes + 1, emb_dim) if num_classes else None  # last index: no label
        self.net = nn.Sequential(nn.Linear(2 + emb_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 2))

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels=None) -> torch.Tensor:
        emb = timestep_embedding(t, self.emb_dim)  # (B, emb_dim)
        if self.label is not None:
            labels = torch.full_like(t, self.config.num_classes) if labels is None else labels
            emb = emb + self.label(labels)
        return self.net(torch.cat([x.flatten(1), emb], 1)).view_as(x)
