"""Pixel panels for the sliders: PNG encoding and matplotlib figures drawn once, then marked with numpy.

A slider move must redraw in milliseconds, so nothing is re-plotted: CurvePanel and HistogramPanel render their
axes once into palette pixels and ``draw`` paints the marker or the bars into a copy of that array.
"""
from __future__ import annotations

import io
import math

import numpy as np

MARKER, LINE, BAR = 255, 254, 253  # palette slots painted on the panels: red marker, grey line, blue bars


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


def side_by_side(a: np.ndarray, b: np.ndarray, gap: int = 8) -> np.ndarray:
    return np.hstack([a, np.full((a.shape[0], gap, *a.shape[2:]), 255, np.uint8), b])


class Panel:
    """A matplotlib figure drawn once into palette pixels (a third of RGB's bytes, so PNGs encode fast);
    ``pixels`` maps data to pixel coordinates so marks can be painted into a copy with numpy."""

    def __init__(self, fig):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from PIL import Image
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        image = Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3].copy()).quantize(colors=240)
        self.base = np.asarray(image).copy()  # (H, W) palette indices
        colours = (image.getpalette() + [255] * 768)[:3 * BAR]
        self.palette = colours + [31, 119, 180] + [150, 150, 150] + [214, 39, 40]  # BAR, LINE, MARKER
        colours = np.array(self.palette).reshape(-1, 3)
        self.white = int(np.argmin(np.abs(colours - 255).sum(1)))

    def pixels(self, ax, x, y):
        """Data coordinates -> (columns, rows) of the drawn figure; rows count from the top."""
        xy = ax.transData.transform(np.column_stack([x, y]))
        return np.rint(xy[:, 0]).astype(int), np.rint(self.base.shape[0] - xy[:, 1]).astype(int)

    def rows(self, ax):
        """(top, bottom) pixel rows of an axes box."""
        return self.base.shape[0] - int(ax.bbox.y1), self.base.shape[0] - int(ax.bbox.y0)


class CurvePanel(Panel):
    """alpha_bar_t and log10 SNR_t against the paper's t = 0..T, drawn once; ``draw(kind, t)`` adds the marker."""

    def __init__(self, schedules):
        from matplotlib.figure import Figure
        fig = Figure(figsize=(5.6, 2.0), dpi=90)
        axes = fig.subplots(1, 2)
        t, curves = np.arange(schedules[0].T + 1), {}
        for s in schedules:
            ab = np.concatenate([[1.0], s.alpha_bars.double().numpy()])  # paper t = 0 is clean data, alpha_bar = 1
            log_snr = np.log10(ab[1:] / (1 - ab[1:]))
            axes[0].plot(t, ab, lw=1.2, label=s.kind)
            axes[1].plot(t[1:], log_snr, lw=1.2)
            curves[s.kind] = (ab, np.concatenate([log_snr[:1], log_snr]))
        axes[0].set(xlabel="t", title="alpha_bar_t (signal kept)")
        axes[1].set(xlabel="t", title="log10 SNR_t")
        axes[0].legend(fontsize=7)
        fig.tight_layout()
        super().__init__(fig)
        self.spans = [self.rows(ax) for ax in axes]
        self.points = {kind: [self.pixels(ax, t, y) for ax, y in zip(axes, ys)] for kind, ys in curves.items()}
        for pts in self.points.values():
            pts[1][1][0] = self.spans[1][0] + 3  # SNR is infinite at t = 0: the marker sits at the top edge

    def draw(self, kind: str, t: int) -> np.ndarray:
        img = self.base.copy()
        for (cols, rows), (top, bottom) in zip(self.points[kind], self.spans):
            c, r = cols[t], rows[t]
            img[top:bottom, c] = LINE
            img[max(r - 3, 0):r + 4, max(c - 3, 0):c + 4] = MARKER
        return img


class HistogramPanel(Panel):
    """Share of pixels per bin of x_t against N(0, 1), the distribution x_t approaches as t -> T."""
    edges, top = np.linspace(-4, 4, 49), 0.15

    def __init__(self):
        from matplotlib.figure import Figure
        fig = Figure(figsize=(2.7, 2.0), dpi=90)
        ax = fig.subplots()
        cdf = np.array([0.5 * (1 + math.erf(e / math.sqrt(2))) for e in self.edges])
        ax.stairs(np.diff(cdf), self.edges, color="0.2", label="N(0, 1)")
        ax.set(xlim=(-4, 4), ylim=(0, self.top), title="pixels of x_t")
        ax.legend(fontsize=7)
        fig.tight_layout()
        super().__init__(fig)
        self.cols, rows = self.pixels(ax, self.edges, np.zeros_like(self.edges))
        self.row0, self.row_top = rows[0], self.rows(ax)[0]

    def draw(self, x: np.ndarray) -> np.ndarray:
        share = np.histogram(np.clip(x.ravel(), -4, 3.999), self.edges)[0] / x.size  # tails go to the end bins
        heights = np.rint(np.minimum(share / self.top, 1) * (self.row0 - self.row_top)).astype(int)  # clip at top
        img = self.base.copy()
        for c0, c1, h in zip(self.cols[:-1], self.cols[1:], heights):
            region = img[self.row0 - h:self.row0, c0 + 1:c1]
            region[region == self.white] = BAR  # behind the N(0, 1) line, which stays visible
        return img
