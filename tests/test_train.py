"""Training on tiny random data: exact resume, divergence handling, label dropout, lr schedule and EMA math;
settings refused before any work, and one run per run folder."""
import dataclasses
import math
import os
import subprocess
import sys

import pytest
import torch

from conftest import tiny_config, tiny_train_config, tiny_train_data
from ddpm_lite import checkpoint, training
from ddpm_lite.errors import RunFolderError, TrainingDiverged
from ddpm_lite.recipe import RANGES, TrainConfig, lr_at
from ddpm_lite.schedule import Schedule
from ddpm_lite.training import Batches, _draw, _init_from, ema_update, train
from ddpm_lite.unet import UNet

MODEL_CFG = tiny_config(image_size=8)


config = tiny_train_config


@pytest.fixture(scope="module")
def data():
    return tiny_train_data()


class Stop(Exception):
    pass


def stop_at(n):
    def callback(step, loss, model, ema):
        if step == n:
            raise Stop
    return callback


def test_resumed_run_matches_the_uninterrupted_run_step_for_step(tmp_path, data):
    full = train(config(tmp_path / "full"), MODEL_CFG, progress=False, data=data)
    with pytest.raises(Stop):  # interrupted right after the step-3 checkpoint
        train(config(tmp_path / "cut"), MODEL_CFG, progress=False, data=data, callback=stop_at(3))
    assert checkpoint.load(tmp_path / "cut" / "last.pt")["step"] == 3
    resumed = train(config(tmp_path / "cut"), MODEL_CFG, resume=True, progress=False, data=data)
    assert resumed["step"] == full["step"] == 6
    for key in ("model", "ema"):
        for name, value in full[key].items():
            assert torch.equal(resumed[key][name], value), (key, name)
    for name, value in full["optimizer"]["state"][0].items():
        assert torch.equal(resumed["optimizer"]["state"][0][name], value), name
    strip_speed = lambda h: [row[:3] for row in h]  # noqa: E731  images/s is a timing, the rest must match
    assert strip_speed(resumed["history"]) == strip_speed(full["history"])
    assert not torch.equal(full["model"]["conv_out.weight"], torch.zeros_like(full["model"]["conv_out.weight"]))


def test_a_callback_that_returns_false_stops_the_run_saving_that_step(tmp_path, data):
    """Step 4 is no checkpoint step (every 3): the stop saves it, and a resumed run goes on from there."""
    calls = []

    def callback(step, loss, model, ema):
        calls.append(step)
        return step < 4
    stopped = train(config(tmp_path), MODEL_CFG, progress=False, data=data, callback=callback)
    assert calls == [1, 2, 3, 4] and stopped["step"] == 4
    assert checkpoint.load(tmp_path / "last.pt")["step"] == 4
    assert train(config(tmp_path), MODEL_CFG, resume=True, progress=False, data=data)["step"] == 6


def test_history_lr_and_saved_checkpoint(tmp_path, data):
    cfg = config(tmp_path)
    ckpt = train(cfg, MODEL_CFG, progress=False, data=data)
    assert [row[0] for row in ckpt["history"]] == [3, 6]
    assert [row[2] for row in ckpt["history"]] == [lr_at(cfg, 2), lr_at(cfg, 5)]
    assert all(math.isfinite(row[1]) and row[1] > 0 and row[3] > 0 for row in ckpt["history"])
    saved = checkpoint.load(tmp_path / "last.pt")
    assert saved["step"] == 6 and saved["train_config"] == dataclasses.asdict(cfg)
    model, schedule = checkpoint.build(saved)
    assert schedule.to_dict() == {"kind": "cosine", "T": 50} and model.config == MODEL_CFG
    for name, value in ckpt["ema"].items():
        assert torch.equal(model.state_dict()[name], value), name


def test_ema_follows_the_warm_up_formula_through_training(tmp_path, data):
    """Replay the EMA in float64 from the weights after each step n: ema <- d ema + (1 - d) p.

    d = min(0.999, (1 + n) / (10 + n)), the warm-up that lets early EMA weights follow the model.
    """
    torch.manual_seed(0)
    ema_ref = {k: v.double() for k, v in UNet(MODEL_CFG).state_dict().items()}  # train() seeds, then builds
    seen = []

    def callback(step, loss, model, ema):
        seen.append({k: v.detach().double().clone() for k, v in model.state_dict().items()})

    out = train(config(tmp_path, steps=4), MODEL_CFG, progress=False, data=data, callback=callback)
    for n, params in enumerate(seen):
        d = min(0.999, (1 + n) / (10 + n))
        ema_ref = {k: d * ema_ref[k] + (1 - d) * params[k] for k in ema_ref}
    for name, value in out["ema"].items():
        torch.testing.assert_close(value.double(), ema_ref[name], rtol=1e-5, atol=1e-7, msg=name)
    assert not torch.equal(out["ema"]["conv_out.weight"], out["model"]["conv_out.weight"])


def test_nan_loss_stops_training_and_keeps_the_last_checkpoint(tmp_path, data):
    saved = {}

    def poison(step, loss, model, ema):  # after the step-2 checkpoint, make the next loss NaN
        if step == 2:
            saved["bytes"] = (tmp_path / "last.pt").read_bytes()
            with torch.no_grad():
                model.conv_out.weight.fill_(float("nan"))

    message = r"loss became nan at step 2; stopped without saving.*last\.pt.*--resume"
    with pytest.raises(TrainingDiverged, match=message):
        train(config(tmp_path, ckpt_every=1), MODEL_CFG, progress=False, data=data, callback=poison)
    assert (tmp_path / "last.pt").read_bytes() == saved["bytes"]
    assert checkpoint.load(tmp_path / "last.pt")["step"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_resume_without_a_checkpoint_says_where_it_looked(tmp_path, data):
    with pytest.raises(checkpoint.CheckpointError, match=r"--resume given but there is no checkpoint at .*last\.pt"):
        train(config(tmp_path / "empty"), MODEL_CFG, resume=True, progress=False, data=data)


def test_init_starts_model_and_ema_at_the_source_ema_with_a_fresh_optimizer(tmp_path, data):
    src = train(config(tmp_path / "src", steps=3), MODEL_CFG, progress=False, data=data)
    # Before any step, the new run's weights are the source's EMA weights exactly.
    model = UNet(MODEL_CFG)
    ema = UNet(MODEL_CFG)
    _init_from(tmp_path / "src" / "last.pt", model, ema, MODEL_CFG, Schedule.build("cosine", 50))
    for name, value in src["ema"].items():
        assert torch.equal(model.state_dict()[name], value) and torch.equal(ema.state_dict()[name], value), name
    # A full fine-tuning run counts its own steps and history and its optimizer starts empty.
    tuned = train(config(tmp_path / "tuned", steps=3, init=str(tmp_path / "src" / "last.pt")), MODEL_CFG,
                  progress=False, data=data)
    scratch = train(config(tmp_path / "scratch", steps=3), MODEL_CFG, progress=False, data=data)
    assert tuned["step"] == 3 and [h[0] for h in tuned["history"]] == [3]
    assert tuned["optimizer"]["state"][0]["step"].item() == 3
    assert any(not torch.equal(tuned["ema"][k], scratch["ema"][k]) for k in scratch["ema"])
    assert tuned["train_config"]["init"] == str(tmp_path / "src" / "last.pt")
    resumed = train(config(tmp_path / "tuned", steps=4), MODEL_CFG, resume=True, progress=False, data=data)
    assert resumed["step"] == 4 and resumed["train_config"]["init"] == str(tmp_path / "src" / "last.pt")


def test_init_with_another_model_or_schedule_is_refused(tmp_path, data):
    train(config(tmp_path / "src", steps=3), MODEL_CFG, progress=False, data=data)
    src = str(tmp_path / "src" / "last.pt")
    other = dataclasses.replace(MODEL_CFG, base_channels=MODEL_CFG.base_channels * 2)
    with pytest.raises(checkpoint.CheckpointError, match="pass the same model flags"):
        train(config(tmp_path / "a", init=src), other, progress=False, data=data)
    with pytest.raises(checkpoint.CheckpointError, match="pass the same --schedule and --T"):
        train(config(tmp_path / "b", init=src, T=40), MODEL_CFG, progress=False, data=data)


def test_resume_with_another_model_config_is_refused(tmp_path, data):
    train(config(tmp_path, steps=3), MODEL_CFG, progress=False, data=data)
    other = tiny_config(image_size=8, num_classes=None)
    with pytest.raises(checkpoint.CheckpointError, match="resume with the same model flags"):
        train(config(tmp_path), other, resume=True, progress=False, data=data)


def draw(label_dropout, n=20_000, num_classes=10, step=0, seed=0):
    cfg = TrainConfig(label_dropout=label_dropout, seed=seed)
    images = torch.randint(0, 256, (n, 1, 2, 2), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    labels = torch.arange(n) % 10
    batches = Batches(n, n, seed)
    model_cfg = tiny_config(num_classes=num_classes)
    return (images, labels, batches.indices(step)), _draw(cfg, model_cfg, batches, images, labels, step, 50, "cpu")


@pytest.mark.parametrize("p", [0.1, 0.3])
def test_label_dropout_replaces_that_share_with_no_label(p):
    (images, labels, idx), (x0, y, t, eps) = draw(p)
    dropped = y == 10
    share = dropped.double().mean().item()
    assert abs(share - p) < 5 * math.sqrt(p * (1 - p) / len(y)), share
    assert torch.equal(y[~dropped], labels[idx][~dropped])  # the others keep their own label
    assert torch.equal(x0, images[idx].float() / 127.5 - 1)
    assert t.min() >= 0 and t.max() < 50 and eps.shape == x0.shape


def test_label_dropout_extremes_and_unconditional():
    assert not (draw(0.0, n=2000)[1][1] == 10).any()
    assert (draw(1.0, n=2000)[1][1] == 10).all()
    assert draw(0.5, n=2000, num_classes=None)[1][1] is None


def test_each_draw_is_a_pure_function_of_seed_and_step():
    a, b = draw(0.1, n=500, step=3)[1], draw(0.1, n=500, step=3)[1]
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    c = draw(0.1, n=500, step=4)[1]
    assert not torch.equal(a[3], c[3])


def test_batches_visit_every_image_once_per_epoch():
    batches = Batches(n=50, batch_size=8, seed=3)  # 6 full batches per epoch, the remainder skipped
    epoch0 = torch.cat([batches.indices(k) for k in range(6)])
    assert len(epoch0) == 48 and len(epoch0.unique()) == 48
    epoch1 = torch.cat([batches.indices(k) for k in range(6, 12)])
    assert len(epoch1.unique()) == 48 and not torch.equal(epoch0, epoch1)
    assert torch.equal(Batches(50, 8, 3).indices(7), batches.indices(7))  # no hidden state


def test_lr_warms_up_linearly_then_follows_a_cosine_to_the_floor():
    cfg = TrainConfig(lr=1e-3, warmup=10, steps=110, lr_min_ratio=0.1)
    assert lr_at(cfg, 0) == pytest.approx(1e-4)
    assert lr_at(cfg, 4) == pytest.approx(5e-4)
    assert lr_at(cfg, 9) == pytest.approx(1e-3)
    assert lr_at(cfg, 10) == pytest.approx(1e-3)  # top of the cosine
    assert lr_at(cfg, 60) == pytest.approx(1e-4 + 0.9e-3 * 0.5)  # half way: cos(pi/2) = 0
    assert lr_at(cfg, 35) == pytest.approx(1e-4 + 0.9e-3 * 0.5 * (1 + math.cos(math.pi / 4)))
    assert lr_at(cfg, 110) == pytest.approx(1e-4) and lr_at(cfg, 500) == pytest.approx(1e-4)


def test_ema_update_is_exact_and_copies_buffers():
    torch.manual_seed(0)
    make = lambda: torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))  # noqa: E731
    ema, model = make(), make()
    model[1].running_mean.fill_(0.25)
    before = [p.detach().double().clone() for p in ema.parameters()]
    ema_update(ema, model, 0.9)
    for e, b, p in zip(ema.parameters(), before, model.parameters()):
        torch.testing.assert_close(e.double(), 0.9 * b + 0.1 * p.double(), rtol=1e-6, atol=1e-7)
    assert torch.equal(ema[1].running_mean, model[1].running_mean)
    ema_update(ema, model, 0.0)  # decay 0 copies the weights
    assert all(torch.equal(e, p) for e, p in zip(ema.parameters(), model.parameters()))


@pytest.mark.parametrize("name, value, message", [
    ("ema_decay", 1.5, "ema_decay must be in [0, 1), got 1.5"),
    ("ema_decay", 1.0, "ema_decay must be in [0, 1), got 1.0"),
    ("lr", 0.0, "lr must be in (0, inf), got 0.0"),
    ("lr", float("inf"), "lr must be in (0, inf), got inf"),
    ("lr", float("nan"), "lr must be in (0, inf), got nan"),
    ("warmup", -1, "warmup must be an integer >= 0, got -1"),
    ("lr_min_ratio", 1.5, "lr_min_ratio must be in [0, 1], got 1.5"),
    ("weight_decay", -0.1, "weight_decay must be in [0, inf), got -0.1"),
    ("grad_clip", 0.0, "grad_clip must be in (0, inf), got 0.0"),
    ("label_dropout", -0.1, "label_dropout must be in [0, 1], got -0.1"),
    ("min_snr_gamma", 0.0, "min_snr_gamma must be in (0, inf), got 0.0"),
    ("T", 0, "T must be an integer >= 1, got 0"),
    ("steps", 0, "steps must be an integer >= 1, got 0"),
    ("steps", 2.5, "steps must be an integer >= 1, got 2.5"),
    ("batch_size", True, "batch_size must be an integer >= 1, got True"),
    ("ckpt_every", 0, "ckpt_every must be an integer >= 1, got 0"),
    ("log_every", -3, "log_every must be an integer >= 1, got -3"),
    ("seed", -1, "seed must be an integer in [0, 4294967296), got -1"),
    ("schedule", "quadratic", "schedule must be one of linear, cosine, got 'quadratic'"),
    ("dataset", "imagenet", "dataset must be one of mnist, fashion-mnist, cifar10, folder, got 'imagenet'"),
    ("device", "gpu", "device must be one of auto, cpu, cuda, cuda:N, mps, got 'gpu'"),
])
def test_a_setting_outside_its_meaning_is_refused_in_one_line(name, value, message):
    with pytest.raises(ValueError) as e:
        TrainConfig(**{name: value})
    assert str(e.value) == message
    with pytest.raises(ValueError):  # replace() builds a new config, checked the same way
        dataclasses.replace(TrainConfig(), **{name: value})


@pytest.mark.parametrize("name, value", [
    ("ema_decay", 0.0), ("lr_min_ratio", 0.0), ("lr_min_ratio", 1.0), ("label_dropout", 0.0), ("label_dropout", 1.0),
    ("warmup", 0), ("weight_decay", 0.0), ("min_snr_gamma", None), ("lr", 1), ("steps", 1), ("T", 1), ("seed", 0),
    ("device", "cuda:1"), ("device", "cpu"), ("schedule", "linear"),
])
def test_the_edges_of_each_range_are_accepted(name, value):
    assert getattr(TrainConfig(**{name: value}), name) == value


def test_every_numeric_field_has_a_range_and_the_defaults_lie_inside():
    numeric = {f.name for f in dataclasses.fields(TrainConfig) if f.type in ("int", "float", "float | None")}
    assert numeric == set(RANGES)
    assert all(getattr(TrainConfig(), name) in allowed for name, allowed in RANGES.items())


def test_a_second_run_on_the_same_folder_is_refused_and_the_first_goes_on(tmp_path, data):
    refused = []

    def second_run(step, loss, model, ema):
        if step == 4:  # the first run holds the folder, and its step-3 checkpoint is there
            with pytest.raises(RunFolderError) as e:
                train(config(tmp_path), MODEL_CFG, resume=True, progress=False, data=data)
            refused.append(str(e.value))

    first = train(config(tmp_path), MODEL_CFG, progress=False, data=data, callback=second_run)
    assert refused == [f"another training run is using run folder {tmp_path} (it holds {tmp_path / '.lock'}); "
                       f"wait for it to finish or choose another --out"]
    assert first["step"] == 6 and checkpoint.load(tmp_path / "last.pt")["step"] == 6
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # the lock is gone with the run
    assert train(config(tmp_path, steps=7), MODEL_CFG, resume=True, progress=False, data=data)["step"] == 7


HOLD = """import sys, time
from ddpm_lite.parallel.distributed import acquire_run_folder
acquire_run_folder(sys.argv[1])
print("held", flush=True)
time.sleep(120)
"""


def test_the_lock_of_another_process_is_released_when_it_is_killed(tmp_path, data):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                              cwd=os.getcwd(), env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(RunFolderError, match=f"another training run is using run folder {tmp_path} "):
            train(config(tmp_path), MODEL_CFG, progress=False, data=data)
        assert not (tmp_path / "last.pt").exists()
    finally:
        holder.kill()  # SIGKILL: no clean-up runs, the kernel drops the flock
        holder.wait()
    assert (tmp_path / ".lock").exists()  # left behind by the killed holder, and no obstacle
    assert train(config(tmp_path, steps=3), MODEL_CFG, progress=False, data=data)["step"] == 3


def test_a_run_folder_under_a_file_fails_before_training(tmp_path, data):
    (tmp_path / "file").write_text("not a folder")
    steps = []
    with pytest.raises(RunFolderError, match=rf"^cannot write to run folder {tmp_path / 'file' / 'run'}: \w"):
        train(config(tmp_path / "file" / "run"), MODEL_CFG, progress=False, data=data,
              callback=lambda step, *a: steps.append(step))
    assert steps == []


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_run_folder_fails_before_training_and_keeps_its_checkpoint(tmp_path, data):
    train(config(tmp_path, steps=3), MODEL_CFG, progress=False, data=data)
    before = (tmp_path / "last.pt").read_bytes()
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(RunFolderError, match=rf"^cannot write to run folder {tmp_path}: Permission denied"):
            train(config(tmp_path, steps=6), MODEL_CFG, resume=True, progress=False, data=data)
    finally:
        tmp_path.chmod(0o755)
    assert (tmp_path / "last.pt").read_bytes() == before


def test_an_interrupted_run_closes_its_progress_bar_at_the_step_it_stopped(tmp_path, data, monkeypatch):
    import io

    from tqdm import tqdm
    bars = []

    def progress_bar(run):
        bars.append(tqdm(total=run.cfg.steps, initial=run.step, file=io.StringIO()))
        return bars[-1]
    monkeypatch.setattr(training, "_progress_bar", progress_bar)
    with pytest.raises(Stop):
        train(config(tmp_path), MODEL_CFG, data=data, callback=stop_at(2))
    assert bars[0].n == 2 and bars[0].disable  # tqdm.close() disables the bar: closed now, not when collected


@pytest.mark.parametrize("num_classes, dropout, steps, eta, labels, guidance", [
    (10, 0.1, 2, 1.0, "random", 0.1), (10, 0.0, 2, 1.0, "random", 0.0), (None, 0.1, 2, 1.0, None, 0.0),
    (10, 0.1, 9, 1.0, "random", 0.1), (10, 0.1, 10, 0.7, "random", 0.0), (None, 0.1, 10, 0.7, None, 0.0)])
def test_a_trained_model_samples_with_the_recipes_settings_without_flags(tmp_path, data, num_classes, dropout, steps,
                                                                          eta, labels, guidance):
    """last.pt and its export recommend DDIM 20, eta 1, eps / 0.98, guidance 0.1 (best measured on short runs); no
    guidance where no "no label" was trained, nor labels for an unconditional model; from 10 epochs on (here one batch
    of all 64 pictures per step, so steps = epochs) eta 0.7 without guidance, as the release. load_model's
    model.sampling is what sample() then uses for every knob left out."""
    from ddpm_lite.samplers import SamplerSettings
    model_cfg = tiny_config(image_size=8, num_classes=num_classes)
    train(config(tmp_path / "run", steps=steps, batch_size=64, label_dropout=dropout), model_cfg, data=data,
          progress=False)
    exported = checkpoint.export_ema(tmp_path / "run" / "last.pt", tmp_path / "mine.pt")
    model, _ = checkpoint.build(checkpoint.load(exported))
    assert model.sampling == SamplerSettings(sampler="ddim", steps=20, eta=eta, eps_scaling=0.98, guidance=guidance,
                                             labels=labels)
