"""Notebook sliders over the forward process, the reverse process and classifier-free guidance, with static twins.

- forward_slider: x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps (Eq. 4) as t moves, one fixed eps per digit,
  with a marker on the alpha_bar_t and SNR curves and the pixel histogram against N(0, 1).
- reverse_slider: x_t and the predicted x0 at each step of one trajectory, sampled once (Alg. 2, or DDIM Eq. 12).
- guidance_slider: a grid of samples per guidance scale w (Ho & Salimans 2022, Eq. 6), fixed seed, cached.
- learning_slider: the same x_T and labels decoded by each progress snapshot of one training run (snapshots.py).
- steps_slider: models (or samplers) side by side at each number of steps, from the same x_T and labels: a distilled
  student against its teacher (distill.py).

Slider t is the paper's t in 0..T: t = 0 is the clean digit, t >= 1 is the package's 0-based code index t - 1.
A move redraws by encoding uint8 arrays as PNG into an ipywidgets.Image: the curves are drawn once by matplotlib,
markers and histogram bars are painted into a copy with numpy. Only APIs shared by ipywidgets 7 (Colab) and 8 are
used. Callbacks keep exceptions in ``.errors`` and show them, since ipywidgets would swallow them. Static twins for
pages without a kernel are in twins.py.
"""
from __future__ import annotations

import html
import math
import time
import traceback

import numpy as np
import torch

from ..data import check_images
from ..diffusion import noise_to_step
from ..samplers import Trajectory, sample, sample_trajectory, settings_of
from ..schedule import Schedule
from .snapshots import LEARNING_SETTINGS, settings_text, shipped_snapshots, snapshot_samples
from .viz import decode_png, grid_uint8, image_uint8, png, side_by_side, upscale

MARKER, LINE, BAR = 255, 254, 253  # palette slots painted on the panels: red marker, grey line, blue bars


def digit_noise(x0: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """The fixed eps for each digit: digit i draws from torch.Generator().manual_seed(seed + i); (N, C, H, W)."""
    return torch.stack([torch.randn(x.shape, generator=torch.Generator().manual_seed(seed + i))
                        for i, x in enumerate(x0)])


def reverse_trajectory(source, schedule=None, sampler=None, steps=None, n=8, labels=None, seed=0) -> Trajectory:
    """A Trajectory as given, or one sampled once (seeded) from a model; sampler, steps and labels left as None
    take the model's own settings (a checkpoint's recommended ones)."""
    if isinstance(source, Trajectory):
        return source
    if schedule is None:
        raise ValueError("a model needs its schedule: reverse_slider(model, schedule); load_model() returns both")
    return sample_trajectory(source, schedule, n, sampler=sampler, steps=steps, labels=labels,
                             generator=torch.Generator().manual_seed(seed))


def reverse_picture(traj: Trajectory, k: int, nrow: int) -> np.ndarray:
    """After k of S steps: x_t fed to step k + 1 (left) and its predicted x0 (right); k = S shows the final samples."""
    xt, x0_pred = (traj.xt[k], traj.x0_pred[k]) if k < len(traj.timesteps) else (traj.x, traj.x)
    return side_by_side(grid_uint8(xt, nrow), grid_uint8(x0_pred, nrow))


def guided_samples(model, schedule, digit: int, w: float, n: int = 8, steps: int = 10, seed: int = 0):
    """n samples of one digit at guidance scale w (eps = (1 + w) eps(y) - w eps(null); w = 0 is plain conditional)."""
    if not model.config.num_classes:
        raise ValueError("guidance needs a class-conditional model (UNetConfig.num_classes set); this one is not")
    labels = torch.full((n,), int(digit), dtype=torch.long)
    return sample(model, schedule, n, sampler="ddim", steps=steps, eta=0.0, eps_scaling=1.0, labels=labels,
                  guidance=float(w), generator=torch.Generator().manual_seed(seed))


def learning_rows(snapshots=None, n: int = 20, labels="all", seed: int = 0, settings=None, nrow: int = 10):
    """[(Snapshot, uint8 grid of its n digits)] for each snapshot path (default: the shipped ones, earliest first),
    all drawn with one sampler and seed (snapshots.snapshot_samples), so the same x_T and noise in each."""
    paths = shipped_snapshots() if snapshots is None else list(snapshots)
    if not paths:
        raise ValueError("no snapshots given; pass checkpoint paths, or None for the shipped ones")
    drawn = [snapshot_samples(p, n, labels, seed, settings or LEARNING_SETTINGS) for p in paths]
    return [(snap, grid_uint8(snap.x, nrow)) for snap in drawn]


def steps_samples(models: dict, schedule, steps=(1, 2, 4, 8), n: int = 8, labels="all", seed: int = 0) -> dict:
    """{(name, k): samples (n, C, H, W)} for each entry name: (model, SamplerSettings or None) of `models` at each
    number of steps k. Every one starts from the x_T of torch.Generator().manual_seed(seed) with the same labels (as
    sample() takes them), so only the model, its sampler and k differ. Settings None: the model's own."""
    drawn = {}
    for name, (model, settings) in models.items():
        for k in steps:
            s = (settings or settings_of(model)).with_overrides(steps=int(k)).to_dict()
            s.pop("labels")  # the labels are given, one spec for every model
            drawn[name, k] = sample(model, schedule, n, labels=labels, generator=torch.Generator().manual_seed(seed),
                                    **s)
    return drawn


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


def _as_png(picture) -> bytes:
    """A picture as draw() returns it: PNG bytes already, a uint8 array, or (palette indices, palette)."""
    if isinstance(picture, bytes):
        return picture
    return png(*picture) if isinstance(picture, tuple) else png(picture)


class SliderWidget:
    """The widget box and what notebooks and tests use: .slider, .image, .status, .frame(), .errors, .redraw_ms."""
    kind = "slider"

    def _build(self, slider, controls, images):
        import ipywidgets as W
        self.slider, self.controls, self.images, self.image = slider, controls, images, images[0]
        self.status, self.error = W.HTML(), W.HTML()
        self.errors, self.redraw_ms = [], []
        for widget, name in [(slider, "slider"), (self.image, "image"), (self.status, "status"), (self.error, "error")]:
            widget.add_class(f"ddpm-lite-{name}")  # hooks for the browser test
        wrap = W.Layout(flex_flow="row wrap", align_items="center")  # narrow screens stack the pictures
        self.container = W.VBox([W.HBox([slider, *controls], layout=wrap), self.status,
                                 W.HBox(images, layout=wrap), self.error])
        self.container.add_class("ddpm-lite-widget")
        self.container.add_class(f"ddpm-lite-{self.kind}")
        for widget in (slider, *controls):
            widget.observe(self._redraw, names="value")
        self._redraw()

    def _redraw(self, change=None):
        try:
            start = time.perf_counter()
            pictures, text = self.draw()
            for image, picture in zip(self.images, pictures):
                image.value = _as_png(picture)
            self.status.value = text
            self.redraw_ms.append(1000 * (time.perf_counter() - start))
        except Exception as e:  # ipywidgets would swallow it: keep it for tests, show it to the reader
            self.errors.append(e)
            self.error.value = f"<pre style='color:#b00020'>{html.escape(traceback.format_exc())}</pre>"

    def frame(self) -> np.ndarray:
        """The uint8 picture the main image shows now, decoded from its PNG bytes."""
        return decode_png(self.image.value)

    def _ipython_display_(self):
        from IPython.display import display
        display(self.container)


class ForwardSlider(SliderWidget):
    kind = "forward"

    def __init__(self, images, schedules=("linear", "cosine"), T=1000, labels=None, seed=0, t=None, scale=5):
        import ipywidgets as W
        self.x0, self.seed, self.scale = check_images(images), seed, scale
        built = [s if isinstance(s, Schedule) else Schedule.build(s, T) for s in schedules]
        if len({s.T for s in built}) != 1:
            raise ValueError(f"schedules must share one T, got {[s.T for s in built]}")
        self.schedules, self.T = {s.kind: s for s in built}, built[0].T
        self.curves, self.hist = CurvePanel(built), HistogramPanel()
        names = [(f"#{i}" if labels is None else f"#{i}: {int(labels[i])}", i) for i in range(len(self.x0))]
        slider = W.IntSlider(value=self.T // 4 if t is None else t, min=0, max=self.T, description="t",
                             continuous_update=True, layout=W.Layout(width="420px"))
        self.schedule_menu = W.Dropdown(options=list(self.schedules), description="schedule",
                                        layout=W.Layout(width="200px"))
        self.digit_menu = W.Dropdown(options=names, value=0, description="digit", layout=W.Layout(width="180px"))
        self._build(slider, [self.schedule_menu, self.digit_menu], [W.Image(format="png") for _ in range(3)])

    def draw(self):
        t, kind, i = self.slider.value, self.schedule_menu.value, self.digit_menu.value
        s, x0 = self.schedules[kind], self.x0[i:i + 1]
        xt = noise_to_step(s, x0, t, digit_noise(x0, self.seed + i))[0]  # (C, H, W)
        pictures = [upscale(image_uint8(xt), self.scale), (self.curves.draw(kind, t), self.curves.palette),
                    (self.hist.draw(xt.numpy()), self.hist.palette)]
        if t == 0:
            return pictures, "<b>t = 0</b>: the clean digit x_0 (alpha_bar = 1)"
        ab = float(s.alpha_bars[t - 1])
        return pictures, (f"<b>t = {t}</b> (code index {t - 1}) &middot; alpha_bar_t = {ab:.3g} &middot; "
                          f"SNR = {ab / (1 - ab):.3g}")


class ReverseSlider(SliderWidget):
    kind = "reverse"

    def __init__(self, model, schedule=None, sampler=None, steps=None, n=8, labels=None, seed=0, scale=3, nrow=None):
        import ipywidgets as W
        self.trajectory = reverse_trajectory(model, schedule, sampler, steps, n, labels, seed)
        self.final = self.trajectory.x
        self.nrow, self.scale = nrow or min(len(self.final), 4), scale
        self.pngs = [png(upscale(reverse_picture(self.trajectory, k, self.nrow), scale))
                     for k in range(len(self.trajectory.timesteps) + 1)]  # a move only swaps bytes
        slider = W.IntSlider(value=0, min=0, max=len(self.trajectory.timesteps), description="step",
                             continuous_update=True, layout=W.Layout(width="420px"))
        self._build(slider, [], [W.Image(format="png")])

    def draw(self):
        k, ts = self.slider.value, self.trajectory.timesteps
        picture = self.pngs[k]
        if k == len(ts):
            return [picture], f"<b>step {k}/{len(ts)}</b> &middot; t = 0: the final samples (left and right agree)"
        return [picture], (f"<b>step {k}/{len(ts)}</b> &middot; t = {ts[k] + 1} (code index {ts[k]}) &middot; "
                           f"left: x_t, right: predicted x_0")


class GuidanceSlider(SliderWidget):
    kind = "guidance"

    def __init__(self, model, schedule, scales=(0, 0.5, 1, 2, 3, 4), steps=10, seed=0, n=8, digit=0, scale=3):
        import ipywidgets as W
        if not model.config.num_classes:
            raise ValueError("guidance_slider needs a class-conditional model (UNetConfig.num_classes set)")
        self.model, self.schedule, self.steps, self.seed, self.n = model, schedule, steps, seed, n
        self.nrow, self.scale, self.cache = min(n, 4), scale, {}
        slider = W.SelectionSlider(options=[(f"{w:g}", float(w)) for w in scales], value=float(scales[0]),
                                   description="w", continuous_update=False, layout=W.Layout(width="320px"))
        self.digit_menu = W.Dropdown(options=list(range(model.config.num_classes)), value=digit, description="digit",
                                     layout=W.Layout(width="160px"))
        self._build(slider, [self.digit_menu], [W.Image(format="png")])

    def grid(self, digit: int, w: float) -> np.ndarray:
        if (digit, w) not in self.cache:
            x = guided_samples(self.model, self.schedule, digit, w, self.n, self.steps, self.seed)
            self.cache[digit, w] = grid_uint8(x, self.nrow)
        return self.cache[digit, w]

    def draw(self):
        w, digit = self.slider.value, self.digit_menu.value
        start, cached = time.perf_counter(), (digit, w) in self.cache
        picture = upscale(self.grid(digit, w), self.scale)
        how = "cached" if cached else f"sampled in {time.perf_counter() - start:.2f} s"
        return [picture], (f"<b>w = {w:g}</b> &middot; digit {digit} &middot; {self.n} samples, DDIM {self.steps} "
                           f"steps, seed {self.seed} &middot; {how}")


class LearningSlider(SliderWidget):
    kind = "learning"

    def __init__(self, snapshots=None, n=20, labels="all", seed=0, settings=None, scale=2, nrow=10):
        import ipywidgets as W
        self.settings = settings or LEARNING_SETTINGS
        rows = learning_rows(snapshots, n, labels, seed, self.settings, nrow)
        self.snapshots = [snap for snap, _ in rows]
        self.pngs = [png(upscale(grid, scale)) for _, grid in rows]  # sampled once: a move only swaps bytes
        slider = W.IntSlider(value=1, min=1, max=len(rows), description="snapshot", continuous_update=True,
                             layout=W.Layout(width="420px"))
        self._build(slider, [], [W.Image(format="png")])

    def draw(self):
        k = self.slider.value
        snap = self.snapshots[k - 1]
        return [self.pngs[k - 1]], (f"<b>snapshot {k}/{len(self.pngs)}</b> &middot; "
                                    f"{snap.progress.describe(' &middot; ')} &middot; {snap.sampler}")


def sampler_text(s, T: int) -> str:
    """"DDIM, eta 0, trailing grid": snapshots.settings_text without the number of steps."""
    return ", ".join([s.sampler.upper(), *settings_text(s, T).split(", ")[1:]])


class StepsSlider(SliderWidget):
    kind = "steps"

    def __init__(self, models, schedule, steps=(1, 2, 4, 8), n=8, labels="all", seed=0, value=None, scale=3,
                 nrow=None):
        import ipywidgets as W
        if not models:
            raise ValueError("steps_slider needs at least one entry name: (model, settings)")
        self.steps, self.seed = [int(k) for k in steps], seed
        drawn = steps_samples(models, schedule, self.steps, n, labels, seed)
        self.nrow = nrow or min(n, 4)
        self.pngs = {k: png(upscale(side_by_side(*[grid_uint8(drawn[name, k], self.nrow) for name in models]), scale))
                     for k in self.steps}  # sampled once: a move only swaps bytes
        self.names = [f"{name} ({sampler_text(s or settings_of(m), schedule.T)})" for name, (m, s) in models.items()]
        slider = W.SelectionSlider(options=[(str(k), k) for k in self.steps], description="steps",
                                   value=self.steps[0] if value is None else int(value), continuous_update=True,
                                   layout=W.Layout(width="320px"))
        self._build(slider, [], [W.Image(format="png")])

    def draw(self):
        k = self.slider.value
        return [self.pngs[k]], (f"<b>{k} step{'s' if k > 1 else ''}</b> &middot; left to right: "
                                f"{', '.join(self.names)} &middot; the same x_T and labels (seed {self.seed})")


def forward_slider(images, schedules=("linear", "cosine"), T=1000, **kw) -> ForwardSlider:
    """Slider over t = 0..T for digits (N, C, H, W) in [-1, 1] (uint8 is converted); see ForwardSlider for options."""
    return ForwardSlider(images, schedules, T, **kw)


def reverse_slider(model, schedule=None, sampler=None, steps=None, n=8, labels=None, seed=0, **kw) -> ReverseSlider:
    """Slider over the steps of one trajectory; model may also be a Trajectory (sample_trajectory's)."""
    return ReverseSlider(model, schedule, sampler, steps, n, labels, seed, **kw)


def guidance_slider(model, schedule, scales=(0, 0.5, 1, 2, 3, 4), steps=10, seed=0, **kw) -> GuidanceSlider:
    """Slider over guidance scales w and a digit menu for a class-conditional model; grids are cached."""
    return GuidanceSlider(model, schedule, scales, steps, seed, **kw)


def steps_slider(models, schedule, steps=(1, 2, 4, 8), n=8, labels="all", seed=0, **kw) -> StepsSlider:
    """Slider over numbers of steps: each entry name: (model, SamplerSettings or None for its own) of `models`
    side by side, from the same x_T and labels; every picture is sampled once, when it is built."""
    return StepsSlider(models, schedule, steps, n, labels, seed, **kw)


def learning_slider(snapshots=None, n=20, labels="all", seed=0, **kw) -> LearningSlider:
    """Slider over progress snapshots of one run (default: the shipped ones): the same noise and labels decoded by
    each with one sampler, LEARNING_SETTINGS unless settings= is given; sampled once, when it is built."""
    return LearningSlider(snapshots, n, labels, seed, **kw)
