"""Pictures of shapes, drawn here: labelled 28x28 grey data that is not digits and needs no download (notebook 09).

Ten classes, five shapes (circle, square, triangle, diamond, plus), each filled and as an outline, at a random
position, size and (for outlines) stroke width; white on black like MNIST, so the shipped network's shape (1 channel,
28x28, 10 classes) fits it. Each shape is a signed distance d(p) (negative inside, in pixels), and a pixel's grey
level is its coverage, clamp(1/2 - d, 0, 1), so edges are antialiased; an outline keeps the band -w < d < 0.
`make(n, seed)` gives the same pictures for the same seed on any machine.
"""
from __future__ import annotations

import math

import torch

SHAPES = ("circle", "square", "triangle", "diamond", "plus")
CLASS_NAMES = tuple(f"{s} {style}" for style in ("filled", "outline") for s in SHAPES)  # label k is CLASS_NAMES[k]


def _polygon(x: torch.Tensor, y: torch.Tensor, sides: int, r: torch.Tensor, turn: float) -> torch.Tensor:
    """Signed distance (to within the corners) to a regular polygon of circumradius r, centred at 0: the largest of
    its edges' half-plane distances, n_i . p - apothem."""
    angles = turn + 2 * math.pi * torch.arange(sides) / sides  # (S,) the edges' outward normals
    along = x[..., None] * torch.cos(angles) + y[..., None] * torch.sin(angles)  # (B, H, W, S)
    return along.amax(-1) - r * math.cos(math.pi / sides)


def _box(x: torch.Tensor, y: torch.Tensor, half_w: torch.Tensor, half_h: torch.Tensor) -> torch.Tensor:
    """Exact signed distance to an axis-aligned rectangle of half sizes (half_w, half_h), centred at 0."""
    dx, dy = x.abs() - half_w, y.abs() - half_h
    outside = torch.sqrt(dx.clamp(min=0) ** 2 + dy.clamp(min=0) ** 2)
    return outside + torch.maximum(dx, dy).clamp(max=0)


def distance(shape: str, x: torch.Tensor, y: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Signed distance in pixels from points (x, y), relative to the centre, to `shape` of size r (B, 1, 1)."""
    if shape == "circle":
        return torch.sqrt(x ** 2 + y ** 2) - r
    if shape == "square":
        return _box(x, y, 0.8 * r, 0.8 * r)
    if shape == "triangle":  # apex up (rows grow downwards); centroid below the middle, so apex and base are even
        return _polygon(x, y - 0.29 * r, 3, 1.15 * r, math.pi / 2)
    if shape == "diamond":
        return _polygon(x, y, 4, 1.1 * r, math.pi / 4)
    if shape == "plus":
        arm = 0.4 * r
        return torch.minimum(_box(x, y, r, arm), _box(x, y, arm, r))
    raise ValueError(f"unknown shape {shape!r}; choose one of {', '.join(SHAPES)}")


def make(n: int, seed: int = 0, size: int = 28) -> tuple[torch.Tensor, torch.Tensor]:
    """n pictures (n, 1, size, size) uint8 and their labels (n,) int64: the classes in turn (label k = i mod 10),
    each at a random centre, size r in [0.22, 0.36] of the picture and outline width in [1.5, 2.5] pixels (at most
    r / 4, so that a small plus keeps its hole)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % len(CLASS_NAMES)
    r = size * (0.22 + 0.14 * torch.rand(n, generator=g))  # (n,) pixels
    centre = size / 2 + (size / 2 - 1.2 * r[:, None] - 1) * (2 * torch.rand(n, 2, generator=g) - 1)  # stays inside
    width = torch.minimum(1.5 + torch.rand(n, generator=g), r / 4)
    pixel = torch.arange(size) + 0.5  # pixel centres
    x = pixel[None, None, :] - centre[:, 0, None, None]  # (n, 1, size)
    y = pixel[None, :, None] - centre[:, 1, None, None]  # (n, size, 1)
    x, y = torch.broadcast_tensors(x, y)  # (n, size, size)
    d = torch.empty(n, size, size)
    for k, shape in enumerate(SHAPES):
        mine = labels % len(SHAPES) == k
        d[mine] = distance(shape, x[mine], y[mine], r[mine, None, None])
    cover = (0.5 - d).clamp(0, 1)  # filled: antialiased coverage of the inside
    outline = labels >= len(SHAPES)
    cover[outline] *= (0.5 + d[outline] + width[outline, None, None]).clamp(0, 1)  # only the band -w < d < 0
    return (cover * 255).round().to(torch.uint8)[:, None], labels  # (n, 1, size, size)
