"""The shipped MNIST classifier: safe loading, shapes, clear errors, the augmentation, and (slow) its accuracy."""
import pytest
import torch

from conftest import missing
from ddpm_lite import checkpoint
from ddpm_lite.evaluation import classifier
from ddpm_lite.checkpoint import CheckpointError
from ddpm_lite.cli import main
from ddpm_lite.data import DataNotFoundError, load_images


SHIPPED = checkpoint.shipped(checkpoint.CLASSIFIER_NAME)


def test_shipped_classifier_is_a_plain_dict_loadable_with_weights_only():
    ckpt = torch.load(SHIPPED, map_location="cpu", weights_only=True)
    assert ckpt["format"] == "ddpm-lite-classifier" and ckpt["version"] == 1
    assert ckpt["command"].startswith("python -m ddpm_lite train-classifier")
    assert ckpt["test_accuracy"] >= 0.99
    assert SHIPPED.stat().st_size < 1_000_000


def test_classifier_output_shapes_and_size():
    model = classifier.load_classifier()
    assert not model.training
    x = torch.rand(5, 1, 28, 28) * 2 - 1
    with torch.no_grad():
        assert model(x).shape == (5, 10)
        assert model.features(x).shape == (5, model.config.feature_dim)
    assert 50_000 < sum(p.numel() for p in model.parameters()) < 300_000


def test_load_classifier_errors_name_the_problem(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist; train one with `python -m ddpm_lite train-classifier"):
        classifier.load_classifier(tmp_path / "none.pt")
    torch.save({"format": "ddpm-lite", "ema": {}}, tmp_path / "ddpm.pt")
    with pytest.raises(CheckpointError, match="not a ddpm-lite classifier"):
        classifier.load_classifier(tmp_path / "ddpm.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt is not a classifier at all"):
        classifier.load_classifier(tmp_path / "junk.pt")
    torch.save({"format": classifier.FORMAT, "torch": torch.__version__}, tmp_path / "obj.pt")  # a TorchVersion object
    with pytest.raises(CheckpointError, match="Python objects that a safe load refuses"):
        classifier.load_classifier(tmp_path / "obj.pt")


def test_shift_moves_whole_pixels_and_fills_with_background():
    x = torch.full((2, 1, 28, 28), -1.0)
    x[:, 0, 10:15, 12:14] = 1.0
    y = classifier.shift(x, torch.tensor([[2.0, -3.0], [0.0, 0.0]]))  # image 0: 2 px right, 3 px up
    assert torch.allclose(y[0, 0, :-3, 2:], x[0, 0, 3:, :-2], atol=1e-5)
    assert torch.allclose(y[0, 0, -3:], torch.tensor(-1.0)) and torch.allclose(y[0, 0, :, :2], torch.tensor(-1.0))
    assert torch.allclose(y[1], x[1], atol=1e-6)


def test_random_shift_is_seeded_and_keeps_the_stroke():
    x = torch.full((64, 1, 28, 28), -1.0)
    x[:, 0, 10:15, 12:14] = 1.0
    y = classifier.random_shift(x, 2.0, torch.Generator().manual_seed(0))
    assert torch.equal(y, classifier.random_shift(x, 2.0, torch.Generator().manual_seed(0)))
    assert y.min() >= -1 - 1e-6 and y.max() <= 1 + 1e-6
    assert torch.allclose((y + 1).sum((1, 2, 3)), (x[0] + 1).sum(), rtol=1e-4)  # moved inside the frame, none lost


@pytest.mark.parametrize("flag, value, message", [("--lr", "0", "must be a positive number, got 0"),
                                                  ("--max-shift", "15", "must be a number >= 0 and <= 14, got 15")])
def test_train_classifier_rejects_bad_flags(capsys, flag, value, message):
    with pytest.raises(SystemExit) as e:
        main(["train-classifier", flag, value, "--out", "unused.pt"])
    assert e.value.code == 2 and f"argument {flag}: {message}" in capsys.readouterr().err


@pytest.mark.slow
def test_shipped_classifier_reaches_99_percent_on_mnist_test_digits():
    try:
        images, labels = load_images("mnist", train=False, download=False)
    except DataNotFoundError as e:
        missing(f"MNIST test set not available: {e}")
    acc = classifier.accuracy(classifier.load_classifier(), images, labels)
    assert acc >= 0.99
    assert acc == pytest.approx(classifier.load_classifier().test_accuracy, abs=1e-4)  # the recorded figure
