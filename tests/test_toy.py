"""ddpm_lite.lab.toy: the 2-D mixture's closed forms, and the exact denoiser driving the library's samplers."""
import torch

import ddpm_lite
from ddpm_lite.lab import toy


def mixture():
    return toy.Mixture.two_moons_like()


def test_score_is_the_gradient_of_log_prob():
    m = mixture().noised(0.3)
    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(0), requires_grad=True)
    grad, = torch.autograd.grad(m.log_prob(x).sum(), x)
    assert torch.allclose(grad, m.score(x), atol=1e-4)


def test_noised_mixture_matches_the_forward_process():
    m, g = mixture(), torch.Generator().manual_seed(1)
    x0, _ = m.sample(200_000, g)
    ab = 0.4
    xt = ab ** 0.5 * x0 + (1 - ab) ** 0.5 * torch.randn(x0.shape, generator=g)  # Eq. 4
    q = m.noised(ab)
    assert torch.allclose(xt.mean(0), (q.weights[:, None] * q.means).sum(0), atol=0.01)
    assert m.noised(1.0).stds.allclose(m.stds) and m.noised(0.0).stds.allclose(torch.ones(8))


def test_given_keeps_one_class():
    m = mixture()
    for y in (0, 1):
        part = m.given(y)
        assert (part.classes == y).all() and abs(part.weights.sum().item() - 1) < 1e-6


def test_exact_denoiser_samples_land_on_the_data():
    schedule = ddpm_lite.Schedule.cosine(1000)
    m = mixture()
    x_T = torch.randn(500, 2, 1, 1, generator=torch.Generator().manual_seed(2))
    x = ddpm_lite.sample(toy.ExactDenoiser(m, schedule), schedule, x_T=x_T, steps=50, clip_x0=False).flatten(1)
    nearest = torch.cdist(x, m.means).min(1).values
    assert nearest.median() < 2 * m.stds[0]
    left = ddpm_lite.sample(toy.ExactDenoiser(m, schedule), schedule, x_T=x_T, steps=50, clip_x0=False, labels=0)
    assert (left.flatten(1)[:, 0] < 0).all()  # class 0 is the left arc


def test_mlp_shapes_and_library_loss():
    net = toy.MLP(hidden=16, num_classes=2)
    x0 = torch.randn(8, 2, 1, 1)
    t = torch.randint(0, 1000, (8,))
    assert net(x0, t, None).shape == x0.shape and net(x0, t, torch.zeros(8, dtype=torch.long)).shape == x0.shape
    loss = ddpm_lite.loss(net, ddpm_lite.Schedule.cosine(1000), x0, t, torch.randn_like(x0))
    loss.backward()
    assert torch.isfinite(loss)
