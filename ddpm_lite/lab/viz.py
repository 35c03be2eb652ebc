"""Pictures: image grids, reverse-process strips, schedule and loss plots, GIFs, PNG bytes.

Tensors come in model range [-1, 1]; conversion happens in data.to_unit. torchvision builds the grids,
imageio writes the GIFs, Pillow encodes PNG bytes, matplotlib draws the plots; each is imported only where it
is used. Sliders (widgets.py) and their static twins (twins.py) draw with these.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from ..data import to_uint8, to_unit


def grid(x: torch.Tensor, nrow: int = 8, padding: int = 2) -> torch.Tensor:
    """(B, C, H, W) in [-1, 1] -> one (C, H', W') image in [0, 1]."""
    from torchvision.utils import make_grid
    return make_grid(to_unit(x.detach().cpu().float()), nrow=nrow, padding=padding, pad_value=1.0)


def save_grid(x: torch.Tensor, path, nrow: int = 8) -> Path:
    from torchvision.utils import save_image
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_image(to_unit(x.detach().cpu().float()), str(path), nrow=nrow, padding=2, pad_value=1.0)
    return Path(path)


def grid_uint8(x: torch.Tensor, nrow: int = 8) -> np.ndarray:
    """A grid as an (H, W) or (H, W, 3) uint8 array, ready for imageio or an image widget."""
    g = (grid(x, nrow) * 255).round().to(torch.uint8)  # (3, H, W): make_grid repeats grey to 3 channels
    return (g[0] if x.shape[1] == 1 else g.permute(1, 2, 0)).numpy()


def strip(xt: torch.Tensor, x0_pred: torch.Tensor) -> torch.Tensor:
    """Reverse-process strip for one sample: row 1 x_t, row 2 predicted x0; inputs (S, C, H, W)."""
    return torch.cat([xt, x0_pred])  # (2S, C, H, W), lay out with nrow=S


def save_gif(frames: torch.Tensor, path, nrow: int = 8, duration_ms: int = 60, hold_last_ms: int = 1500) -> Path:
    """frames (S, B, C, H, W) in [-1, 1] -> a looping GIF of grids."""
    return write_gif([grid_uint8(f, nrow) for f in frames], path, duration_ms, hold_last_ms)


def write_gif(pictures, path, duration_ms: int = 60, hold_last_ms: int = 1500) -> Path:
    """uint8 pictures, (H, W) grey or (H, W, 3), -> a looping GIF (imageio v3: duration in ms, loop=0)."""
    import imageio.v3 as iio
    pictures = [p if p.ndim == 3 else np.stack([p] * 3, axis=-1) for p in pictures]  # RGB: readers choke on 1-bit
    # grey palettes
    durations = [duration_ms] * (len(pictures) - 1) + [hold_last_ms]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, pictures, extension=".gif", duration=durations, loop=0)
    return Path(path)


def show_gif(path, zoom: int = 2):
    """Display a GIF inline in a notebook, `zoom` times its size. Tagged as PNG so viewers without GIF support
    (GitHub, nbviewer) show it too; browsers look at the bytes and play it as a GIF either way."""
    from IPython.display import Image
    data = Path(path).read_bytes()
    return Image(data=data, format="png", width=zoom * int.from_bytes(data[6:8], "little"))  # bytes 6-7: GIF width


def to_npy(x: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] -> uint8 (N, H, W) for grey, (N, H, W, C) for colour."""
    u = to_uint8(x.detach().cpu())
    return (u[:, 0] if u.shape[1] == 1 else u.permute(0, 2, 3, 1)).numpy()


def image_uint8(x: torch.Tensor) -> np.ndarray:
    """One image (C, H, W) in [-1, 1] -> uint8 (H, W) for grey, (H, W, C) for colour."""
    return to_npy(x[None])[0]


def png(a: np.ndarray, palette: list | None = None) -> bytes:
    """uint8 (H, W) grey, (H, W) palette indices or (H, W, 3) -> PNG bytes; light compression, speed matters here."""
    from PIL import Image
    image = Image.fromarray(a)
    if palette is not None:
        image.putpalette(palette)
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    """PNG bytes -> uint8 (H, W) grey or (H, W, 3) colour (palette images are expanded)."""
    from PIL import Image
    image = Image.open(io.BytesIO(data))
    return np.asarray(image.convert("RGB") if image.mode == "P" else image)


def upscale(a: np.ndarray, k: int) -> np.ndarray:
    """Nearest-neighbour enlargement, so a 28x28 digit stays sharp in the browser."""
    return a.repeat(k, axis=0).repeat(k, axis=1)


def side_by_side(*pictures: np.ndarray, gap: int = 8) -> np.ndarray:
    """Pictures of one height in a row, left to right, with white gaps between them."""
    bar = np.full((pictures[0].shape[0], gap, *pictures[0].shape[2:]), 255, np.uint8)
    return np.hstack([part for picture in pictures for part in (bar, picture)][1:])


def plot_schedules(schedules, ax=None):
    """alpha_bar_t and log10 SNR against t for each schedule."""
    import matplotlib.pyplot as plt
    if ax is None:
        _, ax = plt.subplots(1, 2, figsize=(9, 3.2))
    for s in schedules:
        ax[0].plot(s.alpha_bars.numpy(), label=s.kind)
        ax[1].plot(torch.log10(s.snr()).numpy(), label=s.kind)
    ax[0].set(xlabel="t", ylabel="alpha_bar_t", title="signal kept")
    ax[1].set(xlabel="t", ylabel="log10 SNR", title="signal-to-noise ratio")
    ax[0].legend()
    return ax


def plot_loss(history, ax=None, smooth: int = 1):
    """history rows [step, loss, lr, images/s] as saved in a checkpoint."""
    import matplotlib.pyplot as plt
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.2))
    h = torch.tensor([row[:2] for row in history], dtype=torch.float64)
    loss = h[:, 1]
    if smooth > 1 and len(loss) >= smooth:
        loss = torch.nn.functional.avg_pool1d(loss[None, None], smooth, stride=1)[0, 0]
        ax.plot(h[smooth - 1:, 0].numpy(), loss.numpy())
    else:
        ax.plot(h[:, 0].numpy(), loss.numpy())
    ax.set(xlabel="step", ylabel="loss", yscale="log", title="training loss")
    return ax


def show_row(x: torch.Tensor, titles=None, ax=None, size: float = 1.4):
    """Draw a row of images (B, C, H, W) in [-1, 1] with optional titles."""
    import matplotlib.pyplot as plt
    n = len(x)
    if ax is None:
        _, ax = plt.subplots(1, n, figsize=(size * n, size * 1.15))
    for i, a in enumerate(ax if n > 1 else [ax]):
        img = to_unit(x[i].detach().cpu()).permute(1, 2, 0).squeeze(-1).numpy()
        a.imshow(img, cmap="gray", vmin=0, vmax=1)
        a.set_axis_off()
        if titles is not None:
            a.set_title(str(titles[i]), fontsize=9)
    return ax
