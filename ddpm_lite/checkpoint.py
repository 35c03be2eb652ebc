"""Checkpoints: one plain dict that rebuilds model and schedule, written atomically, read with weights_only.

Layout: {"format": "ddpm-lite", "version": 1, "model_config": {...}, "schedule": {"kind", "T"},
"ema": state_dict, optionally "sampling" (the SamplerSettings it recommends) and "prediction" ("eps" when absent;
"v" for a distilled student, distill.py), and for training checkpoints
"model", "optimizer", "step", "rng", "train_config", "history"}. A release export keeps only the EMA weights.
A progress snapshot (lab/snapshots.py) stores them in float16 and adds "progress"; `load` returns float32 weights.
Whole modules are never pickled. `read` is the one safe loader for every file ddpm-lite writes or ships.
"""
from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path

import torch

from .errors import CheckpointError
from .samplers import PREDICTIONS, SamplerSettings
from .schedule import Schedule
from .unet import UNet, UNetConfig

FORMAT, VERSION = "ddpm-lite", 1
RELEASE_NAME, CLASSIFIER_NAME = "ddpm_mnist.pt", "mnist_classifier.pt"
CHECKOUT = Path(__file__).parent.parent / "checkpoints"  # the shipped files beside a source tree (not installed)


def shipped(name: str) -> Path:
    """A file shipped with the package: in an install ddpm_lite.weights, in a checkout the checkpoints/ beside it."""
    try:
        from . import weights  # only where it is asked for: a source tree on sys.path has no such package
        return Path(weights.__file__).parent / name
    except ImportError:
        if (CHECKOUT / name).exists():
            return CHECKOUT / name
        raise CheckpointError(f"the shipped file {name} is not installed with ddpm_lite; install the package "
                              f"(pip install .) or pass a checkpoint path") from None


def default_checkpoint() -> Path:
    """The shipped release checkpoint (or DDPM_LITE_CHECKPOINT)."""
    return Path(os.environ.get("DDPM_LITE_CHECKPOINT") or shipped(RELEASE_NAME))


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


def read(path, fmt: str = FORMAT, what: str = "checkpoint", fix: str = "export one with `python -m ddpm_lite "
         "export`", map_location="cpu") -> dict:
    """Read a file ddpm-lite wrote, safely (weights_only=True), checking its format tag and that its tensors are
    finite; one clear CheckpointError for each way it can fail."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} {path} does not exist; {fix} or pass the path of one")
    ckpt = _torch_load(path, what, map_location)
    if not isinstance(ckpt, dict) or ckpt.get("format") != fmt:
        raise CheckpointError(f"{path} is not a ddpm-lite {what} (no format tag {fmt!r}); {fix}")
    if ckpt.get("version", 0) > VERSION:
        raise CheckpointError(f"{path} has format version {ckpt['version']}, newer than this ddpm-lite "
                              f"reads ({VERSION}); upgrade ddpm-lite")
    _check_finite(ckpt, path)
    return ckpt


def _torch_load(path: Path, what: str, map_location):
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; anything else is not ours
        raise CheckpointError(f"{path} is not a {what} at all (not a PyTorch file, or cut short); pass a file "
                              f"written by ddpm-lite, or re-download it")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        why = next((ln.strip() for ln in str(e).splitlines() if "Unsupported global" in ln), None)
        if why is None:
            raise CheckpointError(f"{path} is not a readable {what} ({str(e).splitlines()[0]})") from None
        raise CheckpointError(f"{path} holds Python objects that a safe load refuses ({why}); "
                              f"only trusted ddpm-lite files of plain tensors and dicts can be read") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError) as e:
        first = (str(e).splitlines() or [type(e).__name__])[0]  # an empty file raises EOFError with no message
        raise CheckpointError(f"{path} is not a readable {what} (truncated or corrupt: {first}); "
                              f"re-download or re-export it") from None


def _check_finite(tree, path, where: str = "") -> None:
    """Refuse NaN or infinite weights: they would draw pictures of nothing, silently."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            _check_finite(value, path, f"{where}.{key}" if where else str(key))
    elif isinstance(tree, torch.Tensor) and tree.is_floating_point() and not torch.isfinite(tree).all():
        raise CheckpointError(f"{path} holds non-finite values (NaN or inf) in {where}; the run that wrote it "
                              f"diverged: use an earlier checkpoint or retrain with a lower --lr")


def load(path, map_location="cpu") -> dict:
    """Read a ddpm-lite model checkpoint (release export, progress snapshot or training state) with `read`; weights
    stored in half precision (progress snapshots) come back as float32, the precision the model computes in."""
    ckpt = read(path, FORMAT, "checkpoint", "train one with `python -m ddpm_lite train`", map_location)
    for key in ("ema", "model"):
        if key in ckpt:
            ckpt[key] = {k: v.float() if v.dtype in (torch.float16, torch.bfloat16) else v
                         for k, v in ckpt[key].items()}
    return ckpt


def build(ckpt: dict, weights: str = "ema", device="cpu"):
    """(model in eval mode, schedule) from a loaded checkpoint; weights is "ema" or "model".

    The model carries the checkpoint's recommended sampling settings as model.sampling (SamplerSettings), which
    sample() uses for every setting its caller leaves out."""
    model = UNet(UNetConfig(**ckpt["model_config"]))
    model.load_state_dict(ckpt[weights] if weights in ckpt else ckpt["ema"])
    model.sampling = sampling_settings(ckpt)
    model.prediction = ckpt.get("prediction", "eps")
    if model.prediction not in PREDICTIONS:
        raise CheckpointError(f"the checkpoint predicts {model.prediction!r}, which this ddpm-lite cannot sample "
                              f"(it knows {', '.join(PREDICTIONS)}); upgrade ddpm-lite")
    return model.to(device).eval(), Schedule.from_dict(ckpt["schedule"])


def sampling_settings(ckpt: dict) -> SamplerSettings:
    """The checkpoint's recommended SamplerSettings (plain defaults when it has none)."""
    try:
        return SamplerSettings.from_dict(ckpt.get("sampling") or {})
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"the checkpoint's sampling settings are not valid ({e}); re-export it") from None


def resolve(path) -> Path:
    """A checkpoint path, or the name of a shipped file ("ddpm_mnist_4step.pt") where no such path exists."""
    if path is None:
        return default_checkpoint()
    path = Path(path)
    if path.exists() or path.name != str(path):
        return path
    try:
        found = shipped(path.name)
    except CheckpointError:  # no installed package: the path as given, whose absence load() reports
        return path
    return found if found.is_file() else path


def load_model(path=None, device="cpu", weights: str = "ema"):
    """Load a checkpoint file, or a shipped one by name (default: the release), into (model, schedule)."""
    return build(load(resolve(path)), weights=weights, device=device)


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


def export_ema(src, dst, keep=("history", "train_config", "step", "sampling", "prediction", "distill"),
               sampling=None) -> Path:
    """A small release file: EMA weights, configs and training metadata, no optimizer or raw weights.
    sampling: SamplerSettings to recommend in it (default: the source's own, if any)."""
    ckpt = load(src)
    payload = {k: ckpt[k] for k in ("model_config", "schedule", "ema", *keep) if k in ckpt}
    if sampling is not None:
        payload["sampling"] = sampling.to_dict()
    return save(payload, dst)
