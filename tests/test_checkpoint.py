"""Checkpoints: exact round trips, atomic writes, and one clear CheckpointError for each way a file is bad."""
import os

import pytest
import torch

from conftest import save_tiny_checkpoint, tiny_unet
from ddpm_lite import checkpoint
from ddpm_lite.checkpoint import CheckpointError
from ddpm_lite.schedule import Schedule


class Gadget:
    """An arbitrary Python object: a safe load must refuse to rebuild it."""

    def __init__(self):
        self.payload = [1, 2, 3]


def outputs(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    cfg = model.config
    x = torch.randn(3, cfg.in_channels, cfg.image_size, cfg.image_size, generator=g)
    with torch.no_grad():
        return model(x, torch.tensor([0, 9, 19]), torch.tensor([1, 5, 10]) if cfg.num_classes else None)


def test_round_trip_gives_identical_outputs(tmp_path):
    model, schedule = tiny_unet(seed=3), Schedule.linear(40)
    path = save_tiny_checkpoint(tmp_path / "sub" / "m.pt", model, schedule)
    ckpt = checkpoint.load(path)
    assert ckpt["format"] == "ddpm-lite" and ckpt["version"] == 1
    model2, schedule2 = checkpoint.build(ckpt)
    assert not model2.training
    assert model2.config == model.config and schedule2.to_dict() == {"kind": "linear", "T": 40}
    assert torch.equal(schedule2.alpha_bars, schedule.alpha_bars)
    assert torch.equal(outputs(model2), outputs(model))
    assert torch.equal(outputs(checkpoint.load_model(path)[0]), outputs(model))


def test_build_picks_ema_or_raw_weights(tmp_path):
    ema, raw, schedule = tiny_unet(seed=1), tiny_unet(seed=2), Schedule.cosine(20)
    path = checkpoint.save({"model_config": ema.config.to_dict(), "schedule": schedule.to_dict(),
                            "ema": ema.state_dict(), "model": raw.state_dict(),
                            "optimizer": {"state": {}}, "step": 7, "history": [[7, 0.5, 1e-3, 10.0]]},
                           tmp_path / "last.pt")
    assert torch.equal(outputs(checkpoint.load_model(path)[0]), outputs(ema))
    assert torch.equal(outputs(checkpoint.load_model(path, weights="model")[0]), outputs(raw))
    assert not torch.equal(outputs(ema), outputs(raw))


def test_export_keeps_ema_weights_and_metadata_only(tmp_path):
    ema, raw, schedule = tiny_unet(seed=1), tiny_unet(seed=2), Schedule.cosine(20)
    src = checkpoint.save({"model_config": ema.config.to_dict(), "schedule": schedule.to_dict(),
                           "ema": ema.state_dict(), "model": raw.state_dict(), "optimizer": {"state": {}},
                           "step": 7, "history": [[7, 0.5, 1e-3, 10.0]], "rng": {"torch": torch.get_rng_state()}},
                          tmp_path / "last.pt")
    dst = checkpoint.export_ema(src, tmp_path / "release" / "ema.pt")
    small = checkpoint.load(dst)
    assert set(small) == {"format", "version", "model_config", "schedule", "ema", "history", "step"}
    assert os.path.getsize(dst) < os.path.getsize(src)
    assert torch.equal(outputs(checkpoint.load_model(dst)[0]), outputs(ema))
    assert oct(os.stat(dst).st_mode & 0o777) == oct(0o644)  # a released file is readable by all


def test_save_is_atomic_when_writing_fails(tmp_path):
    path = save_tiny_checkpoint(tmp_path / "m.pt", tiny_unet(), Schedule.cosine(20))
    before = path.read_bytes()
    with pytest.raises(Exception):
        checkpoint.save({"bad": lambda: 0}, path)  # a lambda cannot be pickled: torch.save fails midway
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]  # no temporary file left behind


def test_default_checkpoint_follows_the_environment(tmp_path, monkeypatch):
    path = save_tiny_checkpoint(tmp_path / "elsewhere.pt", tiny_unet(seed=4), Schedule.cosine(20))
    monkeypatch.setenv("DDPM_LITE_CHECKPOINT", str(path))
    assert checkpoint.default_checkpoint() == path
    assert torch.equal(outputs(checkpoint.load_model()[0]), outputs(tiny_unet(seed=4)))
    monkeypatch.delenv("DDPM_LITE_CHECKPOINT")
    assert checkpoint.default_checkpoint() == checkpoint.shipped(checkpoint.RELEASE_NAME)


def test_pickled_object_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "ddpm-lite", "version": 1, "gadget": Gadget()}, path)
    with pytest.raises(CheckpointError, match=r"holds Python objects that a safe load refuses .*Gadget"):
        checkpoint.load(path)


def test_pickled_module_is_refused(tmp_path):
    path = tmp_path / "module.pt"
    torch.save(tiny_unet(), path)
    with pytest.raises(CheckpointError, match=r"holds Python objects that a safe load refuses"):
        checkpoint.load(path)


@pytest.mark.parametrize("keep", [0.5, 0.1, 0.0])
def test_truncated_file_gives_a_clear_error(tmp_path, keep):
    good = save_tiny_checkpoint(tmp_path / "good.pt", tiny_unet(), Schedule.cosine(20)).read_bytes()
    path = tmp_path / "cut.pt"
    path.write_bytes(good[:int(len(good) * keep)])
    with pytest.raises(CheckpointError, match=r"cut.pt is not a checkpoint at all \(not a PyTorch file, or cut short"):
        checkpoint.load(path)


@pytest.mark.parametrize("content", [b"hello world\n", bytes(range(256)) * 4])
def test_a_file_that_is_no_checkpoint_at_all_gives_a_clear_error(tmp_path, content):
    path = tmp_path / "notes.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=r"notes.pt is not a checkpoint at all"):
        checkpoint.load(path)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused(tmp_path, bad):
    model = tiny_unet()
    state = model.state_dict()
    state["conv_out.bias"][0] = bad
    path = checkpoint.save({"model_config": model.config.to_dict(), "schedule": Schedule.cosine(20).to_dict(),
                            "ema": state}, tmp_path / "diverged.pt")
    with pytest.raises(CheckpointError, match=r"holds non-finite values \(NaN or inf\) in ema.conv_out.bias"):
        checkpoint.load(path)


def test_the_checkpoint_carries_its_sampling_settings(tmp_path):
    from ddpm_lite.samplers import SamplerSettings
    src = save_tiny_checkpoint(tmp_path / "m.pt", tiny_unet(), Schedule.cosine(20))
    assert checkpoint.load_model(src)[0].sampling == SamplerSettings()  # none stored: the plain defaults
    recommended = SamplerSettings(steps=5, eta=0.7, eps_scaling=0.98, labels="random")
    dst = checkpoint.export_ema(src, tmp_path / "r.pt", sampling=recommended)
    assert checkpoint.load_model(dst)[0].sampling == recommended
    assert checkpoint.load_model(checkpoint.export_ema(dst, tmp_path / "again.pt"))[0].sampling == recommended
    ckpt = checkpoint.load(dst)
    ckpt["sampling"]["eta"] = -1.0
    with pytest.raises(CheckpointError, match="sampling settings are not valid .*eta must be a number >= 0"):
        checkpoint.build(ckpt)


def test_missing_file_gives_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match=r"nope.pt does not exist; train one with `python -m ddpm_lite train`"):
        checkpoint.load(tmp_path / "nope.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        checkpoint.load(tmp_path)  # a folder is not a checkpoint file either


@pytest.mark.parametrize("content", [{"ema": {"w": torch.zeros(2)}}, {"format": "other"}, [torch.zeros(2)]])
def test_foreign_file_gives_a_clear_error(tmp_path, content):
    path = tmp_path / "foreign.pt"
    torch.save(content, path)
    with pytest.raises(CheckpointError, match=r"is not a ddpm-lite checkpoint \(no format tag 'ddpm-lite'\)"):
        checkpoint.load(path)


def test_newer_format_version_asks_for_an_upgrade(tmp_path):
    path = tmp_path / "future.pt"
    torch.save({"format": "ddpm-lite", "version": 99}, path)
    with pytest.raises(CheckpointError, match=r"format version 99, newer than this ddpm-lite reads \(1\); upgrade"):
        checkpoint.load(path)


def test_training_history_puts_the_earlier_run_first(tmp_path):
    import json
    from ddpm_lite.checkpoint import training_history
    earlier = tmp_path / "stage1.json"
    earlier.write_text(json.dumps({"step": 100, "history": [[50, 0.5, 1e-3, 90.0], [100, 0.4, 1e-3, 95.0]]}))
    ckpt = {"history": [[50, 0.3, 5e-4, 99.0]], "train_config": {"init": "stage1.pt"}}
    assert training_history(ckpt, earlier) == ([[50, 0.5, 1e-3, 90.0], [100, 0.4, 1e-3, 95.0],
                                                [150, 0.3, 5e-4, 99.0]], 100)
    assert training_history(ckpt, None) == (ckpt["history"], 0)  # no record of the earlier run
    assert training_history({**ckpt, "train_config": {"init": None}}, earlier) == (ckpt["history"], 0)
