"""SDEdit and inpainting (editing.py) against oracles: the exact noise predictor for one-point data (conftest's
SinglePointPredictor) makes every reverse run land on the point, so an inpainting must return the known pixels
unchanged and put the point in the others; SDEdit at t0 = 0 is the identity; a seed repeats a result."""
from __future__ import annotations

import pytest
import torch

from conftest import SinglePointPredictor, tiny_unet
from ddpm_lite import editing
from ddpm_lite.diffusion import q_sample
from ddpm_lite.samplers import SamplerSettings, guide, reverse_process, sample, timestep_pairs
from ddpm_lite.schedule import Schedule

SIZE = 8


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def schedule():
    return Schedule.cosine(40)


@pytest.fixture(scope="module")
def centres():
    """Points for labels 0, 1, 2 and the "no label" row, in [-0.9, 0.9]."""
    return torch.rand(4, 1, SIZE, SIZE, generator=seeded(7)) * 1.8 - 0.9


@pytest.fixture(scope="module")
def point(schedule, centres):
    return SinglePointPredictor(schedule, centres)


@pytest.fixture(scope="module")
def inputs():
    """Three inputs far from the points: +-1 pixels."""
    return torch.where(torch.rand(3, 1, SIZE, SIZE, generator=seeded(3)) < 0.3, 1.0, -1.0)


SAMPLERS = [dict(sampler="ddim", steps=10, eta=0.0), dict(sampler="ddim", steps=8, eta=1.0),
            dict(sampler="ddpm"), dict(sampler="dpm++", steps=6)]


@pytest.mark.parametrize("kw", SAMPLERS, ids=lambda kw: f"{kw['sampler']}-{kw.get('eta', '')}")
def test_sdedit_at_t0_zero_returns_its_input(point, schedule, inputs, kw):
    out = editing.sdedit(point, schedule, inputs, 0, generator=seeded(0), **kw)
    assert torch.equal(out, inputs) and out is not inputs


@pytest.mark.parametrize("kw", SAMPLERS, ids=lambda kw: f"{kw['sampler']}-{kw.get('eta', '')}")
@pytest.mark.parametrize("t0", [1, 13, 40])
def test_sdedit_lands_on_the_point(point, schedule, centres, inputs, kw, t0):
    out = editing.sdedit(point, schedule, inputs, t0, generator=seeded(1), **kw)
    torch.testing.assert_close(out, centres[3].expand_as(out), atol=1e-4, rtol=0)  # labels "none": row K


def test_sdedit_with_a_label_lands_on_that_labels_point(point, schedule, centres, inputs):
    out = editing.sdedit(point, schedule, inputs, 20, labels=1, generator=seeded(1), steps=5)
    torch.testing.assert_close(out, centres[1].expand_as(out), atol=1e-4, rtol=0)


def test_sdedit_starts_from_noise_to_with_the_same_generator(schedule, inputs):
    model = tiny_unet(image_size=SIZE, num_classes=None)
    s = SamplerSettings(sampler="ddim", steps=10, eta=0.5)
    out = editing.sdedit(model, schedule, inputs, 25, generator=seeded(4), sampler="ddim", steps=10, eta=0.5)
    g = seeded(4)
    xt = editing.noise_to(schedule, inputs, 25, g)
    assert torch.equal(xt, q_sample(schedule, inputs, torch.full((3,), 24), torch.randn(inputs.shape,
                                                                                       generator=seeded(4))))
    expected = reverse_process(model, schedule, xt, editing.edit_pairs(schedule, s, 25), s, generator=g)
    assert torch.equal(out, expected)


def test_edit_pairs_keep_the_stride_of_a_full_run():
    schedule, s = Schedule.cosine(1000), SamplerSettings(sampler="ddim", steps=20)
    pairs = editing.edit_pairs(schedule, s, 500)
    assert len(pairs) == 10 and pairs[0][0] == 499 and pairs[-1][1] == -1
    assert all(t > t_prev for t, t_prev in pairs)
    assert editing.edit_pairs(schedule, s, 1) == [(0, -1)]
    assert editing.edit_pairs(schedule, s, 1000) == timestep_pairs(1000, 20)
    assert len(editing.edit_pairs(schedule, SamplerSettings(sampler="ddpm"), 37)) == 37  # ddpm: every step


def test_timestep_pairs_start_is_backward_compatible():
    assert timestep_pairs(50, 7, 2.0, start=49) == timestep_pairs(50, 7, 2.0)
    assert timestep_pairs(50, 3, start=10) == [(10, 5), (5, 0), (0, -1)]
    with pytest.raises(ValueError, match="start must be a timestep"):
        timestep_pairs(50, 3, start=50)
    with pytest.raises(ValueError, match="steps must be between 1 and start"):
        timestep_pairs(50, 12, start=10)


@pytest.mark.parametrize("kw", SAMPLERS, ids=lambda kw: f"{kw['sampler']}-{kw.get('eta', '')}")
@pytest.mark.parametrize("hide,resample", [("left", 1), ("top", 3), ("random", 2)])
def test_inpaint_keeps_the_known_pixels_and_puts_the_point_in_the_rest(point, schedule, centres, inputs, kw, hide,
                                                                       resample):
    mask = editing.make_mask(hide, SIZE, generator=seeded(2))
    out = editing.inpaint(point, schedule, inputs, mask, jump=2, resample=resample, generator=seeded(5), **kw)
    known = mask.expand_as(out) == 1
    assert torch.equal(out[known], inputs[known])  # exactly the input
    torch.testing.assert_close(out[~known], centres[3].expand_as(out)[~known], atol=1e-4, rtol=0)


def test_the_same_seed_gives_the_same_edit(schedule, inputs):
    model = tiny_unet(seed=3, image_size=SIZE)
    kw = dict(sampler="ddim", steps=6, eta=1.0, labels=2, guidance=1.5)
    mask = editing.make_mask("right", SIZE)
    for edit in (lambda g: editing.sdedit(model, schedule, inputs, 30, generator=g, **kw),
                 lambda g: editing.inpaint(model, schedule, inputs, mask, jump=2, resample=2, generator=g, **kw)):
        a, b, c = edit(seeded(9)), edit(seeded(9)), edit(seeded(10))
        assert torch.equal(a, b) and not torch.equal(a, c)


def test_blocks_without_resampling_change_nothing(schedule, inputs):
    model = tiny_unet(seed=4, image_size=SIZE, num_classes=None)
    mask = editing.make_mask("centre", SIZE)
    runs = [editing.inpaint(model, schedule, inputs, mask, jump=j, generator=seeded(6), sampler="ddim", steps=8,
                            eta=0.5) for j in (1, 3, 8)]
    assert torch.equal(runs[0], runs[1]) and torch.equal(runs[0], runs[2])


def test_jump_up_from_clean_is_the_forward_process(schedule, inputs):
    up = editing.jump_up(schedule, inputs, -1, 17, seeded(8))
    expected = q_sample(schedule, inputs, torch.full((3,), 17), torch.randn(inputs.shape, generator=seeded(8)))
    torch.testing.assert_close(up, expected, atol=1e-6, rtol=0)


def test_jump_up_has_the_mean_and_variance_of_q(schedule):
    x = torch.full((20000, 1, 1, 1), 0.6)
    up = editing.jump_up(schedule, x, 9, 29, seeded(0))
    ratio = schedule.alpha_bars[29].double() / schedule.alpha_bars[9].double()  # Eq. 2 over steps 10..29
    assert abs(up.mean().item() - ratio.sqrt().item() * 0.6) < 0.02
    assert abs(up.var().item() - (1 - ratio).item()) < 0.03


def test_masks():
    left = editing.make_mask("left", 28)
    assert left.shape == (1, 1, 28, 28) and left[..., :14].sum() == 0 and left[..., 14:].min() == 1
    assert editing.make_mask("top", 28)[..., :14, :].sum() == 0
    assert editing.make_mask("centre", 28).sum() == 28 * 28 - 14 * 14
    keep = editing.make_mask("random", 28, keep=0.3, generator=seeded(0)).mean().item()
    assert 0.25 < keep < 0.35
    with pytest.raises(ValueError, match="unknown mask"):
        editing.make_mask("middle")


def test_bad_inputs_are_refused(point, schedule, inputs):
    with pytest.raises(ValueError, match="t0 must be between 0"):
        editing.sdedit(point, schedule, inputs, 41)
    with pytest.raises(ValueError, match="mask must hold 0"):
        editing.inpaint(point, schedule, inputs, torch.full((1, 1, SIZE, SIZE), 0.5))
    with pytest.raises(ValueError, match="does not broadcast"):
        editing.inpaint(point, schedule, inputs, torch.ones(2, 1, SIZE, SIZE))
    with pytest.raises(ValueError, match=r"must be in \[-1, 1\]"):
        editing.sdedit(point, schedule, inputs * 3, 5)
    with pytest.raises(ValueError, match="resample must be"):
        editing.inpaint(point, schedule, inputs, torch.ones(1, 1, SIZE, SIZE), resample=0)


@pytest.mark.parametrize("steps", [1, 5, 40])
def test_inversion_of_one_point_data_follows_its_ddim_line(point, schedule, centres, inputs, steps):
    # For one-point data every DDIM step keeps the noise direction e = eps(x at index 0): x_t = sqrt(ab_t) c +
    # sqrt(1 - ab_t) e. So inverting x lands exactly on that line at the top, and decoding it lands on c.
    c, ab = centres[3].double(), schedule.alpha_bars.double()
    e = (inputs.double() - ab[0].sqrt() * c) / (1 - ab[0]).sqrt()
    x_T = editing.invert(point, schedule, inputs, steps=steps, clip_x0=False)
    torch.testing.assert_close(x_T.double(), ab[-1].sqrt() * c + (1 - ab[-1]).sqrt() * e, rtol=1e-4, atol=1e-4)
    back = sample(point, schedule, x_T=x_T, sampler="ddim", eta=0.0, steps=steps, labels="none")
    # float32 at the top step divides by sqrt(alpha_bar_T), about 1e-3 here: close to c, not to 1e-4
    torch.testing.assert_close(back, c.float().expand_as(back), atol=1e-2, rtol=0)


def test_inversion_takes_the_grid_of_its_steps_upwards(schedule, inputs, gen):
    # The walk up visits the timesteps of a DDIM run of the same steps in reverse: record where the network is asked.
    net = tiny_unet(SIZE)
    seen = []
    net.register_forward_pre_hook(lambda m, args: seen.append(int(args[1][0])))
    editing.invert(net, schedule, inputs, steps=4, clip_x0=False)
    down = timestep_pairs(schedule.T, 4)
    assert seen == [max(t_prev, 0) for t, t_prev in reversed(down) if t > max(t_prev, 0)]


def test_paste_keeps_the_known_pixels_and_guide_is_eq_6():
    x, known = torch.zeros(2, 1, 4, 4), torch.ones(2, 1, 4, 4)
    mask = (torch.arange(16).view(1, 1, 4, 4) % 2).float()
    assert torch.equal(editing.paste(x, known, mask), mask.expand(2, 1, 4, 4))
    eps_c, eps_u = torch.full((3,), 2.0), torch.full((3,), 0.5)
    assert torch.equal(guide(eps_c, eps_u, 0.0), eps_c)
    assert torch.allclose(guide(eps_c, eps_u, 3.0), torch.full((3,), 4 * 2.0 - 3 * 0.5))
