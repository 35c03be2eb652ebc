"""Noise schedules as immutable values (Ho et al. 2020, Sec. 2 and 4; Nichol & Dhariwal 2021, Eq. 17).

Timestep convention: code index ``t`` runs over ``0 .. T-1`` and stands for the paper's ``t + 1``.
So ``alpha_bars[0] = 1 - beta_1`` and ``alpha_bars_prev[0] = 1`` (the paper's alpha_bar_0, clean data).
Every table is computed in float64 and stored as float32.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

KINDS = ("linear", "cosine")


@dataclass(frozen=True, eq=False)
class Schedule:
    kind: str
    T: int
    betas: torch.Tensor  # (T,) beta_t
    alphas: torch.Tensor  # (T,) alpha_t = 1 - beta_t
    alpha_bars: torch.Tensor  # (T,) prod_{s<=t} alpha_s
    alpha_bars_prev: torch.Tensor  # (T,) alpha_bar_{t-1}, with alpha_bar_0 = 1
    sqrt_alpha_bars: torch.Tensor
    sqrt_one_minus_alpha_bars: torch.Tensor
    posterior_variance: torch.Tensor  # (T,) beta_tilde_t, Eq. 7; zero at t=0
    posterior_log_variance: torch.Tensor  # log beta_tilde_t, t=0 clipped to t=1 (Ho et al. code)
    posterior_mean_coef1: torch.Tensor  # Eq. 7: multiplies x0
    posterior_mean_coef2: torch.Tensor  # Eq. 7: multiplies x_t

    @staticmethod
    def linear(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02, max_beta: float = 0.999) -> "Schedule":
        """The paper's schedule, rescaled so that other T keep the same total noise (as in improved-diffusion)."""
        scale = 1000 / T
        betas = torch.linspace(scale * beta_start, scale * beta_end, T, dtype=torch.float64)
        betas = betas.clamp(max=max_beta)  # T <= 20 would reach beta >= 1: alpha_bar = 0, no signal left
        return Schedule.from_betas(betas, kind="linear")

    @staticmethod
    def cosine(T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> "Schedule":
        """Nichol & Dhariwal 2021, Eq. 17: alpha_bar(t) = cos^2(((t/T + s) / (1 + s)) * pi/2)."""
        steps = torch.arange(T + 1, dtype=torch.float64) / T
        f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
        betas = (1 - f[1:] / f[:-1]).clamp(max=max_beta)  # beta_t = 1 - alpha_bar_t / alpha_bar_{t-1}
        return Schedule.from_betas(betas, kind="cosine")

    @staticmethod
    def build(kind: str, T: int = 1000) -> "Schedule":
        if kind not in KINDS:
            raise ValueError(f"unknown schedule {kind!r}; choose one of {', '.join(KINDS)}")
        if T < 1:
            raise ValueError(f"T must be a positive number of timesteps, got {T}")
        return getattr(Schedule, kind)(T)

    @staticmethod
    def from_betas(betas: torch.Tensor, kind: str = "custom") -> "Schedule":
        betas = betas.to(torch.float64)
        alphas = 1 - betas
        alpha_bars = torch.cumprod(alphas, 0)
        alpha_bars_prev = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bars[:-1]])
        post_var = betas * (1 - alpha_bars_prev) / (1 - alpha_bars)  # Eq. 7, beta_tilde
        post_log_var = torch.log(torch.cat([post_var[1:2], post_var[1:]])) if len(betas) > 1 else torch.log(betas)
        f32 = lambda x: x.to(torch.float32)  # noqa: E731
        return Schedule(
            kind=kind, T=len(betas), betas=f32(betas), alphas=f32(alphas), alpha_bars=f32(alpha_bars),
            alpha_bars_prev=f32(alpha_bars_prev), sqrt_alpha_bars=f32(alpha_bars.sqrt()),
            sqrt_one_minus_alpha_bars=f32((1 - alpha_bars).sqrt()),
            posterior_variance=f32(post_var), posterior_log_variance=f32(post_log_var),
            posterior_mean_coef1=f32(betas * alpha_bars_prev.sqrt() / (1 - alpha_bars)),
            posterior_mean_coef2=f32((1 - alpha_bars_prev) * alphas.sqrt() / (1 - alpha_bars)),
        )

    def snr(self) -> torch.Tensor:
        """Signal-to-noise ratio alpha_bar / (1 - alpha_bar) per timestep."""
        return self.alpha_bars / (1 - self.alpha_bars)

    def alpha_bar_at(self, t: torch.Tensor) -> torch.Tensor:
        """alpha_bar at code indices t (B,), shaped (B, 1, 1, 1); t = -1 is clean data, alpha_bar = 1."""
        return torch.cat([self.alpha_bars, torch.ones(1)]).to(t.device)[t].view(-1, 1, 1, 1)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "T": self.T}

    @staticmethod
    def from_dict(d: dict) -> "Schedule":
        return Schedule.build(d["kind"], int(d["T"]))


def gather(table: torch.Tensor, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Look up ``table[t]`` per batch item and shape it to broadcast against ``x``: (B,) -> (B, 1, 1, 1)."""
    out = table.to(x.device)[t.to(x.device)]
    return out.reshape(-1, *([1] * (x.dim() - 1))).to(x.dtype)
