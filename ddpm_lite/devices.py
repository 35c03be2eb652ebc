"""Which torch devices this machine has. A leaf: the command line checks --device with it, training picks with it."""
from __future__ import annotations

import torch


def mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def missing_device(name: str) -> str | None:
    """Why `name` (cpu, cuda, cuda:N, mps) is not a device of this machine, or None when it is."""
    try:
        device = torch.device(name)
    except RuntimeError:
        return f"{name!r} is not a device; use cpu, cuda, cuda:N or mps"
    if device.type == "cuda" and not torch.cuda.is_available():
        return (f"{name!r}: PyTorch sees no CUDA GPU on this machine; use cpu (or, on a machine with an NVIDIA GPU, "
                f"a CUDA build of torch)")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        return f"{name!r}: this machine has {torch.cuda.device_count()} CUDA device(s), numbered from 0"
    if device.type == "mps" and not mps_available():
        return f"{name!r}: Apple's MPS is not available on this machine; use cpu"
    return None
