"""Build-it-yourself exercises: the learner's function checked against the library's on random inputs.

`check(name, yours)` runs the learner's function (or class) and the library's on the same random inputs, a few
trials, and prints one line: that they agree, that the exercise is not done yet (the blank as given returns None or
raises NotImplementedError), or the first mismatch: the trial, then the error raised, the shape, or the first
differing value with its index. It returns True only when every trial agrees, and never raises, so Run All goes on
past an unfinished or wrong exercise. `EXERCISES` lists what can be checked, with the signature to write.

The answers are exact (Eq. 4, Eq. 12, ...), so agreement is to float rounding, not to a loose tolerance: an
algebraically equal rearrangement passes, a wrong coefficient does not. `compare_losses` compares two training
runs' loss curves: identical to float rounding when the loop is the library's, step for step.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from .. import diffusion, distill, editing, samplers, training, unet
from ..schedule import Schedule

TRIALS = 5
RTOL, ATOL = 1e-5, 1e-5  # float32 rounding of an equal rearrangement of the same formula


@dataclass(frozen=True)
class Exercise:
    signature: str  # what the learner writes, as the notebook states it
    reference: Callable  # the library's answer, same arguments
    inputs: Callable[[torch.Generator, int], tuple]  # the arguments of trial k
    where: str  # the library function it must match, for the messages
    last_step: bool = False  # trial 1 is the last reverse step (ab_prev = 1), and the messages say so
    atol: float = ATOL


def _alpha_bars(g: torch.Generator, k: int, b: int = 4):
    """(ab, ab_prev) per sample, shaped (B, 1, 1, 1), ab_prev with less noise; trial 0 is the last step (ab_prev 1)."""
    ab = 0.002 + 0.99 * torch.rand(b, 1, 1, 1, generator=g)
    ab_prev = torch.ones_like(ab) if k == 0 else ab + (1 - ab) * torch.rand(b, 1, 1, 1, generator=g)
    return ab, ab_prev


def _images(g: torch.Generator, n: int = 1, b: int = 4, size: int = 8):
    return torch.randn(n, b, 1, size, size, generator=g).unbind(0)


def _schedule(k: int) -> Schedule:
    return Schedule.linear(1000) if k % 2 == 0 else Schedule.cosine(100)


def _q_sample_inputs(g, k):
    s = _schedule(k)
    x0, eps = _images(g, 2)
    return s, x0, torch.randint(0, s.T, (len(x0),), generator=g), eps


def _step_inputs(g, k, eta=None):
    ab, ab_prev = _alpha_bars(g, k)
    x0_pred, xt, eps, noise = _images(g, 4)
    args = (x0_pred.clamp(-1, 1), xt, eps, ab, ab_prev, noise)
    return args if eta is None else (*args, [0.0, 1.0, 0.5, 0.0, 0.3][k % 5])


def _small_unet(seed: int) -> unet.UNet:
    torch.manual_seed(seed)
    model = unet.UNet(unet.UNetConfig(image_size=8, base_channels=8, channel_mults=(1, 2), attention_levels=(1,),
                                      groups=4))
    nn.init.normal_(model.conv_out.weight, std=0.2)  # a fresh UNet's output layer is 0: eps = 0 whatever x_t
    nn.init.normal_(model.conv_out.bias, std=0.2)
    return model


def _loss_inputs(g, k):
    s, x0, t, eps = _q_sample_inputs(g, k)
    return _small_unet(k), s, x0, t, eps


def _ema_inputs(g, k):
    ema, model = (nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)) for _ in range(2))
    with torch.no_grad():
        for p in [*ema.parameters(), *model.parameters(), *model[1].buffers()]:
            p.copy_(torch.randn(p.shape, generator=g) if p.is_floating_point() else p + 3)
    return ema, model, [0.9, 0.999, 0.5, 0.0, 0.99][k % 5]


def _guide_inputs(g, k):
    eps_c, eps_u = _images(g, 2)
    return eps_c, eps_u, [0.0, 1.0, 3.0, 0.5, 7.5][k % 5]


def _paste_inputs(g, k):
    x, known = _images(g, 2)
    return x, known, (torch.rand(4, 1, 8, 8, generator=g) < 0.5).float()


def _embedding_inputs(g, k):
    return torch.randint(0, 1000, (6,), generator=g), [32, 8, 64, 16, 128][k % 5]


def _ema_reference(ema, model, decay):
    training.ema_update(ema, model, decay)
    return ema


EXERCISES = {
    "q_sample": Exercise("q_sample(schedule, x0, t, eps)", diffusion.q_sample, _q_sample_inputs,
                         "ddpm_lite.diffusion.q_sample (Eq. 4)"),
    "x0_from_eps": Exercise("x0_from_eps(alpha_bar, xt, eps)", diffusion.x0_from_eps,
                            lambda g, k: (_alpha_bars(g, k)[0], *_images(g, 2)), "ddpm_lite.diffusion.x0_from_eps"),
    # cos and sin of angles up to 1000 radians: float32 holds them to about 6e-5, however the frequencies are written
    "timestep_embedding": Exercise("timestep_embedding(t, dim)", unet.timestep_embedding, _embedding_inputs,
                                   "ddpm_lite.unet.timestep_embedding", atol=3e-4),
    "loss": Exercise("loss(model, schedule, x0, t, eps)", diffusion.loss, _loss_inputs,
                     "ddpm_lite.diffusion.loss (Eq. 14)"),
    "ema_update": Exercise("ema_update(ema, model, decay)", _ema_reference, _ema_inputs,
                           "ddpm_lite.training.ema_update"),
    "ddpm_step": Exercise("ddpm_step(x0_pred, xt, eps, ab, ab_prev, noise)", samplers.ddpm_step, _step_inputs,
                          "ddpm_lite.samplers.ddpm_step (Eqs. 6-7)", last_step=True),
    "ddim_step": Exercise("ddim_step(x0_pred, xt, eps, ab, ab_prev, noise, eta)", samplers.ddim_step,
                          lambda g, k: _step_inputs(g, k, eta=True), "ddpm_lite.samplers.ddim_step (Eq. 12)",
                          last_step=True),
    "guide": Exercise("guide(eps_cond, eps_uncond, guidance)", samplers.guide, _guide_inputs,
                      "ddpm_lite.samplers.guide (Ho & Salimans 2022, Eq. 6)"),
    "paste": Exercise("paste(x, known, mask)", editing.paste, _paste_inputs, "ddpm_lite.editing.paste (RePaint Eq. 8)"),
    "student_target": Exercise("student_target(ab, ab_next, z, z_next)", distill.single_step_x0,
                               lambda g, k: (*_alpha_bars(g, k), *_images(g, 2)),
                               "ddpm_lite.distill.single_step_x0 (Salimans & Ho 2022, Alg. 2, line 9)",
                               last_step=True),
}
BLOCK_ARGS = (8, 16, 32, 4)  # ResBlock(c_in, c_out, emb_dim, groups): the block the check builds


def check(name: str, yours, trials: int = TRIALS) -> bool:
    """Compare the learner's `yours` with the library's answer to exercise `name`; print one line, return True when
    all trials agree. "ResBlock" takes a class, the others a function (see EXERCISES for the signatures)."""
    with torch.random.fork_rng(devices=[]):  # the check's seeds leave the notebook's random state as it was
        if name == "ResBlock":
            line, ok = _check_block(yours)
        elif name not in EXERCISES:
            line, ok = f"there is no exercise {name!r}; the exercises are {', '.join([*EXERCISES, 'ResBlock'])}", False
        else:
            line, ok = _check_function(name, EXERCISES[name], yours, trials)
    print(f"{name}: {line}")
    return ok


def _check_function(name: str, ex: Exercise, yours, trials: int) -> tuple[str, bool]:
    for k in range(trials):
        args = ex.inputs(torch.Generator().manual_seed(1000 + k), k)
        want, given = ex.reference(*copy.deepcopy(args)), copy.deepcopy(args)
        try:
            got = yours(*given)
        except NotImplementedError:
            return f"not done yet: write {ex.signature} above, then run this check again", False
        except Exception as e:  # a wrong answer is reported, not raised: Run All goes on
            return f"trial {k + 1}: your function raised {type(e).__name__}: {e}", False
        if isinstance(want, nn.Module):  # an update in place: compare the weights after it
            got = _flat(given[0] if got is None else got)
            if torch.equal(got, _flat(args[0])):
                return f"not done yet: {ex.signature} leaves the weights as they were", False
            want = _flat(want)
        if got is None:
            return f"not done yet: {ex.signature} returns None; write it above, then run this check again", False
        trial = f"trial {k + 1}" + (" (the last step, ab_prev = 1)" if ex.last_step and k == 0 else "")
        mismatch = _mismatch(got, want, trial, ex.atol)
        if mismatch:
            return f"{mismatch} (against {ex.where})", False
    return f"correct: matches {ex.where} on {trials} random inputs, to float rounding", True


def _flat(module: nn.Module) -> torch.Tensor:
    return torch.cat([v.detach().float().flatten() for v in module.state_dict().values()])


def _mismatch(got, want: torch.Tensor, trial: str, atol: float = ATOL) -> str | None:
    """None when got equals want to float rounding; else the first difference in words, after `trial`."""
    if not torch.is_tensor(got):
        return f"{trial}: returned a {type(got).__name__}, not a tensor"
    if got.shape != want.shape:
        return f"{trial}: shape {tuple(got.shape)} where the library gives {tuple(want.shape)}"
    got = got.detach().float()
    bad = ~torch.isclose(got, want.float(), rtol=RTOL, atol=atol)
    if not bad.any():
        return None
    where = tuple(int(i) for i in bad.nonzero()[0])
    return (f"{trial}: differs at index {where}: yours {got[where].item():.6g}, the library's "
            f"{want[where].item():.6g} ({int(bad.sum())} of {bad.numel()} values differ)")


def _check_block(cls) -> tuple[str, bool]:
    """Build the learner's block and the library's ResBlock, give the learner's the library's weights (by name, or
    in order where the shapes match), and compare their outputs on random x and embeddings."""
    torch.manual_seed(0)
    ref = unet.ResBlock(*BLOCK_ARGS, dropout=0.0).eval()
    try:
        mine = cls(*BLOCK_ARGS)
    except NotImplementedError:
        return "not done yet: write the class above, then run this check again", False
    except Exception as e:
        return f"ResBlock(c_in=8, c_out=16, emb_dim=32, groups=4) raised {type(e).__name__}: {e}", False
    if mine is None or not isinstance(mine, nn.Module) or not list(mine.parameters()):
        return "not done yet: the block has no layers; write __init__ and forward above", False
    problem = _copy_weights(ref, mine.eval())
    if problem:
        return problem, False
    g = torch.Generator().manual_seed(1)
    x, emb = torch.randn(4, 8, 8, 8, generator=g), torch.randn(4, 32, generator=g)
    try:
        got = mine(x, emb)
    except NotImplementedError:
        return "not done yet: write forward(x, emb) above, then run this check again", False
    except Exception as e:
        return f"forward(x, emb) raised {type(e).__name__}: {e}", False
    if got is None:
        return "not done yet: forward(x, emb) returns None", False
    mismatch = _mismatch(got, ref(x, emb).detach(), "the output")
    if mismatch:
        return f"{mismatch} (against ddpm_lite.unet.ResBlock with the same weights)", False
    return "correct: with the library's weights your block gives ddpm_lite.unet.ResBlock's output", True


def _copy_weights(ref: nn.Module, mine: nn.Module) -> str | None:
    """Load ref's weights into mine; None on success, else what differs (names and shapes)."""
    if set(mine.state_dict()) == set(ref.state_dict()):
        try:
            mine.load_state_dict(ref.state_dict())
            return None
        except RuntimeError as e:
            return f"same names as ddpm_lite.unet.ResBlock but other shapes: {str(e).splitlines()[-1].strip()}"
    theirs, ours = list(ref.parameters()), list(mine.parameters())
    if [p.shape for p in theirs] == [p.shape for p in ours]:
        with torch.no_grad():
            for p, q in zip(ours, theirs):
                p.copy_(q)
        return None
    expected = ", ".join(f"{n} {tuple(p.shape)}" for n, p in ref.named_parameters())
    return (f"its layers do not match the library's block: expected parameters (in this order) {expected}; "
            f"yours have {', '.join(f'{n} {tuple(p.shape)}' for n, p in mine.named_parameters())}")


def compare_losses(yours, library) -> bool:
    """Two loss curves of the same length, from the same seed and settings: print whether they agree step for step
    to float rounding, or the first step where they part (and by how much); return True when they agree."""
    yours, library = (torch.as_tensor(list(c), dtype=torch.float64) for c in (yours, library))
    if len(yours) == 0:
        print("training loop: not done yet: your loop recorded no losses")
        return False
    if len(yours) != len(library):
        print(f"training loop: {len(yours)} losses where the library's run has {len(library)}")
        return False
    bad = ~torch.isclose(yours, library, rtol=1e-4, atol=1e-6)
    if bad.any():
        i = int(bad.nonzero()[0])
        print(f"training loop: the curves part at step {i}: yours {yours[i]:.6g}, the library's {library[i]:.6g}")
        return False
    print(f"training loop: the two loss curves agree at all {len(yours)} steps, to float rounding")
    return True
