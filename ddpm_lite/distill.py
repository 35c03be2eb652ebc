"""Progressive distillation (Salimans & Ho 2022, Algorithm 2): a student learns to take in one deterministic DDIM step
what its teacher takes in two, and becomes the next stage's teacher, so each stage halves the sampling steps.

The grids are nested (samplers.timestep_pairs, grid "trailing"): the student's N steps are every other step of the
teacher's 2N. For a training digit x0 with label y (some dropped to "no label", so guidance keeps working) and a
student step t -> t' whose teacher midpoint is t'', the teacher walks z_t -> z_t'' -> z_t' with DDIM (eta = 0), and
the target is the x~ with which ONE DDIM step from z_t lands on z_t' (Algorithm 2, line 9):

    z_t' = alpha_t' x~ + sigma_t' (z_t - alpha_t x~) / sigma_t   =>   x~ = (z_t' - (sigma_t'/sigma_t) z_t) /
                                                                          (alpha_t' - (sigma_t'/sigma_t) alpha_t)

with alpha = sqrt(alpha_bar), sigma = sqrt(1 - alpha_bar). The student predicts v = alpha eps - sigma x0 (Sec. 4):
eps-prediction's x0 = (z - sigma eps) / alpha divides by alpha, near 0 at the first step, so a small error in eps is
a large one in x0. Its loss ||v~ - v||^2 is (1 + SNR) ||x~ - x0||^2, the paper's "SNR+1" weighting; an
eps-student (prediction="eps", for comparison) uses "truncated SNR", max(SNR, 1) ||x~ - x0||^2.

A run is resumable like train(): each stage's state is written atomically to out_dir/stage_N.pt, each finished
stage's EMA student to out_dir/student_N.pt, and the same command run again continues where it stopped.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from . import checkpoint
from .data import load_images, to_model_range
from .diffusion import v_from_x0, x0_from_eps
from .errors import CheckpointError, TrainingDiverged
from .parallel.distributed import acquire_run_folder, release_run_folder
from .samplers import PREDICTIONS, SamplerSettings, ddim_step, predict, timestep_pairs
from .recipe import ema_decay_at
from .training import Batches, ema_update, pick_device

TEACHER_STEPS = SamplerSettings(sampler="ddim", eta=0.0, grid="trailing")  # the deterministic path distilled


@dataclass(frozen=True)
class DistillConfig:
    teacher: str | None = None  # a checkpoint path or shipped name; None: the release
    start_steps: int = 32  # the teacher's DDIM steps; stage 1's student takes half
    final_steps: int = 4  # the last stage's student
    steps_per_stage: int = 1200  # optimizer steps of each stage
    batch_size: int = 64
    lr: float = 2e-4  # AdamW; warm-up, then linear decay to 0 within each stage
    warmup: int = 20
    grad_clip: float = 1.0
    ema_decay: float = 0.999  # the cap of recipe.ema_decay_at's warm-up
    label_dropout: float = 0.1  # share of labels replaced by "no label", as in training
    prediction: str = "v"
    seed: int = 0
    dataset: str = "mnist"
    data_root: str | None = None
    out_dir: str = "runs/distill"
    ckpt_every: int = 200
    device: str = "auto"

    def __post_init__(self):
        for name in ("start_steps", "final_steps", "steps_per_stage", "batch_size", "ckpt_every"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        ratio = self.start_steps / self.final_steps
        if ratio < 2 or ratio != 2 ** round(math.log2(ratio)):
            raise ValueError(f"start_steps / final_steps must be 2, 4, 8, ... (each stage halves the steps), got "
                             f"{self.start_steps} / {self.final_steps}")
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {', '.join(PREDICTIONS)}, got {self.prediction!r}")
        if not (self.lr > 0 and self.grad_clip > 0 and 0 <= self.ema_decay < 1 and 0 <= self.label_dropout <= 1):
            raise ValueError("lr and grad_clip must be > 0, ema_decay in [0, 1), label_dropout in [0, 1]")

    def stages(self) -> list[int]:
        """The students' steps, stage by stage: start_steps / 2, / 4, ... down to final_steps."""
        return [self.start_steps >> k for k in range(1, round(math.log2(self.start_steps / self.final_steps)) + 1)]

    def recorded(self) -> dict:
        """The settings that make the result: what a resumed run must share, and what an export records."""
        return {k: v for k, v in asdict(self).items() if k not in ("out_dir", "data_root", "device", "ckpt_every")}


def ddim_to(model, schedule, z, t, t_next, labels, settings: SamplerSettings = TEACHER_STEPS) -> torch.Tensor:
    """One deterministic DDIM step from z at t to t_next (both (B,), each sample its own), as the sampler takes it."""
    ab, ab_next = schedule.alpha_bar_at(t), schedule.alpha_bar_at(t_next)
    eps, x0 = predict(model, settings, z, t, ab, labels)
    return ddim_step(x0, z, eps, ab, ab_next, torch.zeros_like(z), eta=0.0)


def single_step_x0(ab, ab_next, z, z_next) -> torch.Tensor:
    """x~: the x0 with which one DDIM step (eta = 0) from z at ab lands on z_next at ab_next (Algorithm 2, line 9)."""
    ratio = ((1 - ab_next) / (1 - ab)).sqrt()
    return (z_next - ratio * z) / (ab_next.sqrt() - ratio * ab.sqrt())


def student_steps(T: int, n: int, i: torch.Tensor):
    """(t, t'', t') of the student's steps i (B,) on the grid of n steps: start, the teacher's midpoint, end."""
    ts = torch.tensor([t for t, _ in timestep_pairs(T, 2 * n, grid="trailing")] + [-1])
    return ts[2 * i], ts[2 * i + 1], ts[2 * i + 2]


@torch.no_grad()
def teacher_target(teacher, schedule, z, t, t_mid, t_next, labels) -> torch.Tensor:
    """x~ from two teacher steps z_t -> z_t'' -> z_t'."""
    z_next = ddim_to(teacher, schedule, ddim_to(teacher, schedule, z, t, t_mid, labels), t_mid, t_next, labels)
    return single_step_x0(schedule.alpha_bar_at(t), schedule.alpha_bar_at(t_next), z, z_next)


def student_loss(student, prediction: str, schedule, z, t, labels, x_target) -> torch.Tensor:
    """Mean over the batch: ||v~ - v||^2 for a v-student, max(SNR, 1) ||x~ - x0||^2 for an eps-student."""
    ab, out = schedule.alpha_bar_at(t), student(z, t, labels).float()
    if prediction == "v":
        return F.mse_loss(out, v_from_x0(ab, z, x_target))
    per_sample = (x0_from_eps(ab, z, out) - x_target).pow(2).mean(dim=(1, 2, 3))
    return (per_sample * (ab / (1 - ab)).clamp(min=1).flatten()).mean()


def distill_batch(cfg: DistillConfig, batches: Batches, images, labels, step: int, n: int, T: int, num_classes):
    """The batch of `step`, a pure function of (seed, stage, step): x0, labels (some dropped), student step i, eps."""
    idx, g = batches.indices(step), batches.generator(step)
    i = torch.randint(0, n, (len(idx),), generator=g)
    eps = torch.randn((len(idx), *images.shape[1:]), generator=g)
    y = None
    if num_classes:
        y = labels[idx].clone()
        y[torch.rand(len(idx), generator=g) < cfg.label_dropout] = num_classes
    return to_model_range(images[idx]), y, i, eps


def lr_at(cfg: DistillConfig, step: int) -> float:
    return cfg.lr * min((step + 1) / max(1, cfg.warmup), 1 - step / cfg.steps_per_stage)


@dataclass
class Stage:
    """One stage's teacher, student, EMA and optimizer, advanced by train_step."""
    cfg: DistillConfig
    n: int  # the student's steps
    teacher: torch.nn.Module
    schedule: object
    student: torch.nn.Module
    ema: torch.nn.Module
    opt: torch.optim.Optimizer
    batches: Batches
    step: int = 0
    history: list = field(default_factory=list)  # rows [step, loss]
    elapsed: float = 0.0


def new_stage(cfg: DistillConfig, n: int, teacher_path, n_images: int, device) -> Stage:
    """The student and its EMA start as the teacher's weights (Algorithm 2, line 3)."""
    teacher, schedule = checkpoint.load_model(teacher_path, device=device)
    teacher.requires_grad_(False)
    student = copy.deepcopy(teacher).train().requires_grad_(True)
    ema = copy.deepcopy(teacher).requires_grad_(False)
    student.prediction = ema.prediction = cfg.prediction
    opt = torch.optim.AdamW(student.parameters(), lr=cfg.lr, weight_decay=0.0)
    return Stage(cfg, n, teacher, schedule, student, ema, opt, Batches(n_images, cfg.batch_size, cfg.seed * 1009 + n))


def train_step(st: Stage, images, labels) -> float:
    """One optimizer step of Algorithm 2; returns the batch's loss."""
    device, T = next(st.student.parameters()).device, st.schedule.T
    x0, y, i, eps = distill_batch(st.cfg, st.batches, images, labels, st.step, st.n, T,
                                  st.student.config.num_classes)
    t, t_mid, t_next = (s.to(device) for s in student_steps(T, st.n, i))
    x0, eps, y = x0.to(device), eps.to(device), None if y is None else y.to(device)
    ab = st.schedule.alpha_bar_at(t)
    z = ab.sqrt() * x0 + (1 - ab).sqrt() * eps  # Eq. 4
    x_target = teacher_target(st.teacher, st.schedule, z, t, t_mid, t_next, y)
    for group in st.opt.param_groups:
        group["lr"] = lr_at(st.cfg, st.step)
    loss = student_loss(st.student, st.cfg.prediction, st.schedule, z, t, y, x_target)
    if not torch.isfinite(loss):
        raise TrainingDiverged(f"the distillation loss became {loss.item()} at step {st.step} of the {st.n}-step "
                               f"stage; its last state is untouched: lower --lr and run the command again")
    st.opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(st.student.parameters(), st.cfg.grad_clip)
    st.opt.step()
    ema_update(st.ema, st.student, ema_decay_at(st.step, st.cfg.ema_decay))
    st.step += 1
    return loss.item()


def student_payload(st: Stage, teacher_name: str) -> dict:
    """The small file a stage ends with: EMA weights, v-prediction, its own sampling (its steps), its making."""
    k = st.student.config.num_classes
    sampling = replace(TEACHER_STEPS, steps=st.n, labels="random" if k else None)
    return {"model_config": st.student.config.to_dict(), "schedule": st.schedule.to_dict(),
            "ema": st.ema.state_dict(), "prediction": st.cfg.prediction, "sampling": sampling.to_dict(),
            "distill": {"teacher": teacher_name, "teacher_steps": 2 * st.n, "steps": st.n, "stage_steps": st.step,
                        "config": st.cfg.recorded(), "history": st.history, "elapsed_s": st.elapsed}}


def state_payload(st: Stage) -> dict:
    return {"model_config": st.student.config.to_dict(), "schedule": st.schedule.to_dict(), "n": st.n,
            "ema": st.ema.state_dict(), "model": st.student.state_dict(), "optimizer": st.opt.state_dict(),
            "step": st.step, "history": st.history, "elapsed_s": st.elapsed, "config": st.cfg.recorded()}


def check_same_run(cfg: DistillConfig, path: Path, recorded) -> None:
    if recorded != cfg.recorded():
        raise CheckpointError(f"{path} belongs to a distillation run with other settings ({recorded}); "
                              f"run with those settings, or give another --out")


def restore(st: Stage, path: Path) -> None:
    state = checkpoint.load(path)
    check_same_run(st.cfg, path, state.get("config"))
    st.student.load_state_dict(state["model"])
    st.ema.load_state_dict(state["ema"])
    st.opt.load_state_dict(state["optimizer"])
    st.step, st.history, st.elapsed = state["step"], state["history"], state["elapsed_s"]


def run_stage(st: Stage, images, labels, state_path: Path, callback=None, bar=None) -> None:
    """Train the stage to its end, writing its state every ckpt_every steps (atomically)."""
    while st.step < st.cfg.steps_per_stage:
        t0 = time.time()
        loss = train_step(st, images, labels)
        st.elapsed += time.time() - t0
        st.history.append([st.step, loss])
        if st.step % st.cfg.ckpt_every == 0 or st.step == st.cfg.steps_per_stage:
            checkpoint.save(state_payload(st), state_path)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(stage=f"{2 * st.n}->{st.n}", loss=f"{loss:.4f}")
        if callback is not None and callback(st.n, st.step, loss, st.ema) is False:
            return


def seconds_per_step(cfg: DistillConfig, images, labels, steps: int = 3) -> float:
    """This machine's time for one step of stage 1 (after one untimed step), on a throwaway copy of the stage."""
    st = new_stage(cfg, cfg.stages()[0], checkpoint.resolve(cfg.teacher), len(images), pick_device(cfg.device))
    train_step(st, images, labels)
    t0 = time.time()
    for _ in range(steps):
        train_step(st, images, labels)
    return (time.time() - t0) / steps


def distill(cfg: DistillConfig, *, data=None, callback=None, progress: bool = True) -> Path:
    """Run (or continue) every stage; return the last student's file, out_dir/student_{final_steps}.pt.

    data: optional (images uint8 (N, C, H, W), labels (N,)) instead of loading cfg.dataset.
    callback(n, step, loss, ema) after every step; returning False stops the run (its state is saved first)."""
    images, labels = data if data is not None else load_images(cfg.dataset, cfg.data_root, train=True)
    out, device = Path(cfg.out_dir), pick_device(cfg.device)
    fd, lock = acquire_run_folder(out)
    try:
        teacher, bar = checkpoint.resolve(cfg.teacher), None
        if progress:
            from tqdm.auto import tqdm
            bar = tqdm(total=len(cfg.stages()) * cfg.steps_per_stage, desc="distill", unit="step")
        for n in cfg.stages():
            student_path, state_path = out / f"student_{n}.pt", out / f"stage_{n}.pt"
            if not student_path.is_file():
                st = new_stage(cfg, n, teacher, len(images), device)
                if state_path.is_file():
                    restore(st, state_path)
                if bar is not None:
                    bar.update(st.step)
                run_stage(st, images, labels, state_path, callback, bar)
                if st.step < cfg.steps_per_stage:
                    checkpoint.save(state_payload(st), state_path)
                    return state_path
                checkpoint.save(student_payload(st, Path(str(teacher)).name), student_path)
                state_path.unlink(missing_ok=True)
            else:
                check_same_run(cfg, student_path, checkpoint.load(student_path)["distill"]["config"])
                if bar is not None:
                    bar.update(cfg.steps_per_stage)
            teacher = student_path
        return Path(teacher)
    finally:
        if bar is not None:
            bar.close()
        release_run_folder(fd, lock)
