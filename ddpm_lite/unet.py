"""A small UNet noise predictor eps_theta(x_t, t, y) for 28x28 digits (or 32x32 colour images).

Ho et al. 2020, Sec. 4 and App. B: sinusoidal time embedding, residual blocks with GroupNorm,
self-attention at the lowest resolution. Optional class conditioning with a learned "no label" class
(index ``num_classes``), so one network serves conditional and unconditional generation
(classifier-free guidance, Ho & Salimans 2022). The network knows nothing about diffusion.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass(frozen=True)
class UNetConfig:
    in_channels: int = 1
    image_size: int = 28
    base_channels: int = 32
    channel_mults: tuple = (1, 2, 2)  # one level per entry; each but the last halves the resolution
    num_res_blocks: int = 1
    attention_levels: tuple = (2,)  # levels (0 = full resolution) that get self-attention
    num_classes: int | None = 10  # None: unconditional network
    groups: int = 8
    dropout: float = 0.0

    def __post_init__(self):
        object.__setattr__(self, "channel_mults", tuple(self.channel_mults))
        object.__setattr__(self, "attention_levels", tuple(self.attention_levels))
        if self.image_size % 2 ** (len(self.channel_mults) - 1):
            raise ValueError(f"image_size {self.image_size} must be divisible by 2^{len(self.channel_mults) - 1}")
        for m in self.channel_mults:
            if (self.base_channels * m) % self.groups:
                raise ValueError(f"channels {self.base_channels * m} not divisible by groups={self.groups}")

    def to_dict(self) -> dict:
        return asdict(self)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Transformer sinusoidal embedding of integer timesteps: (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]  # (B, half)
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


class ResBlock(nn.Module):
    """GroupNorm -> SiLU -> conv, plus the (time + class) embedding, twice, with a residual path."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int, dropout: float):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(groups, c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2, self.conv2 = nn.GroupNorm(groups, c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.dropout = nn.Dropout(dropout)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(emb)[:, :, None, None]  # (B, C, 1, 1)
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class Attention(nn.Module):
    """Single-head self-attention over the H*W positions, with a residual path."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(B, 3, C, H * W).transpose(-1, -2).unbind(1)  # 3 x (B, HW, C)
        h = F.scaled_dot_product_attention(q, k, v)  # (B, HW, C)
        return x + self.proj(h.transpose(-1, -2).reshape(B, C, H, W))


class Level(nn.Module):
    """The residual blocks (and optional attention) of one resolution level."""

    def __init__(self, c_in: int, c_out: int, n: int, emb_dim: int, cfg: UNetConfig, attention: bool):
        super().__init__()
        self.blocks = nn.ModuleList(
            ResBlock(c_in if i == 0 else c_out, c_out, emb_dim, cfg.groups, cfg.dropout) for i in range(n))
        self.attn = Attention(c_out, cfg.groups) if attention else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, emb)
        return self.attn(x)


class UNet(nn.Module):
    # Speed switch, not part of the config (results equal to float rounding): on CPU the activations are kept
    # channels-last, where oneDNN's convolutions run faster (benchmarks/README.md measures by how much).
    channels_last_cpu = True

    def __init__(self, config: UNetConfig = UNetConfig()):
        super().__init__()
        self.config = cfg = config
        chs = [cfg.base_channels * m for m in cfg.channel_mults]
        emb_dim = 4 * cfg.base_channels
        self.time_mlp = nn.Sequential(nn.Linear(cfg.base_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        # the extra row, index num_classes, is the learned "no label" class used for unconditional passes
        self.label_emb = nn.Embedding(cfg.num_classes + 1, emb_dim) if cfg.num_classes else None
        self.conv_in = nn.Conv2d(cfg.in_channels, chs[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        c_prev = chs[0]
        for i, c in enumerate(chs):
            self.down.append(Level(c_prev, c, cfg.num_res_blocks, emb_dim, cfg, i in cfg.attention_levels))
            if i < len(chs) - 1:
                self.downsample.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
            c_prev = c
        self.mid = Level(c_prev, c_prev, 2, emb_dim, cfg, attention=True)
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i in reversed(range(len(chs))):
            self.up.append(Level(c_prev + chs[i], chs[i], cfg.num_res_blocks, emb_dim, cfg, i in cfg.attention_levels))
            if i > 0:
                self.upsample.append(nn.Conv2d(chs[i], chs[i - 1], 3, padding=1))
            c_prev = chs[i] if i == 0 else chs[i - 1]
        self.norm_out = nn.GroupNorm(cfg.groups, chs[0])
        self.conv_out = nn.Conv2d(chs[0], cfg.in_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)  # start as the zero predictor, a stable first step
        nn.init.zeros_(self.conv_out.bias)

    def embed(self, t: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        emb = self.time_mlp(timestep_embedding(t, self.config.base_channels))  # (B, 4C)
        if self.label_emb is not None:
            if labels is None:
                labels = torch.full_like(t, self.config.num_classes)  # the "no label" class
            emb = emb + self.label_emb(labels)
        elif labels is not None:
            raise ValueError("labels given to an unconditional UNet (num_classes=None)")
        return emb

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, C, H, W) in [-1, 1] scale; t: (B,) integer timesteps; labels: (B,) in 0..num_classes or None."""
        if t.dim() == 0:
            t = t.expand(x.shape[0])
        emb = self.embed(t, labels)
        h, skips = self.conv_in(x), []
        if self.channels_last_cpu and h.device.type == "cpu":
            h = h.contiguous(memory_format=torch.channels_last)  # (B, C, H, W), stored as (B, H, W, C)
        for i, level in enumerate(self.down):
            h = level(h, emb)
            skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)  # (B, C, H/2, W/2)
        h = self.mid(h, emb)
        for i, level in enumerate(self.up):
            h = level(torch.cat([h, skips.pop()], dim=1), emb)  # (B, C + C_skip, H, W) in
            if i < len(self.upsample):
                h = self.upsample[i](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h))).contiguous()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
