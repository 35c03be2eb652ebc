"""Pictures: grid sizes and pixel values, looping GIFs with the right frames, npy export."""
import numpy as np
import pytest
import torch

from conftest import require
from ddpm_lite.lab.viz import grid_uint8, save_gif, save_grid, strip, to_npy


def test_grid_uint8_shape_and_values():
    x = torch.full((6, 1, 28, 28), -1.0)
    x[4] = 1.0
    g = grid_uint8(x, nrow=3)  # 2 rows of 3, 2-pixel padding around every tile
    assert g.shape == (2 * 30 + 2, 3 * 30 + 2) and g.dtype == np.uint8
    assert g[2:30, 2:30].max() == 0  # tile 0: black
    assert g[32:60, 32:60].min() == 255  # tile 4 (row 1, column 1): white
    assert g[0].min() == 255  # the padding is white


def test_grid_uint8_colour():
    g = grid_uint8(torch.zeros(4, 3, 32, 32), nrow=4)
    assert g.shape == (32 + 4, 4 * 34 + 2, 3)
    assert g[2, 2].tolist() == [128, 128, 128]


def test_save_gif_writes_a_looping_animation_with_every_frame(tmp_path):
    import imageio.v3 as iio
    frames = torch.linspace(-1, 1, 5).reshape(5, 1, 1, 1, 1).expand(5, 4, 1, 8, 8)  # (S, B, C, H, W)
    path = save_gif(frames, tmp_path / "deep" / "reverse.gif", nrow=2)
    read = iio.imread(path, index=None)
    assert read.shape[:3] == (5, 22, 22)
    assert iio.immeta(path).get("loop") == 0
    grey = read[..., 0] if read.ndim == 4 else read
    assert [int(grey[k, 2, 2]) for k in range(5)] == [0, 64, 128, 191, 255]  # frame order and values kept


def test_save_grid_writes_a_readable_png(tmp_path):
    import imageio.v3 as iio
    path = save_grid(torch.zeros(8, 1, 28, 28), tmp_path / "a" / "grid.png", nrow=4)
    img = iio.imread(path)
    assert img.shape[:2] == (2 * 30 + 2, 4 * 30 + 2)


def test_to_npy_is_uint8_n_h_w_for_grey_and_n_h_w_c_for_colour():
    grey = to_npy(torch.tensor([-1.0, 1.0]).reshape(2, 1, 1, 1).expand(2, 1, 28, 28))
    assert grey.shape == (2, 28, 28) and grey.dtype == np.uint8
    assert grey[0].max() == 0 and grey[1].min() == 255
    assert to_npy(torch.zeros(3, 3, 4, 4)).shape == (3, 4, 4, 3)


def test_strip_puts_x_t_above_the_predictions():
    xt, x0 = torch.zeros(4, 1, 8, 8), torch.ones(4, 1, 8, 8)
    s = strip(xt, x0)
    assert s.shape == (8, 1, 8, 8) and torch.equal(s[:4], xt) and torch.equal(s[4:], x0)


def test_plots_draw_without_a_display():
    matplotlib = require("matplotlib")
    matplotlib.use("Agg")
    from ddpm_lite.schedule import Schedule
    from ddpm_lite.lab.viz import plot_loss, plot_schedules, show_row
    ax = plot_schedules([Schedule.linear(100), Schedule.cosine(100)])
    assert len(ax[0].lines) == 2 and len(ax[0].lines[0].get_xdata()) == 100
    ax = plot_loss([[10, 1.0, 1e-3, 5.0], [20, 0.5, 1e-3, 5.0], [30, 0.25, 1e-3, 5.0]], smooth=2)
    assert ax.lines[0].get_ydata().tolist() == pytest.approx([0.75, 0.375])
    axes = show_row(torch.zeros(3, 1, 8, 8), titles=["a", "b", "c"])
    assert [a.get_title() for a in axes] == ["a", "b", "c"]
    import matplotlib.pyplot as plt
    plt.close("all")
