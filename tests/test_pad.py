"""The drawing pad driven from Python, no browser: strokes are rasterised the MNIST way, the picture is the one
editing.sdedit computes for the same sketch and seed, mouse events draw, clear empties, and without ipycanvas the
built-in sketches stand in."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from conftest import require, tiny_unet

require("ipywidgets")  # in the dev and notebooks extras: required

from ddpm_lite import editing
from ddpm_lite.lab import pad  # noqa: E402
from ddpm_lite.schedule import Schedule  # noqa: E402
from ddpm_lite.lab.viz import decode_png, grid_uint8, upscale  # noqa: E402


@pytest.fixture(scope="module")
def model():
    return tiny_unet(seed=2)


@pytest.fixture(scope="module")
def schedule():
    return Schedule.cosine(20)


def expected_picture(model, schedule, strokes, t0, digit=-1, n=2, seed=0, guidance=2.0, scale=3):
    """What the pad must show, from editing's functions: the sketch, the first x_t0, n SDEdit results."""
    x = pad.mnist_like(strokes)
    xs = x.expand(n, -1, -1, -1)
    labels, w = ("none", 0.0) if digit < 0 else (digit, guidance)
    xt = editing.noise_to(schedule, xs, t0, torch.Generator().manual_seed(seed))
    out = editing.sdedit(model, schedule, xs, t0, labels=labels, guidance=w, generator=torch.Generator().manual_seed(seed))
    return upscale(grid_uint8(torch.cat([x, xt[:1], out]), nrow=n + 2), scale)


def test_rasterise_draws_a_segment_of_the_given_width():
    ink = pad.rasterise([[(4.0, 14.0), (24.0, 14.0)]], width=2.0)
    assert ink.shape == (28, 28) and ink.max() == 1 and ink.min() == 0
    assert (ink[13:15, 5:23] == 1).all() and ink[:12].sum() == 0 and ink[16:].sum() == 0
    assert abs(ink.sum() - (20 * 2 + np.pi)) < 1.5  # a 20 x 2 bar with round caps


def test_mnist_like_fits_the_box_and_centres_the_mass():
    x = pad.mnist_like(pad.SKETCHES["cross"])
    ink = (x[0, 0].numpy() + 1) / 2
    rows, cols = np.nonzero(ink)
    assert rows.max() - rows.min() <= pad.BOX + 3 and cols.max() - cols.min() <= pad.BOX + 3
    centre = np.arange(28) + 0.5
    mass = [(ink.sum(1) * centre).sum() / ink.sum(), (ink.sum(0) * centre).sum() / ink.sum()]
    assert np.allclose(mass, 14, atol=0.5)
    moved = [[(5 + 3 * a, 7 + 3 * b) for a, b in s] for s in pad.SKETCHES["cross"]]  # where and how big: no matter
    assert (pad.mnist_like(moved) - x).abs().max() < 0.2
    assert torch.equal(pad.mnist_like([]), -torch.ones(1, 1, 28, 28))


def test_the_pad_shows_what_sdedit_computes(model, schedule):
    p = pad.drawing_pad(model, schedule, t0=10, n=2, canvas=False, sketch="ring")
    assert p.canvas is None and p.sketch_menu.options == tuple(pad.SKETCHES)  # no canvas: built-ins only
    assert np.array_equal(p.frame(), expected_picture(model, schedule, pad.SKETCHES["ring"], 10))
    p.slider.value, p.digit_menu.value, p.sketch_menu.value = 17, 4, "zigzag"
    assert np.array_equal(p.frame(), expected_picture(model, schedule, pad.SKETCHES["zigzag"], 17, digit=4))
    assert "t0 = 17</b>" in p.status.value and "digit 4" in p.status.value
    p.slider.value = 0  # t0 = 0: every result is the sketch itself
    frame = decode_png(p.image.value)
    assert np.array_equal(frame[:, 6:90], frame[:, -90:-6])  # tiles of 28 px after 2 px of padding, x3
    assert p.errors == []


def test_mouse_strokes_draw_and_clear_empties(model, schedule):
    pytest.importorskip("ipycanvas", reason="ipycanvas (optional: pip install '.[pad]') is not installed; "
                                            "without it the pad offers built-in sketches, tested above")
    p = pad.drawing_pad(model, schedule, t0=8, n=2, sketch="bar")
    assert p.canvas is not None and p.sketch_menu.value == "bar"
    before = p.frame()
    p._down(30, 40)
    for x, y in [(60, 45), (120, 50), (70, 140)]:
        p._move(x, y)
    p._up(70, 140)
    stroke = [(30 / 168, 40 / 168), (60 / 168, 45 / 168), (120 / 168, 50 / 168), (70 / 168, 140 / 168)]
    assert p.sketch_menu.value == pad.MY_DRAWING and p.strokes[-1] == stroke
    assert np.array_equal(p.frame(), expected_picture(model, schedule, p.strokes, 8))
    assert not np.array_equal(p.frame(), before)
    p._move(10, 10)  # no button held: nothing drawn
    assert p.strokes[-1] == stroke
    p.clear_button.click()
    assert p.strokes == [] and "the pad is empty" in p.status.value
    p.sketch_menu.value = "hook"  # a built-in sketch replaces the drawing
    assert p.strokes == pad.SKETCHES["hook"] and p.errors == []


def test_without_ipycanvas_the_pad_falls_back(model, schedule, monkeypatch):
    monkeypatch.setitem(sys.modules, "ipycanvas", None)  # import ipycanvas now raises ImportError
    p = pad.drawing_pad(model, schedule, t0=5, n=1)
    assert p.canvas is None and pad.MY_DRAWING not in p.sketch_menu.options
    assert "ipycanvas is not installed" in p.container.children[0].value and p.errors == []


def test_the_gif_twin_has_a_frame_per_t0(model, schedule, tmp_path):
    import imageio.v3 as iio
    path = pad.save_sdedit_gif(tmp_path / "sdedit.gif", model, schedule, sketches=("bar", "ring"), t0s=(0, 10, 20))
    frames = iio.imread(path, index=None)
    assert frames.shape[0] == 3 and frames.shape[1] == 2 * (2 * 30 + 2 + 4)  # two rows of 28 + padding, a bar
