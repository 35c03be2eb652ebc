"""Samplers driven by the exact noise predictor for one-point data, whose answers are known in closed form.

For data that is a single point c, eps*(x_t, t) = (x_t - sqrt(alpha_bar_t) c) / sqrt(1 - alpha_bar_t)
(conftest.SinglePointPredictor). Driven by it, every sampler must land on c; DDPM and stochastic DDIM
must also pass through the forward marginals q(x_t | x0 = c) = N(sqrt(alpha_bar_t) c, 1 - alpha_bar_t),
and deterministic DDIM keeps the normalised noise (x_t - sqrt(alpha_bar_t) c) / sqrt(1 - alpha_bar_t) fixed.
"""
import math
from types import SimpleNamespace

import pytest
import torch

from conftest import SinglePointPredictor
from ddpm_lite.diffusion import x0_from_eps
from ddpm_lite.samplers import SamplerSettings, guided_eps, resolve_labels, sample, sample_trajectory, timestep_pairs
from ddpm_lite.schedule import Schedule

C_POINT = torch.linspace(-0.9, 0.9, 16).reshape(1, 1, 4, 4)  # the one data point, 4x4 grey
SCHEDULE = Schedule.cosine(20)


def seeded(seed=0):
    return torch.Generator().manual_seed(seed)


def centres(*points):
    return torch.cat([p.reshape(1, *C_POINT.shape[1:]) for p in points])


def landing_tol(steps: int) -> float:
    """Float32 rounding of x_t (|x_t| < 5) divided by sqrt(alpha_bar) of the last network call, in Eq. 4."""
    t_last = timestep_pairs(SCHEDULE.T, steps)[-1][0]
    return 5 * 2 ** -23 * 4 / SCHEDULE.alpha_bars[t_last].sqrt().item()


@pytest.mark.parametrize("variance", ["beta_tilde", "beta"])
@pytest.mark.parametrize("clip_x0", [True, False])
def test_ddpm_all_steps_lands_on_the_point(variance, clip_x0):
    model = SinglePointPredictor(SCHEDULE, centres(C_POINT))
    x = sample(model, SCHEDULE, 16, sampler="ddpm", variance=variance, clip_x0=clip_x0, generator=seeded())
    assert len(model.batch_sizes) == SCHEDULE.T  # Alg. 2 runs every step
    torch.testing.assert_close(x, C_POINT.expand_as(x), rtol=0, atol=landing_tol(SCHEDULE.T))


@pytest.mark.parametrize("steps", [1, 3, 10, 20])
@pytest.mark.parametrize("eta", [0.0, 1.0])
@pytest.mark.parametrize("clip_x0", [True, False])
@pytest.mark.parametrize("spacing", [1.0, 2.5])
def test_ddim_lands_on_the_point(steps, eta, clip_x0, spacing):
    model = SinglePointPredictor(SCHEDULE, centres(C_POINT))
    x = sample(model, SCHEDULE, 16, steps=steps, eta=eta, clip_x0=clip_x0, generator=seeded(), spacing=spacing)
    assert len(model.batch_sizes) == steps
    torch.testing.assert_close(x, C_POINT.expand_as(x), rtol=0, atol=landing_tol(steps))


@pytest.mark.parametrize("steps", [1, 2, 3, 10, 20])
@pytest.mark.parametrize("eta", [0.0, 1.0])
@pytest.mark.parametrize("clip_x0", [True, False])
def test_dpmpp_lands_on_the_point(steps, eta, clip_x0):
    model = SinglePointPredictor(SCHEDULE, centres(C_POINT))
    x = sample(model, SCHEDULE, 16, sampler="dpm++", steps=steps, eta=eta, clip_x0=clip_x0, generator=seeded())
    assert len(model.batch_sizes) == steps
    torch.testing.assert_close(x, C_POINT.expand_as(x), rtol=0, atol=landing_tol(steps))


@pytest.mark.parametrize("sampler,eta", [("ddim", 0.0), ("ddim", 1.0), ("ddpm", 0.0), ("dpm++", 0.0), ("dpm++", 1.0)])
def test_guided_sampling_lands_on_the_point(sampler, eta):
    """Conditional and "no label" answers both for c: any guidance weight still gives c."""
    model = SinglePointPredictor(SCHEDULE, centres(*[C_POINT] * 11))  # 10 classes + no label, all at c
    labels = torch.arange(12) % 10
    x = sample(model, SCHEDULE, 12, sampler=sampler, steps=5, eta=eta, labels=labels, guidance=3.0,
               generator=seeded())
    assert model.batch_sizes == [24] * 5  # conditional and unconditional passes as one batch
    torch.testing.assert_close(x, C_POINT.expand_as(x), rtol=0, atol=landing_tol(5))


def test_guided_eps_is_one_plus_w_cond_minus_w_uncond():
    c_label, c_null = C_POINT, -0.5 * C_POINT.flip(-1)
    model = SinglePointPredictor(SCHEDULE, centres(c_label, c_null))  # label 0 -> c_label, "no label" -> c_null
    x = torch.randn(3, 1, 4, 4, generator=seeded(5))
    t, labels, w = torch.tensor([2, 10, 19]), torch.zeros(3, dtype=torch.long), 2.5
    got = guided_eps(model, x, t, labels, w)
    assert model.batch_sizes == [6]
    eps_c, eps_u = model(x, t, labels), model(x, t, torch.ones(3, dtype=torch.long))
    assert not torch.allclose(eps_c, eps_u)
    torch.testing.assert_close(got, (1 + w) * eps_c - w * eps_u)  # Ho & Salimans Eq. 6
    assert torch.equal(guided_eps(model, x, t, labels, 0.0), eps_c)  # w = 0: plain conditional, one pass
    assert torch.equal(guided_eps(model, x, t, None, w), model(x, t, None))  # no labels: unconditional


def test_guided_ddim_lands_on_the_extrapolated_point():
    """Guided eps is the exact predictor for (1 + w) c_label - w c_null, so DDIM must land there."""
    c_label, c_null, w = C_POINT * 0.5, C_POINT.flip(-1) * 0.25, 0.8
    model = SinglePointPredictor(SCHEDULE, centres(c_label, c_null))
    x = sample(model, SCHEDULE, 4, steps=6, labels=torch.zeros(4, dtype=torch.long), guidance=w, clip_x0=False,
               generator=seeded())
    target = (1 + w) * c_label - w * c_null
    torch.testing.assert_close(x, target.expand_as(x), rtol=0, atol=landing_tol(6))


def standardised(traj, c=C_POINT):
    """(x_t - sqrt(alpha_bar_t) c) / sqrt(1 - alpha_bar_t) for each recorded step: (S, B, C, H, W)."""
    ab = SCHEDULE.alpha_bars[traj.timesteps].double().reshape(-1, 1, 1, 1, 1)
    return (traj.xt.double() - ab.sqrt() * c.double()) / (1 - ab).sqrt()


@pytest.mark.parametrize("sampler,steps,eta,spacing", [("ddpm", None, 0.0, 1.0), ("ddpm", 7, 0.0, 1.0),
                                                       ("ddim", 7, 1.0, 1.0), ("ddim", 7, 1.0, 2.5),
                                                       ("dpm++", 7, 1.0, 1.0), ("dpm++", 7, 0.5, 1.0)])
def test_stochastic_samplers_pass_through_the_forward_marginals(sampler, steps, eta, spacing):
    n = 4096
    model = SinglePointPredictor(SCHEDULE, centres(C_POINT))
    traj = sample_trajectory(model, SCHEDULE, n, sampler=sampler, steps=steps, eta=eta, clip_x0=False,
                     generator=seeded(), spacing=spacing)
    z = standardised(traj).reshape(len(traj.timesteps), -1)  # (S, n * 16): N(0, 1) at every step
    m = z.shape[1]
    # x_T ~ N(0, 1) differs from q(x_T | c) by sqrt(alpha_bar_T) c, about 2e-3: inside the allowance
    assert (z.mean(1).abs() < 5 / math.sqrt(m) + 0.01).all(), z.mean(1)
    assert ((z.var(1) - 1).abs() < 5 * math.sqrt(2 / m) + 0.01).all(), z.var(1)


def test_ddpm_with_wrong_variance_leaves_the_marginals():
    """The marginal check above can fail: the larger "beta" variance overshoots q(x_t | c)."""
    model = SinglePointPredictor(SCHEDULE, centres(C_POINT))
    traj = sample_trajectory(model, SCHEDULE, 4096, sampler="ddpm", variance="beta", clip_x0=False, generator=seeded())
    assert standardised(traj).reshape(len(traj.timesteps), -1).var(1).max() > 1.1


def test_deterministic_ddim_keeps_the_normalised_noise():
    model = SinglePointPredictor(SCHEDULE, centres(C_POINT))
    traj = sample_trajectory(model, SCHEDULE, 8, steps=6, clip_x0=False, generator=seeded())
    z = standardised(traj)
    torch.testing.assert_close(z, z[:1].expand_as(z), rtol=0, atol=1e-4)


def draws_used(shape, **kw):
    """How many standard-normal tensors of `shape` sample() took from its generator."""
    g = seeded(7)
    x = sample(generator=g, **kw)
    after = torch.randn(1, generator=g)
    for k in range(0, 50):
        ref = seeded(7)
        for _ in range(k):
            torch.randn(shape, generator=ref)
        if torch.equal(torch.randn(1, generator=ref), after):
            return k, x
    raise AssertionError("generator advanced by an unexpected amount")


def test_ddim_eta0_draws_only_x_T_and_ddpm_draws_one_per_step_but_the_last(tiny_model):
    s = Schedule.cosine(20)
    shape = (2, 1, 28, 28)
    kw = dict(model=tiny_model, schedule=s, n=2, steps=5)
    assert draws_used(shape, **kw)[0] == 1  # deterministic: the output depends on x_T alone
    assert draws_used(shape, eta=0.5, **kw)[0] == 5  # x_T plus one per step, none on the last
    assert draws_used(shape, sampler="ddpm", **kw)[0] == 5
    assert draws_used(shape, sampler="dpm++", eta=1.0, **kw)[0] == 5
    assert draws_used(shape, sampler="dpm++", **kw)[0] == 1


@pytest.mark.parametrize("sampler,eta", [("ddim", 0.0), ("ddim", 1.0), ("ddpm", 0.0), ("dpm++", 0.0), ("dpm++", 1.0)])
def test_same_seed_same_samples_other_seed_other_samples(tiny_model, sampler, eta):
    s = Schedule.cosine(20)
    labels = torch.tensor([3, 7])
    run = lambda seed: sample(tiny_model, s, 2, sampler=sampler, steps=4, eta=eta, labels=labels,  # noqa: E731
                              guidance=1.0, generator=seeded(seed))
    a = run(11)
    assert torch.equal(a, run(11))
    assert not torch.allclose(a, run(12))
    assert a.shape == (2, 1, 28, 28) and a.abs().max() <= 1


@pytest.mark.parametrize("steps", [20, 7, 3])
def test_ddim_eta1_is_ddpm_on_the_same_steps(tiny_model, steps):
    """Song et al. 2021, Sec. 4.1: eta = 1 makes DDIM's sigma the posterior's beta_tilde, so DDIM with eta = 1 and
    DDPM on the same (strided) steps are one sampler: same draws, same samples (the release bar's setting)."""
    s = Schedule.cosine(20)
    labels = torch.tensor([1, 4])
    run = lambda **kw: sample(tiny_model, s, 2, steps=steps, labels=labels, generator=seeded(5), **kw)  # noqa: E731
    torch.testing.assert_close(run(sampler="ddim", eta=1.0), run(sampler="ddpm"), rtol=0, atol=2e-4)  # float32 rounding
    assert not torch.allclose(run(sampler="ddim", eta=0.5), run(sampler="ddpm"), atol=1e-3)


def test_dpmpp_sde_is_ddim_eta1_until_its_second_order_term_acts(tiny_model):
    """SDE-DPM-Solver++(2M) at eta = 1: its first-order step is DDPM's posterior step (= DDIM eta 1), so with the
    same draws the two agree while the midpoint term is zero: on 2 steps (no previous prediction to extrapolate
    from) and whenever x0_pred never changes (one-point data); on 5 steps of a real network they differ."""
    s = Schedule.cosine(20)
    run = lambda model, steps, **kw: sample(model, s, 2, steps=steps, eta=1.0, clip_x0=False,  # noqa: E731
                                            generator=seeded(4), **kw)
    torch.testing.assert_close(run(tiny_model, 2, sampler="dpm++"), run(tiny_model, 2, sampler="ddim"),
                               rtol=1e-4, atol=1e-5)  # float32 rounding
    point = SinglePointPredictor(s, centres(C_POINT))
    torch.testing.assert_close(run(point, 7, sampler="dpm++"), run(point, 7, sampler="ddim"), rtol=1e-4, atol=1e-5)
    assert not torch.allclose(run(tiny_model, 5, sampler="dpm++"), run(tiny_model, 5, sampler="ddim"), atol=1e-3)


@pytest.mark.parametrize("precision, dtype", [("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_reduced_precision_runs_the_network_under_autocast_and_keeps_the_sampler_float32(tiny_model, precision,
                                                                                          dtype):
    seen = []

    class Spy(torch.nn.Module):  # records the dtype of every network output the sampler receives
        def __init__(self):
            super().__init__()
            self.net, self.config = tiny_model, tiny_model.config

        def forward(self, x, t, y):
            out = self.net(x, t, y)
            seen.append(out.dtype)
            return out
    s, labels = Schedule.cosine(20), torch.tensor([2, 9, 5])
    run = lambda p: sample(Spy(), s, 3, steps=4, labels=labels, guidance=1.0, precision=p,  # noqa: E731
                           generator=seeded(2), clip_x0=False)
    full = run("fp32")
    assert seen == [torch.float32] * 4
    seen.clear()
    low = run(precision)
    assert seen == [dtype] * 4 and low.dtype == torch.float32  # the network in 16 bits, the sampler in 32
    assert (low - full).abs().mean() < 0.05 * full.abs().mean()  # rounding, not a different sample
    with pytest.raises(ValueError, match="unknown precision 'fp8'; choose one of fp32, bf16, fp16"):
        run("fp8")


@pytest.mark.parametrize("sampler", ["ddim", "ddpm", "dpm++"])
def test_one_step_returns_the_clipped_x0_prediction_from_x_T(tiny_model, sampler):
    s = Schedule.cosine(20)
    x = sample(tiny_model, s, 3, sampler=sampler, steps=1, eta=1.0, generator=seeded(3))
    x_T = torch.randn(3, 1, 28, 28, generator=seeded(3))
    with torch.no_grad():
        eps = tiny_model(x_T, torch.full((3,), s.T - 1), None)
    x0 = x0_from_eps(s.alpha_bars[-1], x_T, eps).clamp(-1, 1)
    torch.testing.assert_close(x, x0, rtol=0, atol=1e-6)


@pytest.mark.parametrize("sampler,eta", [("ddim", 1.0), ("ddpm", 0.0), ("dpm++", 0.0), ("dpm++", 1.0)])
def test_no_noise_on_the_last_step(tiny_model, sampler, eta):
    s = Schedule.cosine(20)
    traj = sample_trajectory(tiny_model, s, 2, sampler=sampler, steps=6, eta=eta, generator=seeded())
    assert traj.timesteps[-1] == 0
    assert torch.equal(traj.x, traj.x0_pred[-1])
    assert torch.equal(traj.x, sample(tiny_model, s, 2, sampler=sampler, steps=6, eta=eta, generator=seeded()))


def test_trajectory_records_every_step_by_default():
    model = SinglePointPredictor(SCHEDULE, centres(C_POINT))
    traj = sample_trajectory(model, SCHEDULE, 3, steps=5, generator=seeded())
    assert traj.timesteps == [t for t, _ in timestep_pairs(SCHEDULE.T, 5)]
    assert traj.xt.shape == traj.x0_pred.shape == (5, 3, 1, 4, 4)
    assert torch.equal(traj.xt[0], torch.randn(3, 1, 4, 4, generator=seeded()))  # x_T itself
    assert not torch.equal(traj.xt[1], traj.xt[0])


def test_trajectory_record_set_records_only_those_steps():
    model = SinglePointPredictor(SCHEDULE, centres(C_POINT))
    visited = [t for t, _ in timestep_pairs(SCHEDULE.T, 5)]  # [19, 14, 10, 5, 0]
    traj = sample_trajectory(model, SCHEDULE, 2, steps=5, generator=seeded(), record={0, visited[1], 3})
    assert traj.timesteps == [visited[1], 0]  # 3 is not visited with 5 steps
    assert traj.xt.shape == traj.x0_pred.shape == (2, 2, 1, 4, 4)
    full = sample_trajectory(model, SCHEDULE, 2, steps=5, generator=seeded())
    assert torch.equal(traj.xt, full.xt[[1, 4]]) and torch.equal(traj.x0_pred, full.x0_pred[[1, 4]])


def test_trajectory_of_unvisited_steps_is_empty_with_the_right_shape():
    model = SinglePointPredictor(SCHEDULE, centres(C_POINT))
    for wanted in ({3}, set()):
        traj = sample_trajectory(model, SCHEDULE, 2, steps=5, generator=seeded(), record=wanted)
        assert traj.timesteps == [] and traj.xt.shape == traj.x0_pred.shape == (0, 2, 1, 4, 4)


@pytest.mark.parametrize("T,steps", [(1000, 1), (1000, 50), (1000, 999), (1000, 1000), (20, 7), (20, 20), (1, 1)])
def test_timestep_pairs_walk_down_from_T_minus_1_to_minus_1(T, steps):
    pairs = timestep_pairs(T, steps)
    ts = [t for t, _ in pairs]
    assert len(pairs) == steps and ts[0] == T - 1 and pairs[-1][1] == -1
    assert ts[-1] == (0 if steps > 1 else T - 1)
    assert all(a > b for a, b in zip(ts, ts[1:]))  # strictly decreasing: no step repeated
    assert [p for _, p in pairs] == ts[1:] + [-1]
    if steps == T:
        assert ts == list(range(T - 1, -1, -1))


@pytest.mark.parametrize("T", [20, 100, 1000])
@pytest.mark.parametrize("spacing", [1.5, 2.0, 2.5, 7.0])
def test_spaced_timesteps_are_distinct_start_at_T_and_end_at_0(T, spacing):
    for steps in range(2, T + 1):  # every count, so rounding collisions near t = T are all met
        ts = [t for t, _ in timestep_pairs(T, steps, spacing)]
        assert len(ts) == steps and ts[0] == T - 1 and ts[-1] == 0
        assert all(a > b for a, b in zip(ts, ts[1:])), (steps, ts)
    assert [t for t, _ in timestep_pairs(T, T, spacing)] == list(range(T - 1, -1, -1))


@pytest.mark.parametrize("spacing", [2.0, 2.5])
def test_spacing_above_one_crowds_the_steps_near_T(spacing):
    """t_i = (T-1)(1 - u_i^p) is concave in u for p > 1: the strides (T-1) - t grow as steps go down, and they
    follow the formula: after a fraction u of the steps, (T-1) u^p of the time has been walked."""
    ts = [t for t, _ in timestep_pairs(1000, 21, spacing)]
    strides = [a - b for a, b in zip(ts, ts[1:])]
    assert all(a <= b for a, b in zip(strides, strides[1:])) and strides[0] < 999 / 20 < strides[-1]
    assert ts[10] == round(999 * (1 - 0.5 ** spacing))  # halfway through the steps


def test_evenly_spaced_steps_keep_float32_linspace_rounding():
    """spacing = 1 gives exactly the steps every published figure used (float32 linspace, then round)."""
    for T, steps in [(50, 15), (100, 19), (1000, 20), (1000, 50), (1000, 7)]:
        assert [t for t, _ in timestep_pairs(T, steps)] == torch.linspace(T - 1, 0, steps).round().long().tolist()


@pytest.mark.parametrize("spacing", [0.5, 0.0, float("nan")])
def test_timestep_pairs_rejects_spacing_below_one(spacing):
    with pytest.raises(ValueError, match=r"spacing must be >= 1 \(1 = evenly spaced\)"):
        timestep_pairs(20, 5, spacing)


@pytest.mark.parametrize("steps", [0, -1, 21])
def test_timestep_pairs_rejects_steps_outside_1_to_T(steps):
    with pytest.raises(ValueError, match=rf"steps must be between 1 and T=20, got {steps}"):
        timestep_pairs(20, steps)


def test_sample_rejects_unknown_sampler_and_variance(tiny_model):
    with pytest.raises(ValueError, match="unknown sampler 'euler'; choose one of ddpm, ddim, dpm\\+\\+"):
        sample(tiny_model, SCHEDULE, 1, sampler="euler")
    with pytest.raises(ValueError, match="unknown variance 'large'; choose one of beta_tilde, beta"):
        sample(tiny_model, SCHEDULE, 1, sampler="ddpm", variance="large")


class GaussianPredictor(torch.nn.Module):
    """The exact noise predictor for data x0 ~ N(0, s^2 I): x_t ~ N(0, v_t I), v_t = alpha_bar_t s^2 + 1 - alpha_bar_t,
    and eps*(x_t, t) = E[eps | x_t] = sqrt(1 - alpha_bar_t) x_t / v_t."""

    def __init__(self, schedule, s):
        super().__init__()
        self.config = SimpleNamespace(num_classes=None, in_channels=1, image_size=4)
        self.alpha_bars, self.s = schedule.alpha_bars.double(), s
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def variance(self, t):
        ab = self.alpha_bars[t]
        return ab * self.s ** 2 + 1 - ab

    def forward(self, x, t, labels=None):
        v = self.variance(t)[:, None, None, None]
        return ((1 - self.alpha_bars[t][:, None, None, None]).sqrt() * x.double() / v).to(x.dtype)


def test_ode_samplers_converge_to_the_exact_flow_for_gaussian_data():
    """The probability-flow ODE maps x_T to x_0 = x_T sqrt(v_0 / v_T) for Gaussian data (each marginal is scaled,
    so the flow is a pure rescaling); the samplers end with E[x0 | x_0] = sqrt(alpha_bar_0) s^2 x_0 / v_0. DDIM is a
    first-order solver of that ODE (error halves when steps double), DPM-Solver++(2M) second order (quarters)."""
    schedule = Schedule.cosine(1000)
    model = GaussianPredictor(schedule, s=0.5)
    x_T = torch.randn(64, 1, 4, 4, generator=seeded())
    v_0, v_T = model.variance(torch.tensor(0)), model.variance(torch.tensor(999))
    exact = x_T.double() * (v_0 / v_T).sqrt() * schedule.alpha_bars[0].double().sqrt() * model.s ** 2 / v_0

    def error(sampler, steps):
        x = sample(model, schedule, 64, sampler=sampler, steps=steps, clip_x0=False, generator=seeded())
        return (x.double() - exact).abs().max().item()
    ddim = {n: error("ddim", n) for n in (20, 40, 80)}
    dpm = {n: error("dpm++", n) for n in (20, 40, 80)}
    assert 1.6 < ddim[20] / ddim[40] < 2.5 and 1.6 < ddim[40] / ddim[80] < 2.5  # first order
    assert dpm[20] / dpm[40] > 3.2 and dpm[40] / dpm[80] > 3.2  # second order
    assert dpm[80] < ddim[80] / 2


@pytest.mark.parametrize("sampler,eta", [("ddim", 0.7), ("ddpm", 0.0), ("dpm++", 1.0)])
def test_eps_scaling_is_sampling_with_the_network_output_divided_by_lambda(tiny_model, sampler, eta):
    class Divided(torch.nn.Module):  # the network's eps / lambda, as Ning et al. 2024 define epsilon scaling
        def __init__(self, lam):
            super().__init__()
            self.net, self.config, self.lam = tiny_model, tiny_model.config, lam

        def forward(self, x, t, y):
            return self.net(x, t, y) / self.lam
    s, labels = Schedule.cosine(20), torch.tensor([3, 7])
    run = lambda model, **kw: sample(model, s, 2, sampler=sampler, steps=5, eta=eta, labels=labels,  # noqa: E731
                                     generator=seeded(4), **kw)
    assert torch.equal(run(tiny_model, eps_scaling=1.0), run(tiny_model))  # 1 = off, bit for bit
    scaled = run(tiny_model, eps_scaling=0.9)
    assert torch.equal(scaled, run(Divided(0.9)))
    assert not torch.allclose(scaled, run(tiny_model), atol=1e-3)


def test_eps_scaling_one_step_is_eq_4_solved_for_x0_with_eps_over_lambda(tiny_model):
    s, lam = Schedule.cosine(20), 0.98
    x = sample(tiny_model, s, 3, steps=1, eps_scaling=lam, clip_x0=False, generator=seeded(3))
    x_T = torch.randn(3, 1, 28, 28, generator=seeded(3))
    with torch.no_grad():
        eps = tiny_model(x_T, torch.full((3,), s.T - 1), None)
    ab = s.alpha_bars[-1]
    x0 = (x_T - (1 - ab).sqrt() * eps / lam) / ab.sqrt()  # Eq. 4 with eps / lambda
    torch.testing.assert_close(x, x0, rtol=0, atol=landing_tol(1))  # float32 rounding of x_T over sqrt(alpha_bar)
    assert (x - x0_from_eps(ab, x_T, eps)).abs().mean() > 1000 * landing_tol(1)  # lambda = 1 is far off


@pytest.mark.parametrize("lam", [0.0, -1.0, float("nan"), float("inf")])
def test_sample_rejects_eps_scaling_that_is_not_a_positive_number(tiny_model, lam):
    with pytest.raises(ValueError, match=r"eps_scaling must be a positive number \(1 = off\), got"):
        sample(tiny_model, Schedule.cosine(20), 1, steps=2, eps_scaling=lam)


# --- the model's own settings, a given x_T, batches and labels --------------------------------------------------

def with_settings(model, **kw):
    model.sampling = SamplerSettings(**kw)  # what checkpoint.build attaches from a checkpoint's "sampling"
    return model


def test_sample_uses_the_models_settings_for_what_the_caller_leaves_out(tiny_model):
    s = Schedule.cosine(20)
    plain = sample(tiny_model, s, 4, steps=3, eta=1.0, eps_scaling=0.9, generator=seeded(2))
    with_settings(tiny_model, steps=3, eta=1.0, eps_scaling=0.9)
    assert torch.equal(sample(tiny_model, s, 4, generator=seeded(2)), plain)
    # a setting given replaces that one setting only
    assert torch.equal(sample(tiny_model, s, 4, eta=0.0, generator=seeded(2)),
                       sample(tiny_model, s, 4, steps=3, eta=0.0, eps_scaling=0.9, generator=seeded(2)))
    assert not torch.equal(sample(tiny_model, s, 4, eta=0.0, generator=seeded(2)), plain)


def test_another_sampler_than_the_models_starts_its_knobs_plain(tiny_model):
    s = Schedule.cosine(20)
    with_settings(tiny_model, steps=3, eta=0.7, eps_scaling=0.9, guidance=1.0, labels="random")
    settings = tiny_model.sampling.with_overrides(sampler="ddpm")
    assert (settings.steps, settings.eta, settings.eps_scaling) == (None, 0.0, 1.0)
    assert (settings.guidance, settings.labels) == (1.0, "random")  # not the sampler's: they carry over
    model = SinglePointPredictor(s, centres(C_POINT))
    model.sampling = SamplerSettings(steps=3, eta=0.7)
    sample(model, s, 2, sampler="ddpm", generator=seeded())
    assert len(model.batch_sizes) == s.T  # ddpm's own default: every step, not the 3 meant for ddim


def test_random_labels_come_from_their_own_stream_seeded_like_the_noise(tiny_model):
    """labels="random" (here the settings' choice) draws from a generator seeded with the sampling generator's
    seed, so the noise is the same as with those labels given, and the CLI's `--label random --seed k` agrees."""
    s = Schedule.cosine(20)
    labels = torch.randint(0, 10, (6,), generator=seeded(5))
    given = sample(tiny_model, s, 6, steps=2, labels=labels, generator=seeded(5))
    assert torch.equal(sample(tiny_model, s, 6, steps=2, labels="random", generator=seeded(5)), given)
    with_settings(tiny_model, labels="random")
    assert torch.equal(sample(tiny_model, s, 6, steps=2, generator=seeded(5)), given)
    no_label = sample(tiny_model, s, 6, steps=2, labels=torch.full((6,), 10), generator=seeded(5))
    assert torch.equal(sample(tiny_model, s, 6, steps=2, labels="none", generator=seeded(5)), no_label)


def test_resolve_labels_specs():
    assert torch.equal(resolve_labels("all", 12, 10), torch.arange(12) % 10)
    assert torch.equal(resolve_labels(7, 3, 10), torch.tensor([7, 7, 7]))
    assert torch.equal(resolve_labels([1, 2], 2, 10), torch.tensor([1, 2]))
    assert resolve_labels(None, 3, 10) is None and resolve_labels("none", 3, None) is None
    a = resolve_labels("random", 5000, 10, seed=3)
    assert torch.equal(a, resolve_labels("random", 5000, 10, seed=3))
    assert not torch.equal(a, resolve_labels("random", 5000, 10, seed=4))
    counts = torch.bincount(a, minlength=10)
    assert len(counts) == 10 and counts.min() > 400 and counts.max() < 600  # 500 expected, sd ~21
    for spec, message in ((11, "between 0 and 9"), ([1, 2, 3], r"one per sample, shape \(2,\)"),
                          ("seven", "labels must be label numbers or one of all, random, none")):
        with pytest.raises(ValueError, match=message):
            resolve_labels(spec, 2, 10)
    with pytest.raises(ValueError, match="the model is unconditional"):
        resolve_labels("random", 2, None)


def test_sampling_from_a_given_x_T_is_sampling_from_that_draw(tiny_model):
    s = Schedule.cosine(20)
    x_T = torch.randn(3, 1, 28, 28, generator=seeded(9))
    g = seeded(9)
    drawn = sample(tiny_model, s, 3, steps=4, eta=1.0, generator=g)  # draws x_T first, then each step's noise
    rest = seeded(9)
    torch.randn(3, 1, 28, 28, generator=rest)  # the same stream, past x_T
    assert torch.equal(sample(tiny_model, s, x_T=x_T, steps=4, eta=1.0, generator=rest), drawn)
    traj = sample_trajectory(tiny_model, s, x_T=x_T, steps=4)
    assert torch.equal(traj.xt[0], x_T) and torch.equal(traj.x, sample(tiny_model, s, x_T=x_T, steps=4))
    with pytest.raises(ValueError, match="n = 2 but x_T holds 3 samples"):
        sample(tiny_model, s, 2, x_T=x_T)


def test_batches_draw_what_separate_calls_on_one_generator_draw(tiny_model):
    s = Schedule.cosine(20)
    labels = torch.arange(7) % 10
    whole = sample(tiny_model, s, 7, steps=3, eta=1.0, labels=labels, batch_size=3, generator=seeded(1))
    g = seeded(1)
    parts = [sample(tiny_model, s, part.stop - part.start, steps=3, eta=1.0, labels=labels[part], generator=g)
             for part in (slice(0, 3), slice(3, 6), slice(6, 7))]
    assert torch.equal(whole, torch.cat(parts))
    assert not torch.equal(whole, sample(tiny_model, s, 7, steps=3, eta=1.0, labels=labels, generator=seeded(1)))


def test_sampler_settings_refuse_values_outside_their_meaning():
    for kw, message in (({"steps": 0}, "steps must be a positive integer"), ({"eta": -1}, "eta must be"),
                        ({"guidance": float("nan")}, "guidance must be"), ({"labels": "all"}, "unknown labels"),
                        ({"precision": "int8"}, "unknown precision"), ({"spacing": 0.5}, "spacing must be")):
        with pytest.raises(ValueError, match=message):
            SamplerSettings(**kw)
    with pytest.raises(TypeError, match="unknown sampling setting"):
        SamplerSettings().with_overrides(temperature=2)
    assert SamplerSettings.from_dict(SamplerSettings(eta=0.7, labels="random").to_dict()) == \
        SamplerSettings(eta=0.7, labels="random")
