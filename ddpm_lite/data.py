"""Datasets as in-memory tensors scaled to [-1, 1] (the one place data ranges convert; see ``to_unit``).

MNIST, FashionMNIST and CIFAR-10 through torchvision, or a folder of your own pictures. The data root
comes from the argument, else the DDPM_LITE_DATA environment variable, else ~/.cache/ddpm_lite/data.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from .errors import DataNotFoundError

DATASETS = ("mnist", "fashion-mnist", "cifar10", "folder")
DEFAULT_ROOT = Path.home() / ".cache" / "ddpm_lite" / "data"


def data_root(root: str | os.PathLike | None = None) -> Path:
    return Path(root or os.environ.get("DDPM_LITE_DATA") or DEFAULT_ROOT).expanduser()


def to_model_range(x_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 pixels in 0..255 -> float in [-1, 1], the range the model sees."""
    return x_uint8.float() / 127.5 - 1


def check_images(images) -> torch.Tensor:
    """Images (N, 1 or 3, H, W) as float32 in [-1, 1]: uint8 pixels are converted, floats must already be in range."""
    x = torch.as_tensor(images)
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"images must have shape (N, 1, H, W) or (N, 3, H, W), got {tuple(x.shape)}; "
                         f"add the missing axes with images[:, None] or image[None]")
    if x.dtype == torch.uint8:
        return to_model_range(x)
    x = x.float()
    if x.min() < -1.001 or x.max() > 1.001:
        raise ValueError(f"images must be in [-1, 1], got values in [{x.min():.3g}, {x.max():.3g}]; "
                         f"convert 0..255 pixels with ddpm_lite.to_model_range")
    return x


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """Model range [-1, 1] -> [0, 1] for plots and image files (clamped)."""
    return ((x + 1) / 2).clamp(0, 1)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Model range [-1, 1] -> uint8 0..255, rounded."""
    return (to_unit(x) * 255).round().to(torch.uint8)


def _torchvision_dataset(name: str, root: Path, train: bool, download: bool | None):
    from torchvision import datasets
    cls = {"mnist": datasets.MNIST, "fashion-mnist": datasets.FashionMNIST, "cifar10": datasets.CIFAR10}[name]
    try:
        return cls(root=str(root), train=train, download=False)
    except RuntimeError:
        if download is False:
            raise DataNotFoundError(_missing_message(cls.__name__, root, "downloading is switched off")) from None
    try:
        return cls(root=str(root), train=train, download=True)
    except Exception as e:  # URLError, HTTP 403 from a mirror, no network at all
        raise DataNotFoundError(_missing_message(cls.__name__, root, f"the download failed: {e}")) from None


def _missing_message(name: str, root: Path, why: str) -> str:
    return (f"{name} was not found under {root} and {why}. Either connect to the internet and run again "
            f"(it downloads automatically), or copy the files to {root / name}/raw (torchvision's layout), "
            f"or point to a folder that holds {name}/ with --data-root DIR or DDPM_LITE_DATA=DIR.")


def _folder_images(root: Path, image_size: int, channels: int):
    from torchvision import datasets, transforms
    if not root.is_dir():
        raise DataNotFoundError(f"image folder {root} does not exist; pass --data-root with a folder of class subfolders")
    tf = transforms.Compose([transforms.Grayscale() if channels == 1 else transforms.Lambda(lambda im: im.convert("RGB")),
                             transforms.Resize(image_size), transforms.CenterCrop(image_size), transforms.PILToTensor()])
    ds = datasets.ImageFolder(str(root), transform=tf)
    images = torch.stack([img for img, _ in ds])  # (N, C, H, W) uint8
    return images, torch.tensor(ds.targets)


def load_images(name: str = "mnist", root=None, train: bool = True, download: bool | None = None,
                image_size: int = 28, channels: int = 1):
    """Return (images (N, C, H, W) uint8, labels (N,) int64) for a dataset; scale with ``to_model_range``."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    root = data_root(root)
    if name == "folder":
        return _folder_images(root, image_size, channels)
    ds = _torchvision_dataset(name, root, train, download)
    images = torch.as_tensor(ds.data)
    images = images.permute(0, 3, 1, 2) if images.dim() == 4 else images[:, None]  # (N, C, H, W)
    return images.contiguous(), torch.as_tensor(ds.targets, dtype=torch.long)
