"""The shipped release checkpoint: loads safely, samples on CPU, repeats under a seed."""
import pytest
import torch

from conftest import missing
from ddpm_lite import checkpoint, sample


@pytest.fixture(scope="module")
def release():
    path = checkpoint.shipped(checkpoint.RELEASE_NAME)
    if not path.is_file():
        missing(f"no shipped checkpoint at {path}")
    return checkpoint.load(path)


def test_release_is_small_and_ema_only(release):
    assert checkpoint.shipped(checkpoint.RELEASE_NAME).stat().st_size < 25 * 2**20
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


def test_the_readme_python_example_runs_as_written(release, tmp_path, monkeypatch):
    """The README's "Use it from Python" block, executed verbatim (it writes digits.png into the working folder)."""
    import re
    from pathlib import Path
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert blocks, "README.md has no ```python block"
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(compile(blocks[0], "README.md", "exec"), scope)
    assert (tmp_path / "digits.png").is_file()
    assert scope["x"].shape == (64, 1, 28, 28) and scope["sevens"].shape == (16, 1, 28, 28)
    assert scope["plain"].shape == (16, 1, 28, 28)  # any setting can be given


def test_sampling_with_no_settings_is_the_recommended_fast_setting(release):
    """The release file recommends DDIM 20, eta 0.7, eps / 0.98 and a random label each (model card), and the
    shortest call samples exactly that."""
    from ddpm_lite.samplers import SamplerSettings
    model, schedule = checkpoint.build(release)
    assert model.sampling == SamplerSettings(sampler="ddim", steps=20, eta=0.7, eps_scaling=0.98, labels="random")
    labels = torch.randint(0, 10, (3,), generator=torch.Generator().manual_seed(4))
    given = sample(model, schedule, 3, sampler="ddim", steps=20, eta=0.7, eps_scaling=0.98, labels=labels,
                   generator=torch.Generator().manual_seed(4))
    assert torch.equal(sample(model, schedule, 3, generator=torch.Generator().manual_seed(4)), given)


def test_the_distilled_student_loads_by_name_and_samples_in_its_own_four_steps(monkeypatch, tmp_path):
    path = checkpoint.shipped("ddpm_mnist_4step.pt")
    if not path.is_file():
        missing(f"no shipped student at {path}")
    monkeypatch.chdir(tmp_path)  # a bare name is the shipped file, from any folder
    model, schedule = checkpoint.load_model("ddpm_mnist_4step.pt")
    assert model.prediction == "v" and model.sampling.grid == "trailing" and model.sampling.steps == 4
    calls = []
    model.register_forward_hook(lambda m, i, o: calls.append(int(i[1][0])))
    x = sample(model, schedule, 2, generator=torch.Generator().manual_seed(0))
    assert calls == [999, 749, 499, 249] and x.min() >= -1 and x.max() <= 1
    with pytest.raises(checkpoint.CheckpointError, match="nope.pt does not exist"):
        checkpoint.load_model("nope.pt")
