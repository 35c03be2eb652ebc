"""DDPM ancestral sampling (Ho et al. 2020, Alg. 2), DDIM (Song et al. 2021, Eq. 12) and DPM-Solver++(2M)
(Lu et al. 2022, Alg. 2) in one loop.

Both samplers walk explicit timestep pairs (t, t_prev). DDPM over all T steps is the paper's Alg. 2;
DDPM or DDIM over a strided sub-sequence uses alpha_bar_t / alpha_bar_{t_prev} as the step's effective
alpha (Nichol & Dhariwal 2021, Sec. 4). The last step goes to t_prev = -1, where alpha_bar = 1: no noise
is added and the sample is the predicted x0.

DPM-Solver++(2M) solves the same probability-flow ODE as deterministic DDIM, but to second order: each step
extrapolates from the last two x0 predictions, so its error falls four-fold per doubling of steps where DDIM's
halves. With very few steps evenly spaced in t it can be worse than DDIM (the model card measures both).
With eta > 0 it solves the reverse SDE instead (SDE-DPM-Solver++(2M), "DPM++ 2M SDE" in k-diffusion and
diffusers' sde-dpmsolver++): at eta = 1 its first-order step is DDPM's posterior step, i.e. DDIM with eta = 1.

Epsilon scaling (Ning et al. 2024, "Elucidating the exposure bias in diffusion models", ICLR): every sampler
may use eps_theta / lambda in place of eps_theta, a training-free correction for the gap between the x_t the
network saw in training and the x_t a few-step sampler feeds it. lambda = 1 is off; the model card measures it.

Classifier-free guidance (Ho & Salimans 2022, Eq. 6): eps = (1 + w) eps(x, y) - w eps(x, no label).
w = 0 is plain conditional sampling; labels=None is unconditional sampling (w is then ignored).
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from .diffusion import eps_from_x0, x0_from_eps
from .schedule import Schedule

SAMPLERS = ("ddpm", "ddim", "dpm++")
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}  # the network's passes only
DEFAULT_STEPS = {"ddim": 50, "dpm++": 20}  # ddpm: all T steps
VARIANCES = ("beta_tilde", "beta")


class Trajectory(NamedTuple):
    timesteps: list  # the t of each recorded step (code index, 0..T-1)
    xt: torch.Tensor  # (S, B, C, H, W): x_t fed to the network at that step
    x0_pred: torch.Tensor  # (S, B, C, H, W): the network's predicted x0 at that step


def timestep_pairs(T: int, steps: int, spacing: float = 1.0) -> list[tuple[int, int]]:
    """Timesteps from T-1 down to 0, paired with the next one; the last pair ends at -1.

    spacing p >= 1 places step i of S at t_i = (T-1)(1 - (i / (S-1))^p): p = 1 spaces them evenly (DDIM's
    "linspace"), p = 2 puts more of them near t = T and takes longer strides near t = 0. Rounding to integers
    keeps them strictly decreasing (a step that would repeat its predecessor's t moves one down)."""
    if not 1 <= steps <= T:
        raise ValueError(f"steps must be between 1 and T={T}, got {steps}")
    if not spacing >= 1:  # also refuses nan
        raise ValueError(f"spacing must be >= 1 (1 = evenly spaced), got {spacing}")
    u = torch.linspace(0, 1, steps, dtype=torch.float64)
    # p = 1 keeps float32 linspace's rounding, so the evenly spaced steps stay the ones every figure used
    ts = torch.linspace(T - 1, 0, steps) if spacing == 1 else (T - 1) * (1 - u ** spacing)
    ts = ts.round().long().tolist()
    for i in range(1, steps):  # stays >= 0: (T-1)/(S-1) >= 1 leaves room for every step below
        ts[i] = min(ts[i], ts[i - 1] - 1)
    return list(zip(ts, ts[1:] + [-1]))


def default_steps(sampler: str, T: int) -> int:
    return DEFAULT_STEPS.get(sampler, T)


def guided_eps(model, x: torch.Tensor, t: torch.Tensor, labels, guidance: float) -> torch.Tensor:
    """eps_theta with classifier-free guidance; both passes go through the network as one batch."""
    if labels is None or guidance == 0:
        return model(x, t, labels)
    null = torch.full_like(labels, model.config.num_classes)
    eps_c, eps_u = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([labels, null])).float().chunk(2)
    return (1 + guidance) * eps_c - guidance * eps_u  # Ho & Salimans 2022, Eq. 6


def ddpm_step(x0_pred, xt, eps, ab, ab_prev, noise, variance="beta_tilde"):
    """Posterior q(x_prev | x_t, x0_pred) (Eq. 7) for the pair's effective beta = 1 - ab / ab_prev."""
    beta = 1 - ab / ab_prev
    coef_x0 = ab_prev.sqrt() * beta / (1 - ab)
    coef_xt = (1 - beta).sqrt() * (1 - ab_prev) / (1 - ab)
    var = beta * (1 - ab_prev) / (1 - ab) if variance == "beta_tilde" else beta
    return coef_x0 * x0_pred + coef_xt * xt + var.sqrt() * noise


def ddim_step(x0_pred, xt, eps, ab, ab_prev, noise, eta=0.0):
    """Song et al. 2021, Eq. 12, with sigma from Eq. 16 scaled by eta (eta=0: deterministic)."""
    sigma = eta * ((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)).sqrt()
    direction = (1 - ab_prev - sigma ** 2).clamp(min=0).sqrt() * eps  # "direction pointing to x_t"
    return ab_prev.sqrt() * x0_pred + direction + sigma * noise


def half_log_snr(ab: torch.Tensor) -> torch.Tensor:
    """lambda_t = log(alpha_t / sigma_t) = 0.5 log(alpha_bar / (1 - alpha_bar)), DPM-Solver's time variable."""
    return 0.5 * (ab.log() - (-ab).log1p())


def dpmpp_2m_step(x0_pred, xt, ab, ab_prev, noise, eta=0.0, x0_last=None, h_last=None):
    """DPM-Solver++(2M) (Lu et al. 2022, Alg. 2) and, for eta > 0, its SDE form (Lu et al. 2022, App. and
    k-diffusion's sample_dpmpp_2m_sde); returns (x_prev, h). With no previous prediction (first step) it is first
    order: deterministic DDIM at eta = 0 and DDPM's posterior step (DDIM eta = 1) at eta = 1. Call only for
    t_prev >= 0 (alpha_bar_prev < 1). eta scales the SDE's noise: e^{-eta h} of x_t is replaced by fresh noise."""
    h = half_log_snr(ab_prev) - half_log_snr(ab)
    d = x0_pred
    if x0_last is not None:  # midpoint correction from the last two predictions (Alg. 2, line 7)
        r = h_last / h
        d = (1 + 1 / (2 * r)) * x0_pred - 1 / (2 * r) * x0_last
    # x_prev = sigma'/sigma e^{-eta h} x_t + alpha' (1 - e^{-(1+eta) h}) D + sigma' sqrt(1 - e^{-2 eta h}) z
    x = ((1 - ab_prev) / (1 - ab)).sqrt() * torch.exp(-eta * h) * xt - ab_prev.sqrt() * torch.expm1(-(1 + eta) * h) * d
    if eta > 0:
        x = x + (1 - ab_prev).sqrt() * (-torch.expm1(-2 * eta * h)).sqrt() * noise
    return x, h


@torch.inference_mode()
def sample(model, schedule: Schedule, n: int, *, sampler: str = "ddim", steps: int | None = None,
           eta: float = 0.0, variance: str = "beta_tilde", labels: torch.Tensor | None = None,
           guidance: float = 0.0, clip_x0: bool = True, generator: torch.Generator | None = None,
           trajectory=False, device=None, progress: bool = False, precision: str = "fp32", spacing: float = 1.0,
           eps_scaling: float = 1.0):
    """Draw n samples in [-1, 1] scale, shape (n, C, H, W).

    steps: number of network evaluations (default T for ddpm, 50 for ddim, 20 for dpm++).
    spacing: where the steps sit (timestep_pairs): 1 evenly spaced (default), 2 denser near t = T.
    eta: noise, DDIM (Song et al. 2021, Eq. 16 scale) and dpm++ (0: the ODE solver, 1: the SDE solver); both are
    DDPM's posterior step at eta = 1 to first order.
    clip_x0: clamp each x0 prediction to [-1, 1] (and re-derive eps from it).
    eps_scaling: lambda of epsilon scaling, eps_theta / lambda at every step (1 = off); applied to the guided eps,
    before x0 is predicted and clipped.
    trajectory: False, True (record every step) or a collection of timesteps t to record;
    when recording, returns (samples, Trajectory).
    generator: a CPU torch.Generator; all noise is drawn from it, so a seed repeats the same samples.
    precision: "fp32", or "bf16" / "fp16" to run the network under torch.autocast (faster on GPUs and on CPUs
    with bfloat16 instructions; slightly different digits). The sampler's own arithmetic always stays float32.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    if variance not in VARIANCES:
        raise ValueError(f"unknown variance {variance!r}; choose one of {', '.join(VARIANCES)}")
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if not 0 < eps_scaling < float("inf"):  # also refuses nan
        raise ValueError(f"eps_scaling must be a positive number (1 = off), got {eps_scaling}")
    cfg = model.config
    device = torch.device(device or next(model.parameters()).device)
    pairs = timestep_pairs(schedule.T, steps or default_steps(sampler, schedule.T), spacing)
    shape = (n, cfg.in_channels, cfg.image_size, cfg.image_size)
    randn = lambda: torch.randn(shape, generator=generator).to(device)  # noqa: E731  CPU draws: same on any device
    ab_table = torch.cat([schedule.alpha_bars, torch.ones(1)]).to(device)  # index -1 -> alpha_bar = 1
    labels = labels.to(device) if labels is not None else None
    x, record, last = randn(), [], (None, None)  # last: dpm++'s previous (x0_pred, h)
    dtype = PRECISIONS[precision]
    pairs_iter = pairs
    if progress:
        from tqdm.auto import tqdm
        pairs_iter = tqdm(pairs, desc=f"{sampler} {len(pairs)} steps")
    for t, t_prev in pairs_iter:
        ab, ab_prev = ab_table[t], ab_table[t_prev]
        with torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            eps = guided_eps(model, x, torch.full((n,), t, device=device, dtype=torch.long), labels, guidance)
        eps = eps.float() / eps_scaling  # Ning et al. 2024, epsilon scaling; dividing by 1 is exact
        x0_pred = x0_from_eps(ab, x, eps)
        if clip_x0:  # keep x0 in the data range, then re-derive eps so the update stays consistent
            x0_pred = x0_pred.clamp(-1, 1)
            eps = eps_from_x0(ab, x, x0_pred)
        if trajectory is True or (trajectory and t in trajectory):
            record.append((t, x, x0_pred))
        stochastic = t_prev >= 0 and (sampler == "ddpm" or eta > 0)  # no noise on the last step
        noise = randn() if stochastic else torch.zeros_like(x)
        if sampler == "ddpm":
            x = ddpm_step(x0_pred, x, eps, ab, ab_prev, noise, variance)
        elif sampler == "dpm++":
            x, h = dpmpp_2m_step(x0_pred, x, ab, ab_prev, noise, eta, *last) if t_prev >= 0 else (x0_pred, None)
            last = (x0_pred, h)
        else:
            x = ddim_step(x0_pred, x, eps, ab, ab_prev, noise, eta)
    if trajectory is False or trajectory is None:  # an empty collection still returns an (empty) Trajectory
        return x
    if not record:
        return x, Trajectory([], x.new_empty(0, *shape), x.new_empty(0, *shape))  # (0, B, C, H, W)
    ts, xts, x0s = zip(*record)
    return x, Trajectory(list(ts), torch.stack(xts), torch.stack(x0s))
