"""The shapes of notebook 09: repeatable per seed, the shipped network's shape, and each class the shape it names."""
import math

import pytest
import torch

from ddpm_lite.lab import shapes
from ddpm_lite.recipe import model_config_for
from ddpm_lite.unet import UNetConfig


def test_the_same_seed_gives_the_same_pictures_and_another_seed_others():
    x, y = shapes.make(40, seed=3)
    x2, y2 = shapes.make(40, seed=3)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(x, shapes.make(40, seed=4)[0])


def test_pictures_fit_the_shipped_network_and_every_class_comes_equally_often():
    x, y = shapes.make(50, seed=0)
    assert x.shape == (50, 1, 28, 28) and x.dtype == torch.uint8 and y.dtype == torch.long
    assert torch.equal(torch.bincount(y), torch.full((10,), 5))
    assert len(shapes.CLASS_NAMES) == 10
    assert model_config_for(x, y) == UNetConfig()  # 1 channel, 28x28, 10 classes: the release's network


def test_every_shape_stays_inside_the_picture_on_a_black_border():
    x, _ = shapes.make(500, seed=1)
    border = torch.cat([x[..., 0, :], x[..., -1, :], x[..., :, 0], x[..., :, -1]], -1)
    assert border.max() == 0
    assert (x.flatten(1).amax(1) > 200).all()  # every picture has a shape in it, however thin its outline


def test_an_outline_holds_less_ink_than_the_same_shape_filled():
    x, y = shapes.make(1000, seed=2)
    ink = x.float().flatten(1).sum(1)
    for k in range(len(shapes.SHAPES)):
        assert ink[y == k + len(shapes.SHAPES)].mean() < 0.8 * ink[y == k].mean(), shapes.SHAPES[k]


@pytest.mark.parametrize("shape, area", [("circle", math.pi * 100), ("square", 16 ** 2)])
def test_a_filled_shape_covers_its_area(shape, area):
    """Antialiased coverage sums to the shape's area: a circle of radius 10, a square of half side 0.8 * 10."""
    n = 64
    pixel = torch.arange(n) + 0.5
    x, y = torch.broadcast_tensors(pixel[None, :] - 32.3, pixel[:, None] - 31.7)
    cover = (0.5 - shapes.distance(shape, x, y, torch.tensor(10.0))).clamp(0, 1)
    assert cover.sum().item() == pytest.approx(area, rel=0.01)


def test_an_unknown_shape_is_named():
    with pytest.raises(ValueError, match="hexagon"):
        shapes.distance("hexagon", torch.zeros(1), torch.zeros(1), torch.tensor(1.0))
