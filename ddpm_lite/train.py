"""Training: L_simple (Ho et al. 2020, Alg. 1 / Eq. 14) with AdamW, warm-up, clipping, EMA and label dropout.

A plain function you can read top to bottom. Every random draw of step k (batch order, t, eps, dropped
labels) comes from generators seeded by (seed, k), so a run resumed from a checkpoint repeats the
uninterrupted run step for step. Checkpoints are atomic; a NaN/inf loss stops training and leaves the last
good checkpoint untouched.
"""
from __future__ import annotations

import copy
import math
import platform
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from . import checkpoint
from .data import load_images, to_model_range
from .diffusion import loss as diffusion_loss
from .schedule import Schedule
from .unet import UNet, UNetConfig


@dataclass(frozen=True)
class TrainConfig:
    dataset: str = "mnist"
    data_root: str | None = None
    steps: int = 10_000
    batch_size: int = 128
    lr: float = 1e-3
    warmup: int = 500  # linear learning-rate warm-up steps, then cosine decay to lr_min_ratio * lr
    lr_min_ratio: float = 0.1
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.999  # with warm-up: min(decay, (1 + n) / (10 + n)) at step n
    label_dropout: float = 0.1  # share of labels replaced by "no label" (classifier-free guidance)
    min_snr_gamma: float | None = 5.0  # None: plain L_simple
    schedule: str = "cosine"
    T: int = 1000
    seed: int = 0
    out_dir: str = "runs/mnist"
    ckpt_every: int = 500
    log_every: int = 50
    device: str = "auto"
    amp: bool = True  # bfloat16 autocast, CUDA only
    init: str | None = None  # start from this checkpoint's EMA weights (fine-tuning); the optimizer starts fresh


class TrainingDiverged(RuntimeError):
    pass


def mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def pick_device(name: str = "auto") -> torch.device:
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def lr_at(cfg: TrainConfig, step: int) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (cfg.lr_min_ratio + (1 - cfg.lr_min_ratio) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    with torch.no_grad():
        for e, p in zip(ema.parameters(), model.parameters()):
            e.lerp_(p, 1 - decay)
        for e, b in zip(ema.buffers(), model.buffers()):
            e.copy_(b)


class Batches:
    """Batch k is a pure function of (seed, k): epoch permutations and per-step noise from seeded generators."""

    def __init__(self, n: int, batch_size: int, seed: int):
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.per_epoch = max(1, n // batch_size)
        self._perm = (None, None)

    def indices(self, step: int) -> torch.Tensor:
        epoch, i = divmod(step, self.per_epoch)
        if self._perm[0] != epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm = (epoch, torch.randperm(self.n, generator=g))
        return self._perm[1][i * self.batch_size:(i + 1) * self.batch_size]

    def generator(self, step: int) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed * 1_000_003 + 7_919 * step + 1)


def _draw(cfg, model_cfg, batches, images, labels, step, T, device):
    """The batch of step `step`: x0 in [-1, 1], labels (some dropped), t and eps."""
    idx = batches.indices(step)
    g = batches.generator(step)
    x0 = to_model_range(images[idx])  # (B, C, H, W)
    t = torch.randint(0, T, (len(idx),), generator=g)
    eps = torch.randn(x0.shape, generator=g)
    y = None
    if model_cfg.num_classes:
        y = labels[idx].clone()
        y[torch.rand(len(idx), generator=g) < cfg.label_dropout] = model_cfg.num_classes  # "no label"
        y = y.to(device)
    return x0.to(device), y, t.to(device), eps.to(device)


def _payload(model, ema, opt, step, cfg, model_cfg, schedule, history, elapsed):
    return {"model_config": model_cfg.to_dict(), "schedule": schedule.to_dict(), "model": model.state_dict(),
            "ema": ema.state_dict(), "optimizer": opt.state_dict(), "step": step, "train_config": asdict(cfg),
            "rng": {"torch": torch.get_rng_state()}, "history": history,
            "meta": {"elapsed_s": elapsed, "hardware": platform.processor() or platform.machine(),
                     "torch": str(torch.__version__)}}


def train(cfg: TrainConfig, model_cfg: UNetConfig = UNetConfig(), *, resume: bool = False, callback=None,
          progress: bool = True, data=None) -> dict:
    """Train and return the final checkpoint dict (also saved to out_dir/last.pt).

    data: optional (images uint8 (N, C, H, W), labels (N,)) instead of loading cfg.dataset.
    callback(step, loss, model, ema): called after every optimizer step (for plots and previews).
    """
    device = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
    schedule = Schedule.build(cfg.schedule, cfg.T)
    images, labels = data if data is not None else load_images(cfg.dataset, cfg.data_root, train=True)
    model = UNet(model_cfg).to(device)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    path = Path(cfg.out_dir) / "last.pt"
    step, history, elapsed = 0, [], 0.0
    if resume:
        step, history, elapsed, init = _restore(path, model, ema, opt, model_cfg)
        cfg = replace(cfg, init=cfg.init or init)  # a resumed fine-tuning run still records where it began
    elif cfg.init:
        _init_from(Path(cfg.init), model, ema, model_cfg, schedule)
    batches = Batches(len(images), cfg.batch_size, cfg.seed)
    use_amp = cfg.amp and device.type == "cuda"
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=cfg.steps, initial=step, desc="train", unit="step")
    window, t_start = [], time.time()
    while step < cfg.steps:
        x0, y, t, eps = _draw(cfg, model_cfg, batches, images, labels, step, schedule.T, device)
        for group in opt.param_groups:
            group["lr"] = lr_at(cfg, step)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            loss = diffusion_loss(model, schedule, x0, t, eps, y, cfg.min_snr_gamma)
        if not torch.isfinite(loss):
            raise TrainingDiverged(f"loss became {loss.item()} at step {step}; stopped without saving, so the last "
                                   f"good checkpoint ({path}) is untouched. Lower --lr or --grad-clip and --resume.")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        ema_update(ema, model, min(cfg.ema_decay, (1 + step) / (10 + step)))
        step += 1
        window.append(loss.item())
        if step % cfg.log_every == 0 or step == cfg.steps:
            dt = time.time() - t_start
            history.append([step, sum(window) / len(window), lr_at(cfg, step - 1), len(window) * cfg.batch_size / dt])
            elapsed += dt
            window, t_start = [], time.time()
            if bar:
                bar.set_postfix(loss=f"{history[-1][1]:.4f}", img_s=f"{history[-1][3]:.0f}")
        if bar:
            bar.update(1)
        if step % cfg.ckpt_every == 0 or step == cfg.steps:
            checkpoint.save(_payload(model, ema, opt, step, cfg, model_cfg, schedule, history, elapsed), path)
        if callback:
            callback(step, loss.item(), model, ema)
    if bar:
        bar.close()
    return _payload(model, ema, opt, step, cfg, model_cfg, schedule, history, elapsed)


def _check_model_config(ckpt: dict, model_cfg, where: str, fix: str) -> None:
    if ckpt["model_config"] != model_cfg.to_dict():
        raise checkpoint.CheckpointError(f"{where} was trained with model config {ckpt['model_config']}, "
                                         f"not {model_cfg.to_dict()}; {fix}")


def _init_from(path: Path, model, ema, model_cfg, schedule) -> None:
    """Model and EMA both start at the EMA weights of `path` (a release export or a run's last.pt)."""
    ckpt = checkpoint.load(path)
    _check_model_config(ckpt, model_cfg, f"--init {path}", "pass the same model flags")
    if ckpt["schedule"] != schedule.to_dict():
        raise checkpoint.CheckpointError(f"--init {path} was trained with schedule {ckpt['schedule']}, "
                                         f"not {schedule.to_dict()}; pass the same --schedule and --T")
    model.load_state_dict(ckpt["ema"])
    ema.load_state_dict(ckpt["ema"])


def _restore(path: Path, model, ema, opt, model_cfg):
    if not path.is_file():
        raise checkpoint.CheckpointError(f"--resume given but there is no checkpoint at {path}; "
                                         f"check --out (the run's folder) or start without --resume")
    ckpt = checkpoint.load(path)
    _check_model_config(ckpt, model_cfg, str(path), "resume with the same model flags")
    model.load_state_dict(ckpt["model"])
    ema.load_state_dict(ckpt["ema"])
    opt.load_state_dict(ckpt["optimizer"])
    torch.set_rng_state(ckpt["rng"]["torch"])
    return (ckpt["step"], ckpt["history"], ckpt.get("meta", {}).get("elapsed_s", 0.0),
            ckpt.get("train_config", {}).get("init"))
