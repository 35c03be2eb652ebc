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
w = 0 is plain conditional sampling; no labels is unconditional sampling (w is then ignored).

How to sample is a value, SamplerSettings; a checkpoint carries the settings it recommends (model.sampling), and
sample() / sample_trajectory() use them for whatever their caller leaves out. reverse_process() is the loop itself,
from any x at any timestep, with hooks for recording steps and for editing each step's result.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import NamedTuple

import torch

from .diffusion import eps_from_v, eps_from_x0, x0_from_eps, x0_from_v
from .schedule import Schedule

SAMPLERS = ("ddpm", "ddim", "dpm++")
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}  # the network's passes only
DEFAULT_STEPS = {"ddim": 50, "dpm++": 20}  # ddpm: all T steps
VARIANCES = ("beta_tilde", "beta")
DEFAULT_LABELS = (None, "random")  # SamplerSettings.labels
LABEL_CHOICES = ("all", "random", "none")  # besides a digit 0..K-1
GRIDS = ("linspace", "trailing")  # timestep_pairs' grid
PREDICTIONS = ("eps", "v")  # what a network's output is: eps (Ho et al. 2020) or v (Salimans & Ho 2022)


class Trajectory(NamedTuple):
    timesteps: list  # the t of each recorded step (code index, 0..T-1)
    xt: torch.Tensor  # (S, B, C, H, W): x_t fed to the network at that step
    x0_pred: torch.Tensor  # (S, B, C, H, W): the network's predicted x0 at that step
    x: torch.Tensor  # (B, C, H, W): the final samples


def timestep_pairs(T: int, steps: int, spacing: float = 1.0, start: int | None = None,
                   grid: str = "linspace") -> list[tuple[int, int]]:
    """Timesteps from `start` (default T-1) down to 0, paired with the next one; the last pair ends at -1.

    grid "linspace": spacing p >= 1 places step i of S at t_i = start (1 - (i / (S-1))^p): p = 1 spaces them evenly
    (DDIM's "linspace"), p = 2 puts more of them near t = start and takes longer strides near t = 0. Rounding to
    integers keeps them strictly decreasing (a step that would repeat its predecessor's t moves one down). A start
    below T-1 begins the reverse process part way, from a noised input (SDEdit, editing.py).
    grid "trailing" (Lin et al. 2024, Table 2): t_i = round((S - i) (start + 1) / S) - 1, even strides that end one
    stride above -1. Halving S keeps every other step, so a grid of S steps lies inside the grid of 2S: the
    grids progressive distillation needs (distill.py)."""
    top = T - 1 if start is None else start
    if not 0 <= top <= T - 1:
        raise ValueError(f"start must be a timestep between 0 and T-1={T - 1}, got {start}")
    if not 1 <= steps <= top + 1:
        limit = f"T={T}" if start is None else f"start + 1 = {top + 1}"
        raise ValueError(f"steps must be between 1 and {limit}, got {steps}")
    if not spacing >= 1:  # also refuses nan
        raise ValueError(f"spacing must be >= 1 (1 = evenly spaced), got {spacing}")
    if grid not in GRIDS:
        raise ValueError(f"unknown grid {grid!r}; choose one of {', '.join(GRIDS)}")
    if grid == "trailing":
        if spacing != 1:
            raise ValueError(f"the trailing grid is evenly spaced; spacing must be 1, got {spacing}")
        ts = [round((steps - i) * (top + 1) / steps) - 1 for i in range(steps)]
        return list(zip(ts, ts[1:] + [-1]))
    u = torch.linspace(0, 1, steps, dtype=torch.float64)
    # p = 1 keeps float32 linspace's rounding, so the evenly spaced steps stay the ones every figure used
    ts = torch.linspace(top, 0, steps) if spacing == 1 else top * (1 - u ** spacing)
    ts = ts.round().long().tolist()
    for i in range(1, steps):  # stays >= 0: top/(S-1) >= 1 leaves room for every step below
        ts[i] = min(ts[i], ts[i - 1] - 1)
    return list(zip(ts, ts[1:] + [-1]))


def guided_eps(model, x: torch.Tensor, t: torch.Tensor, labels, guidance: float) -> torch.Tensor:
    """eps_theta with classifier-free guidance; both passes go through the network as one batch."""
    if labels is None or guidance == 0:
        return model(x, t, labels)
    null = torch.full_like(labels, model.config.num_classes)
    eps_c, eps_u = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([labels, null])).float().chunk(2)
    return guide(eps_c, eps_u, guidance)


def guide(eps_cond: torch.Tensor, eps_uncond: torch.Tensor, guidance: float) -> torch.Tensor:
    """Ho & Salimans 2022, Eq. 6: (1 + w) eps(x_t, c) - w eps(x_t); w = 0 is the plain conditional model."""
    return (1 + guidance) * eps_cond - guidance * eps_uncond


def ddpm_step(x0_pred, xt, eps, ab, ab_prev, noise, variance="beta_tilde"):
    """Posterior q(x_prev | x_t, x0_pred) (Eq. 7) for the pair's effective beta = 1 - ab / ab_prev."""
    beta = 1 - ab / ab_prev
    coef_x0 = ab_prev.sqrt() * beta / (1 - ab)
    coef_xt = (1 - beta).sqrt() * (1 - ab_prev) / (1 - ab)
    var = beta * (1 - ab_prev) / (1 - ab) if variance == "beta_tilde" else beta
    return coef_x0 * x0_pred + coef_xt * xt + var.sqrt() * noise


def ddim_step(x0_pred, xt, eps, ab, ab_prev, noise, eta=0.0):
    """Song et al. 2021, Eq. 12, with sigma from Eq. 16 scaled by eta (eta=0: deterministic)."""
    # clamped: 0, not nan, on a step up to more noise (ab_prev < ab), as DDIM inversion (editing.invert) takes it
    sigma = eta * ((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)).clamp(min=0).sqrt()
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


@dataclass(frozen=True)
class SamplerSettings:
    """How to sample: the sampler and its knobs. A checkpoint may carry the ones it recommends ("sampling").

    labels says how labels are chosen when the caller gives none: "random" (a uniformly drawn digit each, i.e.
    p(x) = sum_y p(y) p(x | y)) or None (the model's "no label" path, or an unconditional model).
    """
    sampler: str = "ddim"
    steps: int | None = None  # network evaluations; None: DEFAULT_STEPS, or T for ddpm
    eta: float = 0.0  # ddim / dpm++ noise: 0 deterministic, 1 DDPM's posterior on the strided steps
    variance: str = "beta_tilde"  # ddpm: beta_tilde (Eq. 7) or beta
    spacing: float = 1.0  # timestep_pairs' power: 1 evenly spaced
    grid: str = "linspace"  # timestep_pairs' grid: "trailing" for a distilled student
    eps_scaling: float = 1.0  # Ning et al. 2024: eps_theta / lambda; 1 = off
    guidance: float = 0.0  # classifier-free guidance w
    labels: str | None = None  # "random" or None, used when sample() is given no labels
    precision: str = "fp32"  # the network's arithmetic: fp32, or bf16 / fp16 under autocast
    clip_x0: bool = True  # clamp each x0 prediction to [-1, 1] and re-derive eps

    def __post_init__(self):
        for name, allowed in (("sampler", SAMPLERS), ("variance", VARIANCES), ("precision", tuple(PRECISIONS)),
                              ("labels", DEFAULT_LABELS), ("grid", GRIDS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}; choose one of "
                                 f"{', '.join(map(str, allowed))}")
        if self.steps is not None and not (isinstance(self.steps, int) and self.steps >= 1):
            raise ValueError(f"steps must be a positive integer (or None for the sampler's default), got {self.steps}")
        if not 0 <= self.eta < float("inf"):  # also refuses nan
            raise ValueError(f"eta must be a number >= 0, got {self.eta}")
        if not 0 < self.eps_scaling < float("inf"):
            raise ValueError(f"eps_scaling must be a positive number (1 = off), got {self.eps_scaling}")
        if not 0 <= self.guidance < float("inf"):
            raise ValueError(f"guidance must be a number >= 0, got {self.guidance}")
        if not self.spacing >= 1:
            raise ValueError(f"spacing must be >= 1 (1 = evenly spaced), got {self.spacing}")
        if self.grid == "trailing" and self.spacing != 1:
            raise ValueError(f"the trailing grid is evenly spaced; spacing must be 1, got {self.spacing}")

    def with_overrides(self, **given) -> "SamplerSettings":
        """These settings with the given ones replaced (None values are ignored). Asking for another sampler than
        these settings' own starts its knobs (steps, eta, variance, spacing, eps_scaling) from the plain
        defaults, since they were chosen for this sampler; labels, guidance, precision and clipping carry over."""
        given = {k: v for k, v in given.items() if v is not None}
        unknown = set(given) - {f.name for f in fields(self)}
        if unknown:
            raise TypeError(f"unknown sampling setting(s) {', '.join(sorted(unknown))}; "
                            f"known: {', '.join(f.name for f in fields(self))}")
        base = self
        if given.get("sampler", self.sampler) != self.sampler:
            base = replace(self, **{k: getattr(SamplerSettings, k) for k in SAMPLER_KNOBS})
        return replace(base, **given)

    def resolved_steps(self, T: int) -> int:
        return self.steps or DEFAULT_STEPS.get(self.sampler, T)

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> "SamplerSettings":
        return SamplerSettings().with_overrides(**d)


SAMPLER_KNOBS = ("steps", "eta", "variance", "spacing", "grid", "eps_scaling")


def prediction_of(model) -> str:
    """What the model's output is (checkpoint.build sets model.prediction): "eps" unless it says "v"."""
    return getattr(model, "prediction", "eps")


def settings_of(model) -> SamplerSettings:
    """The settings a model came with (checkpoint.build attaches them as model.sampling), else the plain ones."""
    return getattr(model, "sampling", None) or SamplerSettings()


def resolve_labels(spec, n: int, num_classes: int | None, seed: int | None = None) -> torch.Tensor | None:
    """Labels for n samples from a spec: a tensor or list of n labels, an int (every sample), "all" (0..K-1 in
    turn), "random" (uniform; drawn from a generator seeded with `seed`, apart from the sampling noise) or
    "none" / None (the "no label" path)."""
    if spec is None or (isinstance(spec, str) and spec == "none"):
        return None
    if not num_classes:
        raise ValueError(f"labels {spec!r} given but the model is unconditional (trained without labels)")
    if isinstance(spec, str):
        if spec not in LABEL_CHOICES:
            raise ValueError(f"labels must be label numbers or one of {', '.join(LABEL_CHOICES)}, got {spec!r}")
        if spec == "all":
            return torch.arange(n) % num_classes
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        return torch.randint(0, num_classes, (n,), generator=g)
    labels = torch.as_tensor(spec, dtype=torch.long)
    labels = labels.expand(n).clone() if labels.dim() == 0 else labels
    if labels.shape != (n,):
        raise ValueError(f"labels must be one per sample, shape ({n},), got {tuple(labels.shape)}")
    if labels.min() < 0 or labels.max() > num_classes:  # num_classes itself is the "no label" class
        raise ValueError(f"labels must be between 0 and {num_classes - 1} (or {num_classes}, \"no label\"), got "
                         f"{labels.min()}..{labels.max()}")
    return labels


def _step(s: SamplerSettings, x0_pred, x, eps, ab, ab_prev, noise, t_prev, last):
    """One update x_t -> x_{t_prev} of sampler s; returns (x_prev, dpm++'s (x0_pred, h) memory)."""
    if s.sampler == "ddpm":
        return ddpm_step(x0_pred, x, eps, ab, ab_prev, noise, s.variance), last
    if s.sampler == "dpm++":
        x, h = dpmpp_2m_step(x0_pred, x, ab, ab_prev, noise, s.eta, *last) if t_prev >= 0 else (x0_pred, None)
        return x, (x0_pred, h)
    return ddim_step(x0_pred, x, eps, ab, ab_prev, noise, s.eta), last


def predict(model, s: SamplerSettings, x, t, ab, labels):
    """(eps, x0_pred) at step t (an int, or one per sample with ab shaped to broadcast): guided, eps scaled by
    1 / lambda, x0 clipped and eps re-derived from it. A v-prediction model's x0 comes straight from v, with no
    division by sqrt(alpha_bar), which is near 0 at the noisiest steps."""
    dtype = PRECISIONS[s.precision]
    t = t if torch.is_tensor(t) else torch.full((len(x),), t, device=x.device, dtype=torch.long)
    with torch.autocast(x.device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        out = guided_eps(model, x, t, labels, s.guidance).float()  # guidance is linear: the same for eps and v
    if prediction_of(model) == "v" and s.eps_scaling == 1:
        eps, x0_pred = eps_from_v(ab, x, out), x0_from_v(ab, x, out)
    else:
        eps = (eps_from_v(ab, x, out) if prediction_of(model) == "v" else out) / s.eps_scaling  # Ning et al. 2024
        x0_pred = x0_from_eps(ab, x, eps)
    if s.clip_x0:  # keep x0 in the data range, then re-derive eps so the update stays consistent
        x0_pred = x0_pred.clamp(-1, 1)
        eps = eps_from_x0(ab, x, x0_pred)
    return eps, x0_pred


@torch.inference_mode()
def reverse_process(model, schedule: Schedule, x: torch.Tensor, pairs, settings: SamplerSettings, *, labels=None,
                    generator=None, observe=None, after_step=None, progress: bool = False) -> torch.Tensor:
    """Run the reverse process from x (at timestep pairs[0][0]) along `pairs` of (t, t_prev); return the result.

    Noise is drawn on the CPU from `generator` (a seed gives the same draws on any device), none on the last step.
    observe(t, x_t, x0_pred) sees every step; after_step(t_prev, x) may replace each step's result (e.g. the known
    pixels of an inpainting)."""
    device, s = x.device, settings
    ab_table = torch.cat([schedule.alpha_bars, torch.ones(1)]).to(device)  # index -1 -> alpha_bar = 1
    labels = labels.to(device) if labels is not None else None
    if progress:
        from tqdm.auto import tqdm
        pairs = tqdm(pairs, desc=f"{s.sampler} {len(pairs)} steps")
    last = (None, None)  # dpm++'s previous (x0_pred, h)
    for t, t_prev in pairs:
        ab, ab_prev = ab_table[t], ab_table[t_prev]
        eps, x0_pred = predict(model, s, x, t, ab, labels)
        if observe is not None:
            observe(t, x, x0_pred)
        stochastic = t_prev >= 0 and (s.sampler == "ddpm" or s.eta > 0)  # no noise on the last step
        noise = torch.randn(x.shape, generator=generator).to(device) if stochastic else torch.zeros_like(x)
        x, last = _step(s, x0_pred, x, eps, ab, ab_prev, noise, t_prev, last)
        if after_step is not None:
            x = after_step(t_prev, x)
    return x


def settings_and_labels(model, n: int, labels, generator, overrides: dict):
    """(settings, labels for n samples) of one call: the model's settings with the caller's overrides, and the
    labels spec resolved (None: the settings' choice; "random" seeded like the generator)."""
    s = settings_of(model).with_overrides(**overrides)
    seed = generator.initial_seed() if generator is not None else None
    return s, resolve_labels(s.labels if labels is None else labels, n, model.config.num_classes, seed)


def _resolve_call(model, schedule, n, x_T, labels, generator, overrides):
    """(settings, n, labels for all n, timestep pairs) for one call of sample / sample_trajectory."""
    if x_T is not None:
        if n is not None and n != len(x_T):
            raise ValueError(f"n = {n} but x_T holds {len(x_T)} samples; give one of them")
        n = len(x_T)
    if n is None or n < 1:
        raise ValueError(f"n must be a positive number of samples (or give x_T), got {n}")
    s, labels = settings_and_labels(model, n, labels, generator, overrides)
    return s, n, labels, timestep_pairs(schedule.T, s.resolved_steps(schedule.T), s.spacing, grid=s.grid)


def _batches(n: int, batch_size: int | None):
    """Slices of at most batch_size samples (one slice for all n when batch_size is None)."""
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
    step = batch_size or n
    return [slice(i, min(i + step, n)) for i in range(0, n, step)]


def _start(model, x_T, part: slice, generator, device) -> torch.Tensor:
    """x_T of one batch: the given one, or standard normal noise drawn on the CPU from `generator`."""
    if x_T is not None:
        return x_T[part].to(device=device, dtype=torch.float32)
    cfg = model.config
    return torch.randn((part.stop - part.start, cfg.in_channels, cfg.image_size, cfg.image_size),
                       generator=generator).to(device)


def sample(model, schedule: Schedule, n: int | None = None, *, labels=None, generator=None, x_T=None,
           batch_size: int | None = None, device=None, progress: bool = False, **settings) -> torch.Tensor:
    """Draw n samples in [-1, 1] scale, shape (n, C, H, W), from noise x_T (drawn from `generator`, or given).

    settings (sampler, steps, eta, variance, spacing, eps_scaling, guidance, precision, clip_x0; see
    SamplerSettings) replace the model's own (a checkpoint's recommended ones), else the plain defaults.
    labels: a tensor of n labels, an int, "all", "random", "none", or None for the settings' choice
    (resolve_labels). generator: a CPU torch.Generator; all noise is drawn from it, so a seed repeats the samples.
    batch_size: run at most this many samples through the network at once (None: all n).
    """
    s, n, labels, pairs = _resolve_call(model, schedule, n, x_T, labels, generator, settings)
    device = torch.device(device or next(model.parameters()).device)
    out = []
    for part in _batches(n, batch_size):
        x = _start(model, x_T, part, generator, device)
        out.append(reverse_process(model, schedule, x, pairs, s, labels=None if labels is None else labels[part],
                                   generator=generator, progress=progress))
    return out[0] if len(out) == 1 else torch.cat(out)


def sample_trajectory(model, schedule: Schedule, n: int | None = None, *, record=None, labels=None, generator=None,
                      x_T=None, device=None, progress: bool = False, **settings) -> Trajectory:
    """sample() in one batch, also recording x_t and the predicted x0 at every step, or at the timesteps in
    `record`."""
    s, n, labels, pairs = _resolve_call(model, schedule, n, x_T, labels, generator, settings)
    device = torch.device(device or next(model.parameters()).device)
    steps = []

    def observe(t, xt, x0_pred):
        if record is None or t in record:
            steps.append((t, xt, x0_pred))
    x = reverse_process(model, schedule, _start(model, x_T, slice(0, n), generator, device), pairs, s,
                        labels=labels, generator=generator, observe=observe, progress=progress)
    if not steps:
        empty = x.new_empty(0, *x.shape)  # (0, B, C, H, W)
        return Trajectory([], empty, empty.clone(), x)
    ts, xts, x0s = zip(*steps)
    return Trajectory(list(ts), torch.stack(xts), torch.stack(x0s), x)
