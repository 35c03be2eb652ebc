"""The diffusion math as small pure functions over a Schedule and tensors (Ho et al. 2020).

Forward process q(x_t | x_0) (Eq. 4; noise_to_step takes the paper's t, 0 = clean) and q(x_t | x_{t-1}) (Eq. 2),
the posterior q(x_{t-1} | x_t, x_0) (Eqs. 6-7), the conversions between eps, x0 (Eq. 11) and v (Salimans & Ho 2022),
and the training loss L_simple (Eq. 14) with optional min-SNR-gamma weighting (Hang et al. 2023). The network never
appears here except as a callable.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .schedule import Schedule, gather


def q_sample(schedule: Schedule, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Eq. 4: x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps."""
    return gather(schedule.sqrt_alpha_bars, t, x0) * x0 + gather(schedule.sqrt_one_minus_alpha_bars, t, x0) * eps


def noise_to_step(schedule: Schedule, x0: torch.Tensor, t: int, eps: torch.Tensor, name: str = "t") -> torch.Tensor:
    """x0 (B, C, H, W) noised to the paper's step t in 0..T: Eq. 4 at code index t - 1; t = 0 returns x0 itself."""
    if not 0 <= t <= schedule.T:
        raise ValueError(f"{name} must be between 0 (the clean input) and T={schedule.T}, got {t}")
    return x0 if t == 0 else q_sample(schedule, x0, torch.full((len(x0),), t - 1, device=x0.device), eps)


def q_step(schedule: Schedule, x_prev: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Eq. 2, one step: x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) eps (x_prev is x_{t-1})."""
    return gather(schedule.alphas, t, x_prev).sqrt() * x_prev + gather(schedule.betas, t, x_prev).sqrt() * eps


def q_posterior(schedule: Schedule, x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor):
    """Eqs. 6-7: mean and variance of q(x_{t-1} | x_t, x0)."""
    mean = gather(schedule.posterior_mean_coef1, t, xt) * x0 + gather(schedule.posterior_mean_coef2, t, xt) * xt
    return mean, gather(schedule.posterior_variance, t, xt)


def x0_from_eps(alpha_bar: torch.Tensor, xt: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Eq. 4 solved for x0: x0 = (x_t - sqrt(1 - alpha_bar) eps) / sqrt(alpha_bar)."""
    return (xt - (1 - alpha_bar).sqrt() * eps) / alpha_bar.sqrt()


def eps_from_x0(alpha_bar: torch.Tensor, xt: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """Eq. 4 solved for eps: eps = (x_t - sqrt(alpha_bar) x0) / sqrt(1 - alpha_bar)."""
    return (xt - alpha_bar.sqrt() * x0) / (1 - alpha_bar).sqrt()


def x0_from_v(alpha_bar: torch.Tensor, xt: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Salimans & Ho 2022, Sec. 4: v = alpha eps - sigma x0, so x0 = alpha x_t - sigma v (alpha^2 = alpha_bar)."""
    return alpha_bar.sqrt() * xt - (1 - alpha_bar).sqrt() * v


def eps_from_v(alpha_bar: torch.Tensor, xt: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Salimans & Ho 2022, Sec. 4: eps = sigma x_t + alpha v."""
    return (1 - alpha_bar).sqrt() * xt + alpha_bar.sqrt() * v


def v_from_x0(alpha_bar: torch.Tensor, xt: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """The v that x_t and x0 imply: v = (alpha x_t - x0) / sigma."""
    return (alpha_bar.sqrt() * xt - x0) / (1 - alpha_bar).sqrt()


def min_snr_weight(schedule: Schedule, t: torch.Tensor, gamma: float) -> torch.Tensor:
    """Hang et al. 2023: weight min(SNR_t, gamma) / SNR_t for eps-prediction, shape (B,)."""
    snr = schedule.snr().to(t.device)[t]
    return snr.clamp(max=gamma) / snr


def loss(model, schedule: Schedule, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor,
         labels: torch.Tensor | None = None, min_snr_gamma: float | None = None) -> torch.Tensor:
    """Eq. 14, L_simple = || eps - eps_theta(x_t, t) ||^2, optionally min-SNR weighted per sample."""
    eps_pred = model(q_sample(schedule, x0, t, eps), t, labels)
    per_sample = F.mse_loss(eps_pred.float(), eps.float(), reduction="none").mean(dim=(1, 2, 3))  # (B,)
    if min_snr_gamma:
        per_sample = per_sample * min_snr_weight(schedule, t, min_snr_gamma)
    return per_sample.mean()
