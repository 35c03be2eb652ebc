"""Datasets as in-memory tensors scaled to [-1, 1] (the one place data ranges convert; see ``to_unit``).

MNIST, FashionMNIST and CIFAR-10 through torchvision, or a folder of your own pictures: one subfolder per class
(labels 0, 1, ... in the sorted order of the subfolder names) or all pictures in the folder itself (no classes,
every label 0). The data root comes from the argument, else the DDPM_LITE_DATA environment variable, else
~/.cache/ddpm_lite/data.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from .errors import DataNotFoundError

DATASETS = ("mnist", "fashion-mnist", "cifar10", "folder")
DEFAULT_ROOT = Path.home() / ".cache" / "ddpm_lite" / "data"
CLASS_NAMES = {  # label k of each torchvision dataset is CLASS_NAMES[name][k]
    "mnist": tuple("0123456789"),
    "fashion-mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                      "Ankle boot"),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
}
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


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
    if not x.is_floating_point():
        raise ValueError(f"images must be uint8 pixels or floats in [-1, 1], got {x.dtype}")
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
        _remove_if_empty(root / cls.__name__ / "raw", root / cls.__name__)
        raise DataNotFoundError(_missing_message(cls.__name__, root, f"the download failed: {e}")) from None


def _remove_if_empty(*folders: Path) -> None:
    """A failed download leaves torchvision's empty NAME/raw folders behind; remove them, only if empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:  # not empty, not there, or not ours to remove
            pass


def _missing_message(name: str, root: Path, why: str) -> str:
    return (f"{name} was not found under {root} and {why}. Either connect to the internet and run again "
            f"(it downloads automatically), or copy the files to {root / name}/raw (torchvision's layout), "
            f"or point to a folder that holds {name}/ with --data-root DIR or DDPM_LITE_DATA=DIR.")


def folder_classes(root) -> list[str]:
    """The classes of a picture folder: its subfolders' names, sorted (label k is the k-th); [] when it has none.
    Hidden folders (.ipynb_checkpoints, .git) are not classes."""
    return sorted(p.name for p in Path(root).iterdir() if p.is_dir() and not p.name.startswith("."))


def class_names(name: str, root=None) -> list[str]:
    """What each label means: label k is class_names(...)[k]; a flat folder has no classes ([])."""
    return folder_classes(data_root(root)) if name == "folder" else list(CLASS_NAMES[name])


def folder_files(root: Path) -> list[tuple[Path, int]]:
    """(picture, label) for every picture under root, in sorted order: label k for the k-th class subfolder (and
    any folder inside it), or label 0 for each picture in a folder without subfolders. Beside class subfolders,
    loose pictures belong to no class and are left out, as torchvision's ImageFolder does."""
    classes = folder_classes(root)
    if not classes:
        return [(p, 0) for p in _pictures(root, root)]
    files = {c: _pictures(root / c, root) for c in classes}
    empty = [c for c, found in files.items() if not found]
    if empty:
        raise DataNotFoundError(f"class folder(s) {', '.join(empty)} in {root} hold no pictures "
                                f"({', '.join(PICTURE_SUFFIXES)}); add pictures or remove the folder")
    return [(p, k) for k, c in enumerate(classes) for p in files[c]]


def _pictures(folder: Path, root: Path) -> list[Path]:
    """The picture files in folder and the folders inside it, sorted, leaving out hidden files and folders."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in PICTURE_SUFFIXES and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(root).parts))


def _folder_images(root: Path, image_size: int, channels: int):
    from PIL import Image
    from torchvision import transforms
    if not root.is_dir():
        raise DataNotFoundError(f"image folder {root} does not exist; pass --data-root with a folder of pictures "
                                f"(one subfolder per class, or all in the folder itself)")
    files = folder_files(root)
    if not files:
        raise DataNotFoundError(f"image folder {root} holds no pictures; put .png or .jpg files in it, one "
                                f"subfolder per class or all in the folder itself")
    grey = [transforms.Grayscale()] if channels == 1 else []
    tf = transforms.Compose([*grey, transforms.Resize(image_size), transforms.CenterCrop(image_size),
                             transforms.PILToTensor()])  # the shorter side to image_size, then the middle square
    images = []
    for path, _ in files:
        try:
            with Image.open(path) as im:
                images.append(tf(im.convert("RGB")))  # (C, H, W) uint8; RGB first, as torchvision's loader does
        except OSError as e:
            raise DataNotFoundError(f"{path} is not a picture that can be read ({e}); remove it or save it again "
                                    f"as PNG or JPEG") from None
    return torch.stack(images), torch.tensor([label for _, label in files])  # (N, C, H, W) uint8, (N,) int64


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
