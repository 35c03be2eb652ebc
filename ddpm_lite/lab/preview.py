"""Watching a run learn: a training callback that decodes the same noise with the EMA weights every few steps.

Pass it as `train(..., callback=preview)`. In a notebook the grid is one picture, redrawn in place under a line with
the step and the loss; elsewhere nothing is shown, and with `path=` every grid is also written to that PNG file.
The noise comes from one seed each time, so from frame to frame only the network changes. Every grid is kept
(`frames`, by step; a resumed run redraws its repeated steps over the old ones), to lay side by side or animate
after the run.
"""
from __future__ import annotations

from pathlib import Path

import torch

from . import viz
from ..samplers import sample
from ..schedule import Schedule


class Preview:
    """callback(step, loss, model, ema) drawing n samples (DDIM, `steps` network calls, no guidance) every `every`
    steps and at step `last`; labels 0, 1, ... in turn for a conditional network (labels="all"), none otherwise."""

    def __init__(self, schedule: Schedule, every: int, *, last: int | None = None, n: int = 16, labels="all",
                 steps: int = 20, seed: int = 0, path=None, nrow: int = 8, zoom: int = 2):
        if every < 1:
            raise ValueError(f"every must be a number of steps >= 1, got {every}")
        self.schedule, self.every, self.last, self.n, self.labels = schedule, every, last, n, labels
        self.steps, self.seed, self.path, self.nrow, self.zoom = steps, seed, path, nrow, zoom
        self.frames: dict[int, torch.Tensor] = {}  # step -> (n, C, H, W) in [-1, 1], on the CPU
        self._handles = None  # (the notebook cell, its caption and picture displays), once shown

    def __call__(self, step: int, loss: float, model, ema) -> None:
        if step % self.every and step != self.last:
            return
        self.frames[step] = self.draw(ema)
        picture = viz.png(viz.upscale(viz.grid_uint8(self.frames[step], self.nrow), self.zoom))
        if self.path is not None:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            Path(self.path).write_bytes(picture)
        self._show(f"step {step:,}: loss {loss:.4f} (EMA weights, the same noise every time)", picture)

    def draw(self, ema) -> torch.Tensor:
        """n samples from `ema` (any device) from this preview's fixed noise: (n, C, H, W) in [-1, 1] on the CPU."""
        labels = self.labels if ema.config.num_classes else None
        g = torch.Generator().manual_seed(self.seed)
        # every knob given, so the live EMA module of a run and the same weights loaded from its checkpoint (whose
        # model.sampling is the recipe's) draw the same pictures
        return sample(ema, self.schedule, self.n, labels=labels, generator=g, sampler="ddim", steps=self.steps,
                      eta=0.0, eps_scaling=1.0, guidance=0.0).cpu()

    def sequence(self) -> tuple[list[int], torch.Tensor]:
        """(steps, frames (F, n, C, H, W)) in step order: for a strip of the run, or viz.save_gif."""
        steps = sorted(self.frames)
        return steps, torch.stack([self.frames[s] for s in steps])

    def _show(self, caption: str, picture: bytes) -> None:
        """Redraw the caption and picture in place; a new cell (a resumed run, say) gets displays of its own."""
        cell = _notebook_cell()
        if cell is None:
            return
        from IPython.display import Image, display
        if self._handles is None or self._handles[0] != cell:
            self._handles = (cell, display({"text/plain": caption}, raw=True, display_id=True),
                             display(Image(data=picture, format="png"), display_id=True))
        else:
            self._handles[1].update({"text/plain": caption}, raw=True)
            self._handles[2].update(Image(data=picture, format="png"))


def _notebook_cell() -> int | None:
    """The execution count of the running cell in a Jupyter kernel (where pictures can be shown); None in a script
    or a terminal IPython."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    return shell.execution_count if hasattr(shell, "kernel") else None
