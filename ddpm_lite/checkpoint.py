"""Checkpoints: one plain dict that rebuilds model and schedule, written atomically, read with weights_only.

Layout: {"format": "ddpm-lite", "version": 1, "model_config": {...}, "schedule": {"kind", "T"},
"ema": state_dict, and for training checkpoints "model", "optimizer", "step", "rng", "train_config",
"history"}. A release export keeps only the EMA weights. Whole modules are never pickled.
"""
from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path

import torch

from .schedule import Schedule
from .unet import UNet, UNetConfig

FORMAT, VERSION = "ddpm-lite", 1
RELEASE = Path(__file__).resolve().parent.parent / "checkpoints" / "ddpm_mnist.pt"


class CheckpointError(RuntimeError):
    pass


def default_checkpoint() -> Path:
    """The shipped release checkpoint (or DDPM_LITE_CHECKPOINT)."""
    return Path(os.environ.get("DDPM_LITE_CHECKPOINT") or RELEASE)


def save(payload: dict, path) -> Path:
    """Write to a temporary file in the same folder, then rename: a crash never leaves a half file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"format": FORMAT, "version": VERSION, **payload}, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a released file should be readable by all
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load(path, map_location="cpu") -> dict:
    """Read a ddpm-lite checkpoint safely (weights_only=True), with one clear error for each way it fails."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; train one with `python -m ddpm_lite train` "
                              f"or pass --checkpoint PATH")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        why = next((ln.strip() for ln in str(e).splitlines() if "Unsupported global" in ln), "pickled objects")
        raise CheckpointError(f"{path} holds Python objects that a safe load refuses ({why}); "
                              f"only trusted ddpm-lite checkpoints of plain tensors and dicts can be read") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as e:
        first = (str(e).splitlines() or [type(e).__name__])[0]  # an empty file raises EOFError with no message
        raise CheckpointError(f"{path} is not a readable checkpoint (truncated or corrupt: {first}); "
                              f"re-download or re-export it") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a ddpm-lite checkpoint (no format tag {FORMAT!r}); "
                              f"export one with `python -m ddpm_lite export`")
    if ckpt.get("version", 0) > VERSION:
        raise CheckpointError(f"{path} has format version {ckpt['version']}, newer than this ddpm-lite "
                              f"reads ({VERSION}); upgrade ddpm-lite")
    return ckpt


def build(ckpt: dict, weights: str = "ema", device="cpu"):
    """(model in eval mode, schedule) from a loaded checkpoint; weights is "ema" or "model"."""
    model = UNet(UNetConfig(**ckpt["model_config"]))
    model.load_state_dict(ckpt[weights] if weights in ckpt else ckpt["ema"])
    return model.to(device).eval(), Schedule.from_dict(ckpt["schedule"])


def load_model(path=None, device="cpu", weights: str = "ema"):
    """Load a checkpoint file (default: the shipped one) into (model, schedule)."""
    return build(load(path or default_checkpoint()), weights=weights, device=device)


def training_history(ckpt: dict, earlier=None) -> tuple[list, int]:
    """(history rows [step, loss, lr, images/s], step at which this run began) for a checkpoint.

    A run started with --init continues an earlier one; given that run's record (JSON {"step", "history"}, e.g.
    checkpoints/history_stage1.json for the release), its rows come first and this run's steps are shifted."""
    history = ckpt.get("history", [])
    if not (ckpt.get("train_config") or {}).get("init") or earlier is None or not Path(earlier).is_file():
        return history, 0
    import json
    record = json.loads(Path(earlier).read_text())
    start = record["step"]
    return record["history"] + [[row[0] + start, *row[1:]] for row in history], start


RELEASE_STAGE1 = RELEASE.parent / "history_stage1.json"  # the release was fine-tuned from this run (--init)


def export_ema(src, dst, keep=("history", "train_config", "step")) -> Path:
    """A small release file: EMA weights, configs and training metadata, no optimizer or raw weights."""
    ckpt = load(src)
    payload = {k: ckpt[k] for k in ("model_config", "schedule", "ema", *keep) if k in ckpt}
    return save(payload, dst)
