"""Range conversions (exact), the real MNIST files, and clear errors when data is missing."""
from pathlib import Path

import pytest
import torch

from ddpm_lite.data import (DataNotFoundError, class_names, data_root, load_images, to_model_range, to_uint8,
                            to_unit)

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def test_to_model_range_maps_0_255_onto_minus_1_plus_1():
    x = to_model_range(torch.tensor([0, 127, 128, 255], dtype=torch.uint8))
    assert x.dtype == torch.float32
    assert x.tolist() == pytest.approx([-1.0, -0.5 / 127.5, 0.5 / 127.5, 1.0], abs=1e-7)


def test_to_unit_maps_model_range_to_0_1_and_clamps():
    assert to_unit(torch.tensor([-1.0, 0.0, 0.5, 1.0, -3.0, 2.0])).tolist() == [0.0, 0.5, 0.75, 1.0, 0.0, 1.0]


def test_to_uint8_rounds_and_clamps():
    u = to_uint8(torch.tensor([-1.0, 0.0, 1.0, -1 + 2 / 255, 5.0, -5.0]))
    assert u.dtype == torch.uint8
    assert u.tolist() == [0, 128, 255, 1, 255, 0]  # 0.0 -> 127.5 rounds half to even: 128


def test_every_pixel_value_survives_the_round_trip():
    u = torch.arange(256, dtype=torch.uint8)
    assert torch.equal(to_uint8(to_model_range(u)), u)


def test_real_mnist_training_set(mnist):
    images, labels = mnist
    assert images.shape == (60000, 1, 28, 28) and images.dtype == torch.uint8
    assert labels.dtype == torch.long
    assert torch.bincount(labels).tolist() == MNIST_TRAIN_COUNTS
    assert images.min() == 0 and images.max() == 255


def test_real_mnist_test_set(mnist):
    images, labels = load_images("mnist", train=False, download=False)
    assert images.shape == (10000, 1, 28, 28) and labels.shape == (10000,)


def test_missing_data_names_both_ways_to_point_at_it(tmp_path):
    with pytest.raises(DataNotFoundError) as err:
        load_images("mnist", root=tmp_path, download=False)
    message = str(err.value)
    assert "--data-root" in message and "DDPM_LITE_DATA" in message and str(tmp_path) in message
    assert "downloading is switched off" in message


def test_unknown_dataset_is_refused():
    with pytest.raises(ValueError, match=r"unknown dataset 'svhn'; choose one of mnist, fashion-mnist, cifar10"):
        load_images("svhn")


def test_data_root_prefers_argument_then_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("DDPM_LITE_DATA", str(tmp_path / "env"))
    assert data_root(tmp_path / "arg") == tmp_path / "arg"
    assert data_root() == tmp_path / "env"
    monkeypatch.delenv("DDPM_LITE_DATA")
    assert data_root().parts[-3:] == (".cache", "ddpm_lite", "data")


def test_folder_dataset_reads_class_subfolders(tmp_path):
    from PIL import Image
    for cls, value in (("cat", 10), ("dog", 200)):
        (tmp_path / cls).mkdir()
        for i in range(2):
            Image.new("L", (12, 12), value).save(tmp_path / cls / f"{i}.png")
    images, labels = load_images("folder", root=tmp_path, image_size=8, channels=1)
    assert images.shape == (4, 1, 8, 8) and images.dtype == torch.uint8
    assert labels.tolist() == [0, 0, 1, 1]
    assert images[0].unique().tolist() == [10] and images[3].unique().tolist() == [200]


def test_missing_folder_dataset_says_what_to_pass(tmp_path):
    with pytest.raises(DataNotFoundError, match="image folder .* does not exist; pass --data-root"):
        load_images("folder", root=tmp_path / "nothing")


def write_pngs(folder, pictures):
    """Write uint8 pictures (N, C, H, W) as folder/00000.png, 00001.png, ..."""
    from PIL import Image
    folder.mkdir(parents=True, exist_ok=True)
    for i, x in enumerate(pictures):
        Image.fromarray(x[0].numpy() if x.shape[0] == 1 else x.permute(1, 2, 0).numpy()).save(folder / f"{i:05d}.png")


def test_a_folder_of_known_pictures_loads_to_the_exact_pixels_and_sorted_class_labels(tmp_path):
    g = torch.Generator().manual_seed(0)
    shirts, bags = (torch.randint(0, 256, (k, 1, 28, 28), generator=g, dtype=torch.uint8) for k in (3, 2))
    shirts[0].view(-1)[:256] = torch.arange(256, dtype=torch.uint8)  # every grey value once
    write_pngs(tmp_path / "shirt", shirts)
    write_pngs(tmp_path / "bag", bags)  # "bag" sorts first: label 0
    write_pngs(tmp_path / ".ipynb_checkpoints", bags)  # hidden: not a class
    write_pngs(tmp_path, bags[:1])  # loose beside the classes: no class, left out
    images, labels = load_images("folder", root=tmp_path)
    assert torch.equal(images, torch.cat([bags, shirts])) and labels.tolist() == [0, 0, 1, 1, 1]
    assert class_names("folder", tmp_path) == ["bag", "shirt"]


def test_a_flat_folder_is_one_class_and_colour_pictures_keep_their_channels(tmp_path):
    g = torch.Generator().manual_seed(1)
    pictures = torch.randint(0, 256, (4, 3, 32, 32), generator=g, dtype=torch.uint8)
    write_pngs(tmp_path, pictures)
    images, labels = load_images("folder", root=tmp_path, image_size=32, channels=3)
    assert torch.equal(images, pictures) and labels.tolist() == [0, 0, 0, 0]
    assert class_names("folder", tmp_path) == []


def test_class_names_of_the_torchvision_datasets():
    assert class_names("mnist") == list("0123456789")
    assert class_names("fashion-mnist")[0] == "T-shirt/top" and class_names("fashion-mnist")[9] == "Ankle boot"
    assert len(class_names("cifar10")) == 10


def test_an_empty_folder_an_empty_class_and_a_broken_picture_are_named(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataNotFoundError, match="holds no pictures; put .png or .jpg files in it"):
        load_images("folder", root=tmp_path / "empty")
    write_pngs(tmp_path / "classes" / "cat", torch.zeros(1, 1, 8, 8, dtype=torch.uint8))
    (tmp_path / "classes" / "dog").mkdir()
    with pytest.raises(DataNotFoundError, match="class folder.s. dog in .* hold no pictures"):
        load_images("folder", root=tmp_path / "classes")
    (tmp_path / "classes" / "dog" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataNotFoundError, match=r"broken.png is not a picture that can be read .*remove it"):
        load_images("folder", root=tmp_path / "classes")


def test_a_failed_download_says_so_and_leaves_no_empty_folders(tmp_path, monkeypatch):
    from urllib.error import URLError

    from torchvision import datasets

    class FashionMNIST:  # as torchvision behaves without a network: makes FashionMNIST/raw, then fails
        def __init__(self, root, train, download):
            if not download:
                raise RuntimeError("Dataset not found. You can use download=True to download it")
            (Path(root) / "FashionMNIST" / "raw").mkdir(parents=True)
            raise URLError("Name or service not known")
    monkeypatch.setattr(datasets, "FashionMNIST", FashionMNIST)
    with pytest.raises(DataNotFoundError, match="FashionMNIST was not found under .* the download failed: .*Name or"):
        load_images("fashion-mnist", root=tmp_path)
    assert list(tmp_path.iterdir()) == []
