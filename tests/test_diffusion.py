"""The forward process and the loss against closed forms, by Monte Carlo where the claim is about distributions.

Tolerances come from the sample count: a mean of N standard-normal-scaled draws has standard error
sqrt(var / N), a sample variance sqrt(2 / (N - 1)) var; we allow 5 standard errors.
"""
import math

import pytest
import torch

from ddpm_lite.diffusion import eps_from_x0, loss, min_snr_weight, q_posterior, q_sample, q_step, x0_from_eps
from ddpm_lite.schedule import Schedule

N = 200_000  # draws per pixel
X0 = torch.tensor([-1.0, -0.3, 0.5, 1.0]).reshape(1, 4, 1, 1)  # four "pixels" with different clean values


def alpha_bar64(schedule: Schedule, t: int) -> float:
    """alpha_bar_t from the betas alone, as a float64 product."""
    return math.prod(1 - b for b in schedule.betas[:t + 1].double().tolist())


def assert_gaussian(samples: torch.Tensor, mean: torch.Tensor, var: float):
    """samples (N, P, 1, 1): per-pixel sample mean and variance within 5 standard errors of (mean, var)."""
    n = samples.shape[0]
    m, v = samples.double().mean(0).flatten(), samples.double().var(0).flatten()
    assert (m - mean.flatten()).abs().max() < 5 * math.sqrt(var / n), (m, mean)
    assert (v - var).abs().max() < 5 * var * math.sqrt(2 / (n - 1)), (v, var)


@pytest.mark.parametrize("kind,t", [("linear", 0), ("linear", 300), ("cosine", 500), ("cosine", 999)])
def test_q_sample_has_the_closed_form_mean_and_variance(kind, t, gen):
    s = Schedule.build(kind, 1000)
    ab = alpha_bar64(s, t)
    eps = torch.randn(N, 4, 1, 1, generator=gen)
    xt = q_sample(s, X0.expand(N, 4, 1, 1), torch.full((N,), t), eps)
    assert_gaussian(xt, math.sqrt(ab) * X0.double(), 1 - ab)  # Eq. 4


@pytest.mark.parametrize("t", [0, 7, 49])
def test_q_step_composed_t_times_matches_q_sample_in_distribution(t, gen):
    s = Schedule.linear(50)
    x = X0.expand(N, 4, 1, 1)
    for k in range(t + 1):  # x_0 -> x_1 -> ... one step of Eq. 2 at a time
        x = q_step(s, x, torch.full((N,), k), torch.randn(x.shape, generator=gen))
    ab = alpha_bar64(s, t)
    assert_gaussian(x, math.sqrt(ab) * X0.double(), 1 - ab)


def test_q_step_is_eq2_exactly():
    s = Schedule.cosine(20)
    x_prev, eps, t = torch.tensor([0.5, -0.2]).reshape(2, 1, 1, 1), torch.tensor([1.0, -2.0]).reshape(2, 1, 1, 1), 7
    beta = s.betas[t].double()
    expected = (1 - beta).sqrt() * x_prev.double() + beta.sqrt() * eps.double()
    torch.testing.assert_close(q_step(s, x_prev, torch.tensor([t, t]), eps).double(), expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("t", [1, 10, 999])
def test_q_posterior_is_gaussian_conditioning_of_the_joint(t):
    """q(x_{t-1} | x_t, x0) by conditioning the joint Gaussian of (x_{t-1}, x_t) given x0, not by Eq. 7."""
    s = Schedule.linear(1000)
    ab, ab_prev, alpha = alpha_bar64(s, t), alpha_bar64(s, t - 1), 1 - s.betas[t].double().item()
    cov = math.sqrt(alpha) * (1 - ab_prev)  # Cov(x_{t-1}, x_t | x0)
    x0 = torch.tensor([-0.7, 0.2, 0.9], dtype=torch.float64).reshape(3, 1, 1, 1)
    xt = torch.tensor([1.3, -0.4, 0.1], dtype=torch.float64).reshape(3, 1, 1, 1)
    mean_ref = math.sqrt(ab_prev) * x0 + cov / (1 - ab) * (xt - math.sqrt(ab) * x0)
    var_ref = (1 - ab_prev) - cov ** 2 / (1 - ab)
    mean, var = q_posterior(s, x0.float(), xt.float(), torch.full((3,), t))
    torch.testing.assert_close(mean.double(), mean_ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(var.double().flatten(), torch.full((3,), var_ref, dtype=torch.float64),
                               rtol=1e-5, atol=0)


def test_q_posterior_at_t0_returns_x0_with_no_variance():
    s = Schedule.cosine(100)
    x0, xt = torch.tensor([0.25, -0.5]).reshape(2, 1, 1, 1), torch.tensor([0.3, 2.0]).reshape(2, 1, 1, 1)
    mean, var = q_posterior(s, x0, xt, torch.zeros(2, dtype=torch.long))
    torch.testing.assert_close(mean, x0)
    assert (var == 0).all()


def test_x0_and_eps_conversions_invert_q_sample(gen):
    s = Schedule.cosine(100)
    x0, eps = torch.rand(6, 1, 3, 3, generator=gen) * 2 - 1, torch.randn(6, 1, 3, 3, generator=gen)
    t = torch.tensor([0, 5, 20, 50, 80, 98])
    xt = q_sample(s, x0, t, eps)
    ab = s.alpha_bars[t].reshape(-1, 1, 1, 1)
    torch.testing.assert_close(x0_from_eps(ab, xt, eps), x0, rtol=0, atol=2e-4)
    torch.testing.assert_close(eps_from_x0(ab, xt, x0), eps, rtol=0, atol=2e-4)


def test_min_snr_weight_is_min_snr_gamma_over_snr():
    s = Schedule.cosine(1000)
    t = torch.tensor([0, 100, 500, 999])
    snr = (s.alpha_bars[t] / (1 - s.alpha_bars[t])).double()
    expected = snr.clamp(max=5.0) / snr
    torch.testing.assert_close(min_snr_weight(s, t, 5.0).double(), expected, rtol=1e-5, atol=0)
    assert min_snr_weight(s, t, 5.0)[0] < 1 and min_snr_weight(s, t, 5.0)[-1] == 1  # high SNR at small t


class Recorder(torch.nn.Module):
    """A fixed 'network' that predicts `eps_pred` and remembers what it was given."""

    def __init__(self, eps_pred):
        super().__init__()
        self.eps_pred, self.calls = eps_pred, []

    def forward(self, x, t, labels=None):
        self.calls.append((x, t, labels))
        return self.eps_pred


def test_loss_is_l_simple_on_q_sample_input(gen):
    s = Schedule.linear(100)
    x0, eps, eps_pred = (torch.randn(5, 1, 4, 4, generator=gen) for _ in range(3))
    t, labels = torch.tensor([0, 10, 50, 70, 99]), torch.tensor([1, 2, 3, 4, 10])
    model = Recorder(eps_pred)
    value = loss(model, s, x0, t, eps, labels)
    assert value.item() == pytest.approx(((eps_pred - eps) ** 2).mean().item(), rel=1e-6)  # Eq. 14
    x_in, t_in, labels_in = model.calls[0]
    torch.testing.assert_close(x_in, q_sample(s, x0, t, eps))
    assert torch.equal(t_in, t) and torch.equal(labels_in, labels)


def test_loss_with_min_snr_weights_each_sample(gen):
    s = Schedule.cosine(100)
    x0, eps, eps_pred = (torch.randn(4, 1, 4, 4, generator=gen) for _ in range(3))
    t = torch.tensor([0, 30, 60, 99])
    per_sample = ((eps_pred - eps) ** 2).mean(dim=(1, 2, 3))
    expected = (per_sample * min_snr_weight(s, t, 5.0)).mean()
    assert loss(Recorder(eps_pred), s, x0, t, eps, min_snr_gamma=5.0).item() == pytest.approx(expected.item(), rel=1e-6)
    assert loss(Recorder(eps), s, x0, t, eps, min_snr_gamma=5.0).item() == 0  # the perfect predictor
