"""Schedule tables against their defining identities, recomputed independently in float64."""
import dataclasses
import math

import pytest
import torch

from ddpm_lite.schedule import Schedule, gather

TABLES = ("betas", "alphas", "alpha_bars", "alpha_bars_prev", "sqrt_alpha_bars", "sqrt_one_minus_alpha_bars",
          "posterior_variance", "posterior_log_variance", "posterior_mean_coef1", "posterior_mean_coef2")
SCHEDULES = [("linear", 1000), ("cosine", 1000), ("linear", 50), ("cosine", 20)]


def reference(kind: str, T: int) -> dict:
    """The paper's tables from scratch in float64 Python, code index t standing for the paper's t + 1."""
    if kind == "linear":  # Ho et al. Sec. 4, rescaled so other T keep the same total noise
        lo, hi = 1e-4 * 1000 / T, 0.02 * 1000 / T
        betas = [min(lo + (hi - lo) * i / (T - 1), 0.999) for i in range(T)]
    else:  # Nichol & Dhariwal Eq. 17
        f = [math.cos((i / T + 0.008) / 1.008 * math.pi / 2) ** 2 for i in range(T + 1)]
        betas = [min(1 - f[i + 1] / f[i], 0.999) for i in range(T)]
    alpha_bars, prod = [], 1.0
    for b in betas:
        prod *= 1 - b
        alpha_bars.append(prod)
    prev = [1.0] + alpha_bars[:-1]
    return {  # Eq. 7
        "betas": betas, "alpha_bars": alpha_bars, "alpha_bars_prev": prev,
        "posterior_variance": [b * (1 - p) / (1 - a) for b, a, p in zip(betas, alpha_bars, prev)],
        "posterior_mean_coef1": [math.sqrt(p) * b / (1 - a) for b, a, p in zip(betas, alpha_bars, prev)],
        "posterior_mean_coef2": [math.sqrt(1 - b) * (1 - p) / (1 - a) for b, a, p in zip(betas, alpha_bars, prev)],
    }


@pytest.mark.parametrize("kind,T", SCHEDULES)
def test_tables_match_the_paper_computed_independently(kind, T):
    s, ref = Schedule.build(kind, T), reference(kind, T)
    for name, values in ref.items():
        torch.testing.assert_close(getattr(s, name).double(), torch.tensor(values, dtype=torch.float64),
                                   rtol=2e-6, atol=1e-9, msg=name)


@pytest.mark.parametrize("kind,T", SCHEDULES)
def test_tables_satisfy_their_identities(kind, T):
    s = Schedule.build(kind, T)
    torch.testing.assert_close(s.alphas, 1 - s.betas)
    torch.testing.assert_close(s.alpha_bars, torch.cumprod(s.alphas.double(), 0).float())
    torch.testing.assert_close(s.alpha_bars_prev[1:], s.alpha_bars[:-1])
    assert s.alpha_bars_prev[0] == 1
    torch.testing.assert_close(s.sqrt_alpha_bars ** 2, s.alpha_bars)
    torch.testing.assert_close(s.sqrt_one_minus_alpha_bars ** 2, 1 - s.alpha_bars)
    torch.testing.assert_close(s.snr(), s.alpha_bars / (1 - s.alpha_bars))
    assert (s.betas > 0).all() and (s.betas < 1).all() and (s.alpha_bars.diff() < 0).all()


def test_linear_endpoints_are_the_papers():
    s = Schedule.linear(1000)
    assert s.betas[0].item() == pytest.approx(1e-4, rel=1e-6)
    assert s.betas[-1].item() == pytest.approx(0.02, rel=1e-6)
    torch.testing.assert_close(s.betas.diff(), torch.full((999,), (0.02 - 1e-4) / 999), rtol=1e-3, atol=0)


@pytest.mark.parametrize("T", [20, 10, 5])
def test_linear_for_small_T_stays_a_valid_schedule(T):
    s = Schedule.linear(T)  # the 1000/T rescaling would give betas >= 1 without the clamp
    assert (s.betas <= 0.999).all() and (s.alphas > 0).all() and (s.alpha_bars > 0).all()


def test_cosine_alpha_bar_formula():
    T, s0 = 1000, 0.008
    s = Schedule.cosine(T)
    f = lambda t: math.cos((t / T + s0) / (1 + s0) * math.pi / 2) ** 2  # noqa: E731
    expected = torch.tensor([f(t + 1) / f(0) for t in range(T - 1)], dtype=torch.float64)
    torch.testing.assert_close(s.alpha_bars[:-1].double(), expected, rtol=1e-5, atol=1e-9)
    assert s.betas[-1].item() == pytest.approx(0.999)  # the last step is clipped (f(T) = 0)


@pytest.mark.parametrize("kind,T", SCHEDULES + [("linear", 1), ("cosine", 1), ("cosine", 2)])
def test_posterior_variance_is_zero_at_t0_and_its_log_finite(kind, T):
    s = Schedule.build(kind, T)
    assert s.posterior_variance[0] == 0
    assert torch.isfinite(s.posterior_log_variance).all()
    if T > 1:  # log variance at t=0 borrows t=1's value (Ho et al.'s code) instead of log 0
        assert s.posterior_log_variance[0] == s.posterior_log_variance[1]
        torch.testing.assert_close(s.posterior_log_variance[1:].exp(), s.posterior_variance[1:])


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_every_table_is_float32_of_length_T(kind):
    s = Schedule.build(kind, 30)
    for name in TABLES:
        table = getattr(s, name)
        assert table.dtype == torch.float32 and table.shape == (30,), name


def test_schedule_is_frozen():
    s = Schedule.cosine(10)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.T = 5
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.betas = torch.zeros(10)


def test_bad_kind_and_T_give_clear_errors():
    with pytest.raises(ValueError, match=r"unknown schedule 'quadratic'; choose one of linear, cosine"):
        Schedule.build("quadratic", 100)
    for T in (0, -3):
        with pytest.raises(ValueError, match=rf"T must be a positive number of timesteps, got {T}"):
            Schedule.build("cosine", T)


@pytest.mark.parametrize("kind,T", [("linear", 1000), ("cosine", 37)])
def test_dict_round_trip_rebuilds_the_same_tables(kind, T):
    s = Schedule.build(kind, T)
    d = s.to_dict()
    assert d == {"kind": kind, "T": T}
    s2 = Schedule.from_dict(d)
    for name in TABLES:
        assert torch.equal(getattr(s, name), getattr(s2, name)), name


def test_gather_picks_per_item_and_broadcasts():
    table = torch.arange(10, dtype=torch.float32) * 0.5
    t = torch.tensor([3, 0, 9])
    x = torch.zeros(3, 2, 4, 5)
    g = gather(table, t, x)
    assert g.shape == (3, 1, 1, 1)
    assert g.flatten().tolist() == [1.5, 0.0, 4.5]
    assert (g + x).shape == x.shape and (g * torch.ones_like(x))[2].unique().tolist() == [4.5]
    g2 = gather(table, t, torch.zeros(3, 7, dtype=torch.float64))  # follows x's rank and dtype
    assert g2.shape == (3, 1) and g2.dtype == torch.float64
