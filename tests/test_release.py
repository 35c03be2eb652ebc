"""The shipped release checkpoint: loads safely, samples on CPU, repeats under a seed."""
import pytest
import torch

from ddpm_lite import checkpoint, sample


@pytest.fixture(scope="module")
def release():
    path = checkpoint.RELEASE
    if not path.is_file():
        pytest.skip(f"no shipped checkpoint at {path}")
    return checkpoint.load(path)


def test_release_is_small_and_ema_only(release):
    assert checkpoint.RELEASE.stat().st_size < 25 * 2**20
    assert "optimizer" not in release and "model" not in release
    assert release["model_config"]["num_classes"] == 10


def test_release_samples_in_range_and_repeats_under_a_seed(release):
    model, schedule = checkpoint.build(release)
    draw = lambda: sample(model, schedule, 4, steps=3, labels=torch.tensor([0, 1, 7, 9]), guidance=1.0,  # noqa: E731
                          generator=torch.Generator().manual_seed(3))
    a, b = draw(), draw()
    assert a.shape == (4, 1, 28, 28)
    assert a.min() >= -1 and a.max() <= 1
    assert torch.equal(a, b)
    assert not torch.equal(a[0], a[1])  # different labels give different digits
