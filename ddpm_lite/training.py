"""The training loop: L_simple (Ho et al. 2020, Alg. 1 / Eq. 14) with AdamW, warm-up, clipping, EMA, label dropout.

A plain function you can read top to bottom; its settings and schedules are the recipe (recipe.py). Every random
draw of step k (batch order, t, eps, dropped labels) comes from generators seeded by (seed, k), so a run resumed
from a checkpoint repeats the uninterrupted run step for step. Checkpoints are atomic; a NaN/inf loss stops
training and leaves the last good checkpoint untouched; a callback that returns False stops the run after that
step, saving it first. A run holds its folder's lock, so a second run on the same folder is refused. Under torchrun
every process runs train() on its shard of the same global batch (parallel/distributed.py), and the result equals
one process's to float rounding.
"""
from __future__ import annotations

import copy
import platform
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from . import checkpoint
from .data import load_images, to_model_range
from .devices import mps_available
from .diffusion import loss as diffusion_loss
from .errors import TrainingDiverged
from .parallel import distributed
from .recipe import TrainConfig, ema_decay_at, epochs_of, lr_at, recommended_sampling
from .schedule import Schedule
from .unet import UNet, UNetConfig


def pick_device(name: str = "auto", ranks: distributed.Ranks | None = None) -> torch.device:
    if ranks is not None:
        return distributed.rank_device(name, ranks)
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if mps_available():
        return torch.device("mps")
    return torch.device("cpu")


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


def _draw(cfg, model_cfg, batches, images, labels, step, T, device, ranks=None):
    """This rank's shard of the batch of step `step`: x0 in [-1, 1], labels (some dropped), t and eps.

    t, eps and the dropped labels are drawn for the whole global batch on every rank, then sliced, so the
    global batch is the single-process one whatever the number of processes."""
    idx = batches.indices(step)
    g = batches.generator(step)
    t = torch.randint(0, T, (len(idx),), generator=g)
    eps = torch.randn((len(idx), *images.shape[1:]), generator=g)  # (B, C, H, W)
    mine = distributed.shard(ranks, len(idx))
    x0 = to_model_range(images[idx[mine]])  # (B / world_size, C, H, W)
    y = None
    if model_cfg.num_classes:
        y = labels[idx].clone()
        y[torch.rand(len(idx), generator=g) < cfg.label_dropout] = model_cfg.num_classes  # "no label"
        y = y[mine].to(device)
    return x0.to(device), y, t[mine].to(device), eps[mine].to(device)


@dataclass
class _Run:
    """What one training run holds: set up once, then advanced by _step one optimizer step at a time."""
    cfg: TrainConfig
    model_cfg: UNetConfig
    ranks: distributed.Ranks | None
    device: torch.device
    schedule: Schedule
    images: torch.Tensor
    labels: torch.Tensor
    model: UNet
    ema: UNet
    opt: torch.optim.Optimizer
    path: Path  # out_dir/last.pt
    step: int = 0
    history: list = field(default_factory=list)  # rows [step, loss, lr, images/s]
    elapsed: float = 0.0
    net: torch.nn.Module | None = None  # what forward and backward run through: the model, or DDP around it
    batches: Batches | None = None


def _payload(run: _Run) -> dict:
    return {"model_config": run.model_cfg.to_dict(), "schedule": run.schedule.to_dict(),
            "sampling": recommended_sampling(run.model_cfg, run.cfg.label_dropout,
                                             epochs_of(run.step, len(run.images), run.cfg.batch_size)).to_dict(),
            "model": run.model.state_dict(), "ema": run.ema.state_dict(), "optimizer": run.opt.state_dict(),
            "step": run.step, "train_config": asdict(run.cfg), "rng": {"torch": torch.get_rng_state()},
            "history": run.history,
            "meta": {"elapsed_s": run.elapsed, "hardware": platform.processor() or platform.machine(),
                     "torch": str(torch.__version__), "processes": run.ranks.world_size if run.ranks else 1}}


def train(cfg: TrainConfig, model_cfg: UNetConfig = UNetConfig(), *, resume: bool = False, callback=None,
          progress: bool = True, data=None) -> dict:
    """Train and return the final checkpoint dict (also saved to out_dir/last.pt).

    data: optional (images uint8 (N, C, H, W), labels (N,)) instead of loading cfg.dataset.
    callback(step, loss, model, ema): called after every optimizer step (for plots and previews); loss is the
    global batch's. Returning False stops the run there: its checkpoint is saved and returned. Under torchrun it runs
    on every rank (check distributed.is_main_process() before plotting; a stop must come from every rank).
    """
    ranks = distributed.launched()
    distributed.check_batch_size(cfg.batch_size, ranks)
    device = pick_device(cfg.device, ranks)
    with distributed.session(ranks, device), distributed.run_folder(cfg.out_dir, ranks), ExitStack() as stack:
        run = _new_run(cfg, model_cfg, ranks, device, resume=resume, data=data)
        # closed however the run ends: an interrupted run's bar stops at its last step, not when it is collected
        bar = stack.enter_context(_progress_bar(run)) if progress and distributed.is_main(ranks) else None
        window, t_start = [], time.time()
        while run.step < run.cfg.steps:
            loss = _step(run)
            window.append(loss)
            if run.step % run.cfg.log_every == 0 or run.step == run.cfg.steps:
                _log(run, window, time.time() - t_start, bar)
                window, t_start = [], time.time()
            if bar:
                bar.update(1)
            saved = run.step % run.cfg.ckpt_every == 0 or run.step == run.cfg.steps
            if saved:
                _save(run)
            if callback and callback(run.step, loss, run.model, run.ema) is False:  # asked to stop here
                if not saved:
                    _save(run)
                break
        return _payload(run)


def _new_run(cfg, model_cfg, ranks, device, *, resume, data) -> _Run:
    """Model, EMA and optimizer, fresh, fine-tuned from --init, or restored from out_dir/last.pt."""
    torch.manual_seed(cfg.seed)  # the initial weights, the same on every rank
    schedule = Schedule.build(cfg.schedule, cfg.T)
    images, labels = data if data is not None else load_images(cfg.dataset, cfg.data_root, train=True)
    if ranks is not None and len(images) < cfg.batch_size:
        raise ValueError(f"batch_size {cfg.batch_size} is larger than the data ({len(images)} images); "
                         f"on several processes every global batch must be full")
    model = UNet(model_cfg).to(device)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    run = _Run(cfg, model_cfg, ranks, device, schedule, images, labels, model, ema, opt,
               path=Path(cfg.out_dir) / "last.pt")
    if resume:
        run.step, run.history, run.elapsed, init = _restore(run.path, model, ema, opt, model_cfg, ranks)
        run.cfg = replace(cfg, init=cfg.init or init)  # a resumed fine-tuning run still records where it began
    elif cfg.init:
        _init_from(checkpoint.resolve(cfg.init), model, ema, model_cfg, schedule, ranks)
    run.net = distributed.wrap(model, ranks, device)
    run.batches = Batches(len(images), cfg.batch_size, cfg.seed)
    return run


def _step(run: _Run) -> float:
    """One optimizer step of Alg. 1 on this rank's shard; returns the loss over the global batch."""
    cfg, step = run.cfg, run.step
    x0, y, t, eps = _draw(cfg, run.model_cfg, run.batches, run.images, run.labels, step, run.schedule.T,
                          run.device, run.ranks)
    for group in run.opt.param_groups:
        group["lr"] = lr_at(cfg, step)
    with torch.autocast(run.device.type, dtype=torch.bfloat16, enabled=cfg.amp and run.device.type == "cuda"):
        loss = diffusion_loss(run.net, run.schedule, x0, t, eps, y, cfg.min_snr_gamma)  # Eq. 14, this shard's mean
    global_loss = distributed.mean_over_ranks(loss.detach(), run.ranks)  # equal shards: the global batch mean
    if not torch.isfinite(global_loss):  # every rank sees the same value, so all ranks stop together
        raise TrainingDiverged(f"loss became {global_loss.item()} at step {step}; stopped without saving, so the "
                               f"last good checkpoint ({run.path}) is untouched. "
                               f"Lower --lr or --grad-clip and --resume.")
    run.opt.zero_grad(set_to_none=True)
    loss.backward()  # under DDP the gradients are averaged over ranks: the global batch's gradient
    torch.nn.utils.clip_grad_norm_(run.model.parameters(), cfg.grad_clip)
    run.opt.step()
    ema_update(run.ema, run.model, ema_decay_at(step, cfg.ema_decay))
    run.step += 1
    return global_loss.item()


def _progress_bar(run: _Run):
    from tqdm.auto import tqdm
    return tqdm(total=run.cfg.steps, initial=run.step, desc="train", unit="step")


def _log(run: _Run, window: list, dt: float, bar) -> None:
    """A history row [step, mean loss, lr, images/s] over the steps since the last row."""
    cfg = run.cfg
    images_per_s = len(window) * cfg.batch_size / dt  # the global batch: all processes together
    run.history.append([run.step, sum(window) / len(window), lr_at(cfg, run.step - 1), images_per_s])
    run.elapsed += dt
    if bar:
        bar.set_postfix(loss=f"{run.history[-1][1]:.4f}", img_s=f"{run.history[-1][3]:.0f}")


def _save(run: _Run) -> None:
    """Rank 0 writes (atomically); the other ranks wait for it and share its error, if any."""
    distributed.on_main(run.ranks, lambda: checkpoint.save(_payload(run), run.path))


def _check_model_config(ckpt: dict, model_cfg, where: str, fix: str) -> None:
    if ckpt["model_config"] != model_cfg.to_dict():
        raise checkpoint.CheckpointError(f"{where} was trained with model config {ckpt['model_config']}, "
                                         f"not {model_cfg.to_dict()}; {fix}")


def _init_from(path: Path, model, ema, model_cfg, schedule, ranks=None) -> None:
    """Model and EMA both start at the EMA weights of `path` (a release export or a run's last.pt)."""
    ckpt = distributed.on_main(ranks, checkpoint.load, path, share=True)  # rank 0 reads, every rank gets it
    _check_model_config(ckpt, model_cfg, f"--init {path}", "pass the same model flags")
    if ckpt["schedule"] != schedule.to_dict():
        raise checkpoint.CheckpointError(f"--init {path} was trained with schedule {ckpt['schedule']}, "
                                         f"not {schedule.to_dict()}; pass the same --schedule and --T")
    model.load_state_dict(ckpt["ema"])
    ema.load_state_dict(ckpt["ema"])


def _restore(path: Path, model, ema, opt, model_cfg, ranks=None):
    ckpt = distributed.on_main(ranks, _load_last, path, share=True)  # rank 0 reads, every rank gets it
    _check_model_config(ckpt, model_cfg, str(path), "resume with the same model flags")
    model.load_state_dict(ckpt["model"])
    ema.load_state_dict(ckpt["ema"])
    opt.load_state_dict(ckpt["optimizer"])
    torch.set_rng_state(ckpt["rng"]["torch"])
    return (ckpt["step"], ckpt["history"], ckpt.get("meta", {}).get("elapsed_s", 0.0),
            ckpt.get("train_config", {}).get("init"))


def _load_last(path: Path) -> dict:
    if not path.is_file():
        raise checkpoint.CheckpointError(f"--resume given but there is no checkpoint at {path}; "
                                         f"check --out (the run's folder) or start without --resume")
    return checkpoint.load(path)
