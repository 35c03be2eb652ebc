"""A drawing pad for SDEdit (editing.py): draw a digit with the mouse, choose the noise level t0 and a digit, and see
what the model makes of the sketch; and its static twin, a GIF of sketches turning into digits as t0 grows.

The canvas is ipycanvas, an optional extra (pip install "ddpm-lite[pad]"). The strokes are kept in Python as points
and rasterised here the way MNIST's digits were made (LeCun et al. 1998: the ink scaled to fit a 20 x 20 box, then
centred by its centre of mass in 28 x 28), so what the model sees does not depend on the browser. Where ipycanvas is
missing, or its widget cannot load (Colab without its custom widget manager), the sketch menu's built-in drawings
stand in and every cell still runs. Only ipywidgets APIs shared by versions 7 and 8 are used.
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch

from ..editing import noise_to, sdedit
from .viz import grid_uint8, upscale, write_gif
from .widgets import SliderWidget

SIZE, BOX = 28, 20  # MNIST: 28 x 28 images, the ink fitted into a 20 x 20 box
MY_DRAWING = "my drawing"
SKETCHES = {  # polylines in the unit square (x right, y down), drawn the way a hurried hand would
    "hook": [[(0.3, 0.2), (0.7, 0.2), (0.45, 0.85)]],
    "ring": [[(0.5 + 0.25 * math.sin(a), 0.5 - 0.35 * math.cos(a)) for a in np.linspace(0, 2 * math.pi, 17)]],
    "zigzag": [[(0.3, 0.3), (0.5, 0.15), (0.7, 0.3), (0.3, 0.8), (0.75, 0.8)]],
    "cross": [[(0.6, 0.15), (0.25, 0.6), (0.75, 0.6)], [(0.6, 0.35), (0.6, 0.85)]],
    "bar": [[(0.5, 0.15), (0.53, 0.85)]],
}


def rasterise(strokes, size: int = SIZE, width: float = 2.6, supersample: int = 4) -> np.ndarray:
    """Ink in [0, 1], (size, size), of polylines given in pixel units of that image (pixel centres at i + 0.5):
    a pixel's share of sub-pixels within width / 2 of a segment."""
    segs = [(p, q) for s in strokes for p, q in zip(s, s[1:] if len(s) > 1 else s)]  # a lone point: a dot
    fine = (np.arange(size * supersample) + 0.5) / supersample
    px, py = np.meshgrid(fine, fine)  # (F, F) sub-pixel centres
    if not segs:
        return np.zeros((size, size))
    a, b = (np.array([seg[k] for seg in segs], dtype=float)[:, None, None, :] for k in (0, 1))  # (S, 1, 1, 2)
    d, p = b - a, np.stack([px, py], -1)[None]  # (S, 1, 1, 2), (1, F, F, 2)
    u = np.clip(((p - a) * d).sum(-1) / np.maximum((d * d).sum(-1), 1e-12), 0, 1)  # nearest point on each segment
    dist = np.linalg.norm(p - (a + u[..., None] * d), axis=-1).min(0)  # (F, F)
    inked = (dist <= width / 2).astype(float)
    return inked.reshape(size, supersample, size, supersample).mean((1, 3))


def mnist_like(strokes, width: float = 2.6) -> torch.Tensor:
    """Strokes in any coordinates -> a (1, 1, 28, 28) digit in [-1, 1]: fitted into the 20 x 20 box (aspect kept),
    then moved so its centre of mass is the image centre, as MNIST's digits were."""
    points = np.array([p for s in strokes for p in s], dtype=float).reshape(-1, 2)
    if len(points) == 0:
        return -torch.ones(1, 1, SIZE, SIZE)
    lo, hi = points.min(0), points.max(0)
    scale = BOX / max((hi - lo).max(), 1e-6 + 0.1 * np.abs(points).max())  # a dot does not blow up
    place = lambda shift: [[tuple((np.array(q) - (lo + hi) / 2) * scale + SIZE / 2 + shift) for q in s]  # noqa: E731
                           for s in strokes]
    ink = rasterise(place(0), width=width)
    centre = np.arange(SIZE) + 0.5
    mass = np.array([(ink.sum(0) * centre).sum(), (ink.sum(1) * centre).sum()]) / max(ink.sum(), 1e-12)
    ink = rasterise(place(SIZE / 2 - mass), width=width)  # centre of mass at (14, 14)
    return torch.from_numpy(ink).float()[None, None] * 2 - 1  # (1, 1, 28, 28), ink at +1


def pad_edit(model, schedule, x: torch.Tensor, t0: int, digit: int = -1, guidance: float = 2.0, n: int = 4,
             seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_t0, results): n SDEdits of each sketch in x (K, C, H, W), seeded; digit -1 keeps the sketch's own digit (no
    label), 0..9 asks for that digit with guidance w. x_t0 is the noised input each result started from."""
    xs = x.repeat_interleave(n, 0)  # (K n, C, H, W)
    labels, w = ("none", 0.0) if digit < 0 else (int(digit), float(guidance))
    xt = noise_to(schedule, xs, t0, torch.Generator().manual_seed(seed))  # the first draw sdedit makes too
    out = sdedit(model, schedule, xs, t0, labels=labels, guidance=w, generator=torch.Generator().manual_seed(seed))
    return xt, out


def pad_picture(x, xt, out) -> np.ndarray:
    """One row: the sketch as the model sees it, the first x_t0, then the results; uint8."""
    return grid_uint8(torch.cat([x, xt[:1], out.cpu()]), nrow=len(out) + 2)


def make_canvas(px: int):
    """An ipycanvas Canvas of px x px, or None where ipycanvas is not installed."""
    try:
        from ipycanvas import Canvas
    except ImportError:
        return None
    canvas = Canvas(width=px, height=px)
    canvas.add_class("ddpm-lite-canvas")  # hook for the browser test
    canvas.line_cap, canvas.line_join, canvas.line_width = "round", "round", px / 12
    return canvas


class DrawingPad(SliderWidget):
    """Draw on .canvas (or pick a sketch), move the t0 slider, pick a digit: the picture shows the sketch as the
    model sees it, x_t0, and n SDEdit results. .strokes holds the drawing in pad units (0..1)."""
    kind = "pad"

    def __init__(self, model, schedule, t0=500, digit=-1, guidance=2.0, n=4, seed=0, sketch="hook", canvas=True,
                 scale=3, px=168):
        import ipywidgets as W
        self.model, self.schedule, self.guidance, self.n, self.seed = model, schedule, guidance, n, seed
        self.scale, self.px, self.cache, self.strokes, self.drawing = scale, px, {}, [], False
        self.canvas = make_canvas(px) if canvas else None
        names = ([MY_DRAWING] if self.canvas is not None else []) + list(SKETCHES)
        self.sketch_menu = W.Dropdown(options=names, value=sketch if sketch in names else names[1],
                                      description="sketch", layout=W.Layout(width="200px"))
        self._load_sketch()
        self.sketch_menu.observe(self._load_sketch, names="value")  # before _build's: strokes first, then redraw
        self.digit_menu = W.Dropdown(options=[("its own", -1)] + [(str(k), k) for k in range(10)], value=digit,
                                     description="digit", layout=W.Layout(width="160px"))
        slider = W.IntSlider(value=t0, min=0, max=schedule.T, step=schedule.T // 20, description="t0",
                             continuous_update=False, layout=W.Layout(width="420px"))
        self._build(slider, [self.digit_menu, self.sketch_menu], [W.Image(format="png")])
        self.container.children = (self._pad_row(W), *self.container.children)

    def _pad_row(self, W):
        """The canvas with its clear button, or a note saying why there is none."""
        if self.canvas is None:
            return W.HTML("<i>No drawing pad: ipycanvas is not installed (pip install \"ddpm-lite[pad]\"). "
                          "Pick a built-in sketch instead.</i>")
        self.clear_button = W.Button(description="clear", layout=W.Layout(width="80px"))
        self.clear_button.add_class("ddpm-lite-clear")
        self.clear_button.on_click(lambda _: self.clear())
        for event, handler in (("down", self._down), ("move", self._move), ("up", self._up), ("out", self._up)):
            getattr(self.canvas, f"on_mouse_{event}")(handler)
        self._paint()
        hint = W.HTML("Draw a digit with the mouse (white on black, like MNIST); each stroke updates the result.")
        return W.HBox([self.canvas, W.VBox([self.clear_button, hint], layout=W.Layout(width="260px"))])

    def _load_sketch(self, change=None):
        """A built-in sketch replaces the pad's strokes (and drawing adds to it); "my drawing" keeps them."""
        if self.sketch_menu.value != MY_DRAWING:
            self.strokes = [list(stroke) for stroke in SKETCHES[self.sketch_menu.value]]
            self._paint()

    def _paint(self):
        """The strokes on the canvas, in one message."""
        if self.canvas is None:
            return
        from ipycanvas import hold_canvas
        with hold_canvas():
            self.canvas.fill_style, self.canvas.stroke_style = "black", "white"
            self.canvas.fill_rect(0, 0, self.px, self.px)
            for stroke in self.strokes:
                points = [(x * self.px, y * self.px) for x, y in stroke]
                self.canvas.stroke_lines(points if len(points) > 1 else points * 2)

    def _down(self, x, y):
        self.drawing = True
        self.strokes.append([(x / self.px, y / self.px)])

    def _move(self, x, y):
        if self.drawing:
            (x0, y0), p = self.strokes[-1][-1], (x / self.px, y / self.px)
            self.strokes[-1].append(p)
            self.canvas.stroke_line(x0 * self.px, y0 * self.px, x, y)

    def _up(self, x, y):
        """A finished stroke: the menu shows "my drawing" and the result is redrawn."""
        if not self.drawing:
            return
        self.drawing = False
        self._show_drawing()

    def clear(self):
        self.strokes, self.drawing = [], False
        self._paint()
        self._show_drawing()

    def _show_drawing(self):
        if self.sketch_menu.value == MY_DRAWING:
            self._redraw()
        else:
            self.sketch_menu.value = MY_DRAWING  # its observers redraw

    def draw(self):
        t0, digit, x = self.slider.value, self.digit_menu.value, mnist_like(self.strokes)
        key, start = (x.numpy().tobytes(), t0, digit), time.perf_counter()
        how = "cached"
        if key not in self.cache:
            xt, out = pad_edit(self.model, self.schedule, x, t0, digit, self.guidance, self.n, self.seed)
            self.cache[key] = pad_picture(x, xt, out)
            how = f"sampled in {time.perf_counter() - start:.2f} s"
        ab = 1.0 if t0 == 0 else float(self.schedule.alpha_bars[t0 - 1])
        asked = "its own digit (no label)" if digit < 0 else f"digit {digit} (guidance w = {self.guidance:g})"
        empty = " &middot; <b>the pad is empty: draw a digit</b>" if not self.strokes else ""
        return [upscale(self.cache[key], self.scale)], (
            f"<b>t0 = {t0}</b> &middot; alpha_bar = {ab:.3g} &middot; {self.sketch_menu.value} &middot; {asked} "
            f"&middot; {how}{empty}<br>left to right: the sketch as the model sees it, x_t0, {self.n} results")


def drawing_pad(model, schedule, t0=500, **kw) -> DrawingPad:
    """A drawing pad with a t0 slider for SDEdit; see DrawingPad for options (canvas=False: built-in sketches only)."""
    return DrawingPad(model, schedule, t0, **kw)


def save_sdedit_gif(path, model, schedule, sketches=("hook", "ring", "zigzag", "cross"), t0s=None, digit=-1,
                    guidance=2.0, seed=0, scale=2, duration_ms=250):
    """Static twin of the pad: per sketch a row (sketch, x_t0, result), one frame per t0; a bar at the bottom grows
    with t0."""
    t0s = list(range(0, schedule.T + 1, schedule.T // 20)) if t0s is None else list(t0s)
    xs = torch.cat([mnist_like(SKETCHES[name]) for name in sketches])  # (K, 1, 28, 28)
    frames = []
    for t0 in t0s:
        xt, out = pad_edit(model, schedule, xs, t0, digit, guidance, n=1, seed=seed)  # same eps in every frame
        picture = grid_uint8(torch.stack([xs, xt, out.cpu()], 1).flatten(0, 1), nrow=3)  # rows: sketches
        bar = np.full((4, picture.shape[1]), 255, np.uint8)
        bar[1:3, :round(picture.shape[1] * t0 / schedule.T)] = 0
        frames.append(upscale(np.vstack([picture, bar]), scale))
    return write_gif(frames, path, duration_ms)
