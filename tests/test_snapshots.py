"""Progress snapshots: tools/export_progress.py writes float16 EMA weights and the training progress read from a
real training checkpoint; loading gives them back as float32, exactly the rounded weights; the shipped ones are
found, in training order."""
from __future__ import annotations

import zipfile

import pytest
import torch

from conftest import tiny_config, tiny_train_config, tiny_train_data, tiny_unet
from ddpm_lite import checkpoint
from ddpm_lite.errors import CheckpointError
from ddpm_lite.lab import snapshots
from ddpm_lite.samplers import SamplerSettings
from ddpm_lite.schedule import Schedule
from ddpm_lite.training import train
from tools import export_progress


def training_checkpoint(path, step, seed=0, batch_size=128, elapsed_s=90.0, sampling=None, **extra):
    """A run's last.pt as train() writes it: both weights, optimizer, step, train_config, history, meta."""
    ema, raw = tiny_unet(seed=seed), tiny_unet(seed=seed + 100)
    payload = {"model_config": ema.config.to_dict(), "schedule": Schedule.cosine(20).to_dict(),
               "ema": ema.state_dict(), "model": raw.state_dict(), "optimizer": {"state": {}}, "step": step,
               "train_config": {"dataset": "mnist", "batch_size": batch_size, "init": None},
               "history": [[step - 1, 0.5, 1e-3, 100.0], [step, 0.25, 1e-3, 100.0]],
               "meta": {"elapsed_s": elapsed_s, "processes": 1}, **extra}
    if sampling is not None:
        payload["sampling"] = sampling.to_dict()
    return checkpoint.save(payload, path)


def test_the_script_writes_float16_ema_weights_and_the_progress_of_each_snapshot(tmp_path, capsys):
    recommended = SamplerSettings(steps=7, eta=0.5)
    late = training_checkpoint(tmp_path / "b.pt", step=469, seed=1, elapsed_s=300.0, sampling=recommended)
    early = training_checkpoint(tmp_path / "a.pt", step=47, seed=2, elapsed_s=30.0)
    (tmp_path / "out").mkdir()
    stale = (tmp_path / "out" / "step_000999.pt")
    stale.write_bytes(b"an earlier export")
    assert export_progress.main([str(late), str(early), "--out", str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["step_000047.pt", "step_000469.pt"]
    assert "removed" in capsys.readouterr().out and not stale.exists()

    raw = torch.load(tmp_path / "out" / "step_000469.pt", weights_only=True)  # what the file holds
    assert set(raw) == {"format", "version", "model_config", "schedule", "ema", "sampling", "step", "progress"}
    assert {v.dtype for v in raw["ema"].values()} == {torch.float16}
    assert raw["progress"] == {"step": 469, "images": 469 * 128, "epochs": 469 * 128 / 60_000, "minutes": 5.0,
                               "loss": 0.25}
    assert SamplerSettings.from_dict(raw["sampling"]) == recommended
    assert "sampling" not in torch.load(tmp_path / "out" / "step_000047.pt", weights_only=True)

    loaded, source = checkpoint.load(tmp_path / "out" / "step_000469.pt"), checkpoint.load(late)
    for name, value in source["ema"].items():  # float32 again, and exactly the weights rounded to float16
        assert loaded["ema"][name].dtype == torch.float32
        assert torch.equal(loaded["ema"][name], value.half().float()), name
    assert snapshots.training_progress(loaded) == snapshots.training_progress(source)


def test_a_snapshot_is_half_the_size_of_an_ema_only_float32_file(tmp_path):
    src = training_checkpoint(tmp_path / "last.pt", step=10)
    half = checkpoint.save(snapshots.snapshot_payload(checkpoint.load(src)), tmp_path / "half.pt")
    full = checkpoint.export_ema(src, tmp_path / "full.pt", keep=())
    assert tensor_bytes(half) * 2 == tensor_bytes(full)


def tensor_bytes(path) -> int:
    """Bytes of tensor storage in a torch.save archive (one data/ entry per storage)."""
    return sum(i.file_size for i in zipfile.ZipFile(path).infolist() if "/data/" in i.filename)


def test_progress_of_a_real_training_run(tmp_path):
    cfg = tiny_train_config(tmp_path, steps=6, batch_size=8)
    ckpt = train(cfg, tiny_config(image_size=8), progress=False, data=tiny_train_data())
    p = snapshots.training_progress(checkpoint.load(tmp_path / "last.pt"))
    assert (p.step, p.images, p.epochs) == (6, 48, 48 / 60_000)  # the config names MNIST; 6 steps of 8 images
    assert p.minutes == ckpt["meta"]["elapsed_s"] / 60 > 0 and p.loss == ckpt["history"][-1][1]
    assert p.describe() == f"step 6, 48 images, 0.00 epochs, {p.minutes:.1f} min of training, loss {p.loss:.4f}"


def test_what_cannot_be_a_snapshot_is_refused_clearly(tmp_path):
    release = checkpoint.export_ema(training_checkpoint(tmp_path / "last.pt", step=5), tmp_path / "r.pt", keep=())
    with pytest.raises(CheckpointError, match="how far training had got"):
        snapshots.training_progress(checkpoint.load(release))
    big = checkpoint.load(training_checkpoint(tmp_path / "big.pt", step=5))
    big["ema"]["conv_out.bias"] = big["ema"]["conv_out.bias"] + 1e5  # beyond float16's 65504
    with pytest.raises(CheckpointError, match="float16"):
        snapshots.snapshot_payload(big)
    other = tmp_path / "other.pt"
    checkpoint.save({**checkpoint.load(training_checkpoint(other, step=9)), "schedule": {"kind": "linear", "T": 20}},
                    other)
    with pytest.raises(SystemExit, match="another schedule"):
        export_progress.main([str(tmp_path / "last.pt"), str(other), "--out", str(tmp_path / "out")])
    with pytest.raises(SystemExit, match="same step"):
        export_progress.main([str(tmp_path / "last.pt"), str(tmp_path / "last.pt"), "--out", str(tmp_path / "o")])


def test_the_shipped_snapshots_are_found_in_training_order():
    found = snapshots.shipped_snapshots()
    steps = [snapshots.training_progress(checkpoint.load(p)).step for p in found]
    assert len(found) >= 3 and steps == sorted(steps) and len(set(steps)) == len(steps)
    assert [p.name for p in found] == [f"step_{s:06d}.pt" for s in steps]
    assert sum(p.stat().st_size for p in found) < 10e6  # small enough to ship in the repository and the wheel


def test_no_shipped_snapshots_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoint, "shipped", lambda name: tmp_path / name)
    with pytest.raises(CheckpointError, match="export_progress.py"):
        snapshots.shipped_snapshots()
