"""Editing images with a trained DDPM and no retraining: SDEdit (Meng et al. 2022), inpainting (RePaint) and inversion.

SDEdit: noise an input x0 to step t0 with the forward process (Ho et al. 2020, Eq. 4), then run the reverse process
from there (samplers.reverse_process). t0 is the paper's t: 0 returns the input, T keeps almost nothing of it; in
between, a small t0 keeps the details and a large t0 only the rough shape. The run from t0 keeps the stride of a
full run of `steps`, so it takes steps * t0 / T network evaluations (at least one).

Inpainting (Lugmayr et al. 2022): after every reverse step the known pixels (mask = 1) are replaced by the input
noised to that step and the unknown ones (mask = 0) keep the model's step (Eq. 8). Pasting alone leaves seams: the
model's step never saw the pasted pixels, only its own guess of them. RePaint's resampling noises the result back
up `jump` steps with the forward process (Eq. 2 over several steps) and runs them again, `resample` times per block
of steps, so the two regions have time to agree. Inversion runs deterministic DDIM backwards, from an image up to its
noise.

All take the settings, labels, guidance and torch.Generator of samplers.sample; noise is drawn on the CPU. Labels
default to "none" (the "no label" path), so the input decides the digit unless one is asked for.
"""
from __future__ import annotations

import math

import torch

from .data import check_images
from .diffusion import noise_to_step
from .samplers import SamplerSettings, reverse_process, settings_and_labels, timestep_pairs
from .schedule import Schedule

MASKS = ("left", "right", "top", "bottom", "centre", "random")  # the region a mask hides


def noise_to(schedule: Schedule, x0: torch.Tensor, t0: int, generator=None) -> torch.Tensor:
    """x0 noised to the paper's step t0 (diffusion.noise_to_step), eps drawn on the CPU; t0 = 0 returns a copy."""
    if t0 == 0:
        return x0.clone()
    eps = torch.randn(x0.shape, generator=generator).to(x0.device)
    return noise_to_step(schedule, x0, t0, eps, name="t0")


def edit_pairs(schedule: Schedule, s: SamplerSettings, t0: int) -> list[tuple[int, int]]:
    """Timestep pairs from code index t0 - 1 down to -1, at the stride of a full run of s's steps."""
    steps = min(max(1, math.ceil(s.resolved_steps(schedule.T) * t0 / schedule.T)), t0)  # at most every step
    return timestep_pairs(schedule.T, steps, s.spacing, start=t0 - 1, grid=s.grid)


def _edit_inputs(model, x0, labels, generator, overrides):
    """(settings, images, labels for each) for one editing call; labels as samplers.resolve_labels takes them,
    None meaning the settings' choice, as in sample()."""
    x0 = check_images(x0)
    s, labels = settings_and_labels(model, len(x0), labels, generator, overrides)
    return s, x0, labels


def sdedit(model, schedule: Schedule, x0, t0: int, *, labels="none", generator=None, device=None,
           progress: bool = False, **settings) -> torch.Tensor:
    """SDEdit (Meng et al. 2022): x0 (N, C, H, W) in [-1, 1] noised to the paper's step t0, then denoised.

    t0 = 0 returns x0. The first draw from `generator` is the forward noise, so noise_to with an equally seeded
    generator gives the x_t0 the reverse process starts from. labels and settings as in samplers.sample; give a
    digit (and guidance w) to turn a sketch into that digit."""
    s, x0, labels = _edit_inputs(model, x0, labels, generator, settings)
    if t0 == 0:
        return x0.clone()
    device = torch.device(device or next(model.parameters()).device)
    xt = noise_to(schedule, x0, t0, generator).to(device)  # (N, C, H, W) at code index t0 - 1
    return reverse_process(model, schedule, xt, edit_pairs(schedule, s, t0), s, labels=labels, generator=generator,
                           progress=progress)


def invert(model, schedule: Schedule, x0, *, labels="none", device=None, progress: bool = False,
           **settings) -> torch.Tensor:
    """DDIM inversion (Song et al. 2021, Sec. 4.3): x0 (N, C, H, W) in [-1, 1] walked up to x_T by DDIM steps (Eq. 12,
    eta = 0) from lower to higher noise, eps taken at the lower step (x0 read as x at index 0). sample(x_T=...,
    sampler="ddim", eta=0) with the same steps and labels comes back close to x0; another label or guidance edits."""
    s, x0, labels = _edit_inputs(model, x0, labels, None, {**settings, "sampler": "ddim", "eta": 0.0})
    down = timestep_pairs(schedule.T, s.resolved_steps(schedule.T), s.spacing, grid=s.grid)
    up = [(max(t_prev, 0), t) for t, t_prev in reversed(down) if t > max(t_prev, 0)]
    device = torch.device(device or next(model.parameters()).device)
    return reverse_process(model, schedule, x0.to(device), up, s, labels=labels, progress=progress)


def check_mask(mask, x0: torch.Tensor) -> torch.Tensor:
    """A 0/1 mask (1 = known pixel) broadcast to x0's shape, as float32."""
    m = torch.as_tensor(mask).float()
    if not ((m == 0) | (m == 1)).all():
        raise ValueError("mask must hold 0 (pixel to fill) and 1 (known pixel) only")
    try:
        return m.expand_as(x0).clone()
    except RuntimeError:
        raise ValueError(f"mask of shape {tuple(m.shape)} does not broadcast to the images' "
                         f"{tuple(x0.shape)}") from None


def make_mask(hide: str, size: int = 28, keep: float = 0.5, generator=None) -> torch.Tensor:
    """A (1, 1, size, size) mask, 1 = known: `hide` names the region to fill (a half, the centre square, or random
    pixels, each kept with probability `keep`)."""
    m, h = torch.ones(1, 1, size, size), size // 2
    regions = {"left": (slice(None), slice(0, h)), "right": (slice(None), slice(h, None)),
               "top": (slice(0, h), slice(None)), "bottom": (slice(h, None), slice(None)),
               "centre": (slice(size // 4, size - size // 4),) * 2}
    if hide == "random":
        return (torch.rand(m.shape, generator=generator) < keep).float()
    if hide not in regions:
        raise ValueError(f"unknown mask {hide!r}; choose one of {', '.join(MASKS)}")
    m[(..., *regions[hide])] = 0
    return m


def jump_up(schedule: Schedule, x: torch.Tensor, t_from: int, t_to: int, generator=None) -> torch.Tensor:
    """q(x_{t_to} | x_{t_from}) for t_to > t_from (code indices, -1 = clean): Eq. 2 over the steps in between,
    x_to = sqrt(ab_to / ab_from) x + sqrt(1 - ab_to / ab_from) z."""
    ab = torch.cat([schedule.alpha_bars, torch.ones(1)]).double()  # index -1 -> alpha_bar = 1
    ratio = float(ab[t_to] / ab[t_from])
    z = torch.randn(x.shape, generator=generator).to(x.device)
    return math.sqrt(ratio) * x + math.sqrt(1 - ratio) * z


def paste(x: torch.Tensor, known: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """RePaint, Eq. 8: the known pixels (mask = 1) from `known`, the unknown ones (mask = 0) from the model's x."""
    return mask * known + (1 - mask) * x


def repaint_blocks(pairs, jump: int) -> list[list[tuple[int, int]]]:
    """The timestep pairs cut into blocks of `jump` steps: the stretch a resampling jump goes back over."""
    if jump < 1:
        raise ValueError(f"jump must be a positive number of steps, got {jump}")
    return [pairs[i:i + jump] for i in range(0, len(pairs), jump)]


def inpaint(model, schedule: Schedule, x0, mask, *, jump: int = 1, resample: int = 1, labels="none",
            generator=None, device=None, progress: bool = False, **settings) -> torch.Tensor:
    """Fill the pixels of x0 (N, C, H, W) in [-1, 1] where mask = 0; known pixels (mask = 1) come back unchanged.

    resample = 1 only pastes the known pixels after each step; resample = r > 1 runs each block of `jump` steps r
    times, noising back up between runs (RePaint, Alg. 1). Costs resample * steps network evaluations. labels and
    settings as in samplers.sample; dpm++ restarts its second-order memory at each block."""
    s, x0, labels = _edit_inputs(model, x0, labels, generator, settings)
    if resample < 1:
        raise ValueError(f"resample must be a positive number of runs per block, got {resample}")
    device = torch.device(device or next(model.parameters()).device)
    x0, mask = x0.to(device), check_mask(mask, x0).to(device)

    def after_step(t_prev, x):  # the known pixels from the forward process of x0 at the step just reached
        return paste(x, x0 if t_prev < 0 else noise_to(schedule, x0, t_prev + 1, generator), mask)
    x = torch.randn(x0.shape, generator=generator).to(device)  # x_T
    blocks = repaint_blocks(timestep_pairs(schedule.T, s.resolved_steps(schedule.T), s.spacing, grid=s.grid), jump)
    runs = [(block, r) for block in blocks for r in range(resample)]
    if progress:
        from tqdm.auto import tqdm
        runs = tqdm(runs, desc=f"inpaint: {s.sampler}, {len(blocks)} blocks x {resample}")
    for block, r in runs:
        if r > 0:  # resampling jump: back to the block's first step, then through the block again
            x = jump_up(schedule, x, block[-1][1], block[0][0], generator)
        x = reverse_process(model, schedule, x, block, s, labels=labels, generator=generator, after_step=after_step)
    return x
