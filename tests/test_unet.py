"""The UNet: shapes, what its output depends on, the "no label" class, size budget and config checks."""
import math

import pytest
import torch

from conftest import tiny_config, tiny_unet
from ddpm_lite.unet import UNet, UNetConfig, count_parameters, timestep_embedding


def inputs(b, c=1, size=28, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, c, size, size, generator=g), torch.randint(0, 1000, (b,), generator=g)


@pytest.mark.parametrize("kw", [dict(), dict(in_channels=3, image_size=32), dict(image_size=16, num_res_blocks=2),
                                dict(channel_mults=(1, 2, 2), attention_levels=(0, 2), num_classes=None)])
def test_output_keeps_the_input_shape(kw):
    model = tiny_unet(**kw)
    cfg = model.config
    x, t = inputs(3, cfg.in_channels, cfg.image_size)
    with torch.no_grad():
        out = model(x, t, torch.tensor([0, 1, 2]) if cfg.num_classes else None)
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_fresh_network_predicts_zero_noise():
    model = UNet(tiny_config())  # zero-initialised output layer: a stable first training step
    x, t = inputs(2)
    with torch.no_grad():
        assert (model(x, t) == 0).all()


def test_output_depends_on_t_and_on_the_label(tiny_model):
    x, _ = inputs(2)
    t, labels = torch.tensor([10, 10]), torch.tensor([3, 3])
    with torch.no_grad():
        base = tiny_model(x, t, labels)
        other_t = tiny_model(x, torch.tensor([500, 500]), labels)
        other_label = tiny_model(x, t, torch.tensor([4, 4]))
    assert (base - other_t).abs().max() > 1e-3
    assert (base - other_label).abs().max() > 1e-3


def test_no_labels_means_the_learned_no_label_class(tiny_model):
    x, t = inputs(3)
    with torch.no_grad():
        none = tiny_model(x, t, None)
        explicit = tiny_model(x, t, torch.full((3,), tiny_model.config.num_classes))
        digit = tiny_model(x, t, torch.zeros(3, dtype=torch.long))
    assert torch.equal(none, explicit)
    assert not torch.allclose(none, digit)


def test_labels_given_to_an_unconditional_model_raise():
    model = tiny_unet(num_classes=None)
    x, t = inputs(2)
    assert model.label_emb is None
    with pytest.raises(ValueError, match=r"labels given to an unconditional UNet \(num_classes=None\)"):
        model(x, t, torch.tensor([1, 2]))


def test_batch_items_do_not_influence_each_other(tiny_model):
    x, t = inputs(4)
    labels = torch.tensor([0, 5, 9, 10])
    with torch.no_grad():
        together = tiny_model(x, t, labels)
        alone = torch.cat([tiny_model(x[i:i + 1], t[i:i + 1], labels[i:i + 1]) for i in range(4)])
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-5)


def test_scalar_t_is_broadcast_over_the_batch(tiny_model):
    x, _ = inputs(2)
    with torch.no_grad():
        assert torch.equal(tiny_model(x, torch.tensor(42)), tiny_model(x, torch.tensor([42, 42])))


def test_timestep_embedding_is_the_transformer_sinusoid():
    t, dim = torch.tensor([0, 1, 250]), 8
    emb = timestep_embedding(t, dim)
    assert emb.shape == (3, 8)
    freqs = [10000 ** (-i / 4) for i in range(4)]
    for row, tv in zip(emb, t.tolist()):
        expected = [math.cos(tv * f) for f in freqs] + [math.sin(tv * f) for f in freqs]
        torch.testing.assert_close(row.double(), torch.tensor(expected, dtype=torch.float64), rtol=0, atol=2e-4)


def test_default_model_stays_within_the_parameter_budget():
    n = count_parameters(UNet())
    assert 200_000 < n < 1_500_000, n  # small enough to train on a CPU, big enough to draw digits
    assert count_parameters(tiny_unet()) < 50_000


def test_count_parameters_counts_every_weight():
    layer = torch.nn.Linear(3, 5)
    assert count_parameters(layer) == 3 * 5 + 5


def test_bad_configs_raise_clear_errors():
    with pytest.raises(ValueError, match=r"image_size 30 must be divisible by 2\^2"):
        UNetConfig(image_size=30, channel_mults=(1, 2, 2))
    with pytest.raises(ValueError, match=r"channels 12 not divisible by groups=8"):
        UNetConfig(base_channels=12)
    with pytest.raises(ValueError, match=r"channels 48 not divisible by groups=32"):
        UNetConfig(base_channels=16, channel_mults=(2, 3), groups=32)


def test_config_lists_become_tuples_and_round_trip_through_a_dict():
    cfg = UNetConfig(channel_mults=[1, 2], attention_levels=[1])
    assert cfg.channel_mults == (1, 2) and cfg.attention_levels == (1,)
    assert UNetConfig(**cfg.to_dict()) == cfg
