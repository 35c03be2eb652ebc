"""The command line: a smoke run on real MNIST, and one line on stderr with exit code 2 for every bad input."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import REPO
from ddpm_lite.cli import main


def run_cli(capsys, *argv):
    """main(argv) -> (exit code, stdout, stderr); argparse's own errors arrive as SystemExit."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_usage_error(result, message):
    code, out, err = result
    assert code == 2, (code, out, err)
    assert message in err, err
    assert "Traceback" not in err and "Traceback" not in out
    assert out == ""


def sample_args(ckpt, tmp_path, *extra):
    return ("sample", "--checkpoint", ckpt, "--out", tmp_path / "s.png", "--no-progress", *extra)


@pytest.mark.parametrize("flag,value,message", [
    ("--n", "0", "argument --n: must be a positive integer, got 0"),
    ("--steps", "0", "argument --steps: must be a positive integer, got 0"),
    ("--label", "seven", "argument --label: must be an integer 0..9, 'all', 'random', 'none', got 'seven'"),
    ("--sampler", "euler", "argument --sampler: unknown sampler 'euler'; choose one of ddpm, ddim, dpm++"),
    ("--n", "-3", "argument --n: must be a positive integer, got -3"),
    ("--eta", "-1", "argument --eta: must be a number >= 0, got -1"),
    ("--guidance", "-2", "argument --guidance: must be a number >= 0, got -2"),
])
def test_bad_numbers_are_refused_by_the_parser(capsys, tiny_ckpts, tmp_path, flag, value, message):
    assert_usage_error(run_cli(capsys, *sample_args(tiny_ckpts.cond, tmp_path, f"{flag}={value}")), message)


@pytest.mark.parametrize("extra,message", [
    (("--steps", "21"), "error: --steps must be between 1 and T=20, got 21"),
    (("--label", "10"), "error: --label must be between 0 and 9, got 10"),
    (("--label=-1",), "error: --label must be between 0 and 9, got -1"),
    (("--guidance", "2"), "error: --guidance needs --label K, all or random"),
    (("--sampler", "ddpm", "--eta", "1"),
     "error: --eta (the sampler's noise) applies to --sampler ddim or dpm++ only, not ddpm"),
])
def test_bad_sample_flags_give_one_line_and_exit_2(capsys, tiny_ckpts, tmp_path, extra, message):
    result = run_cli(capsys, *sample_args(tiny_ckpts.cond, tmp_path, *extra))
    assert_usage_error(result, message)
    assert result[2].count("\n") == 1
    assert not (tmp_path / "s.png").exists()


@pytest.mark.parametrize("label", ["3", "all", "random"])
def test_label_on_an_unconditional_checkpoint(capsys, tiny_ckpts, tmp_path, label):
    result = run_cli(capsys, *sample_args(tiny_ckpts.uncond, tmp_path, "--label", label))
    assert_usage_error(result, "error: --label given but this checkpoint is unconditional")


def test_missing_checkpoint(capsys, tmp_path):
    result = run_cli(capsys, *sample_args(tmp_path / "none.pt", tmp_path))
    assert_usage_error(result, f"error: checkpoint {tmp_path / 'none.pt'} does not exist")


def test_foreign_checkpoint(capsys, tmp_path):
    torch.save({"state_dict": {"w": torch.zeros(3)}}, tmp_path / "foreign.pt")
    result = run_cli(capsys, *sample_args(tmp_path / "foreign.pt", tmp_path))
    assert_usage_error(result, "is not a ddpm-lite checkpoint (no format tag 'ddpm-lite')")


def test_truncated_checkpoint(capsys, tiny_ckpts, tmp_path):
    data = tiny_ckpts.cond.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[:len(data) // 3])
    result = run_cli(capsys, *sample_args(tmp_path / "cut.pt", tmp_path))
    assert_usage_error(result, "is not a checkpoint at all (not a PyTorch file, or cut short)")


def test_steps_and_epochs_together_fail_before_loading_data(capsys, tmp_path):
    result = run_cli(capsys, "train", "--steps", "5", "--epochs", "1", "--data-root", tmp_path / "no-data",
                     "--out", tmp_path / "run")
    assert_usage_error(result, "error: give --steps or --epochs, not both")
    assert_usage_error(run_cli(capsys, "train", "--epochs", "0", "--data-root", tmp_path, "--out", tmp_path),
                       "argument --epochs: must be a positive number, got 0")
    assert not (tmp_path / "run").exists()


def test_export_of_a_missing_file(capsys, tmp_path):
    result = run_cli(capsys, "export", tmp_path / "last.pt", tmp_path / "ema.pt")
    assert_usage_error(result, "does not exist")


TINY_FLAGS = ("--base-channels", "8", "--channel-mults", "1,2", "--attention-levels", "1", "--T", "20",
              "--batch-size", "8", "--warmup", "2", "--ckpt-every", "2", "--device", "cpu", "--no-progress")


@pytest.mark.parametrize("extra, message", [
    (("--resume",), "error: --resume given but there is no checkpoint at"),
    (("--init", "nowhere.pt"), "error: --init nowhere.pt: no such file"),
    (("--resume", "--init", "nowhere.pt"), "error: give --resume (continue a run) or --init"),
])
def test_resume_and_init_flags_fail_before_loading_data(capsys, tmp_path, monkeypatch, extra, message):
    monkeypatch.setenv("DDPM_LITE_DATA", str(tmp_path / "no-data-here"))  # reaching the data would fail differently
    result = run_cli(capsys, "train", "--steps", "2", *TINY_FLAGS, "--out", tmp_path / "run", *extra)
    assert_usage_error(result, message)


def test_init_takes_a_shipped_checkpoint_by_name(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("DDPM_LITE_DATA", str(tmp_path / "no-data-here"))
    monkeypatch.chdir(tmp_path)  # no file of that name here: the name is the shipped file's
    code, out, err = run_cli(capsys, "train", "--steps", "2", *TINY_FLAGS, "--out", tmp_path / "run",
                             "--init", "ddpm_mnist.pt")
    assert code != 0 and "no such file" not in err and "MNIST" in err  # past the flag, stopped at the missing data


def test_train_sample_and_export_on_real_mnist(capsys, mnist, tmp_path):
    import imageio.v3 as iio
    run = tmp_path / "run"
    code, out, err = run_cli(capsys, "train", "--steps", "4", *TINY_FLAGS, "--out", run, "--export", run / "ema.pt")
    assert code == 0, err
    assert "trained 4 steps" in out and "exported EMA weights" in out
    # the line before the first step: 4 x 8 of MNIST's 60,000 training digits; --device cpu, so no GPU hint
    assert "training 4 steps (0.000533 epochs of 60,000 images, batch 8) on cpu\n" in err
    code, out, err = run_cli(capsys, "train", "--steps", "6", *TINY_FLAGS, "--out", run, "--resume")
    assert code == 0 and "trained 6 steps" in out, err
    assert "continuing to 6 steps (0.0008 epochs of 60,000 images, batch 8) on cpu\n" in err

    png, gif, npy = tmp_path / "d.png", tmp_path / "d.gif", tmp_path / "d.npy"
    code, out, err = run_cli(capsys, "sample", "--checkpoint", run / "ema.pt", "--n", "10", "--label", "all",
                             "--guidance", "1", "--steps", "4", "--out", png, "--gif", gif, "--npy", npy,
                             "--no-progress")
    assert code == 0, err
    samples = np.load(npy)
    assert samples.dtype == np.uint8 and samples.shape == (10, 28, 28)
    assert iio.imread(png).shape[:2] == (32, 10 * 30 + 2)  # one row of ten, 2-pixel padding
    # x_t at each of the 4 steps, then the samples, as RGB frames (a 1-bit grey palette trips Pillow's reader)
    frames = iio.imread(gif, index=None)
    assert frames.shape == (5, 32, 10 * 30 + 2, 3)
    assert np.array_equal(frames[-1][2:30, 2:30, 0], samples[0])  # the last frame shows the final samples
    assert iio.immeta(gif)["loop"] == 0


def test_python_m_ddpm_lite_runs_in_a_fresh_process(capsys, tiny_ckpts, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    argv = ["sample", "--checkpoint", str(tiny_ckpts.cond), "--n", "3", "--steps", "3", "--label", "5",
            "--seed", "9", "--no-progress"]
    proc = subprocess.run([sys.executable, "-m", "ddpm_lite", *argv, "--out", str(tmp_path / "p.png"),
                           "--npy", str(tmp_path / "p.npy")], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "wrote" in proc.stdout and "Traceback" not in proc.stderr
    code, _, err = run_cli(capsys, *argv, "--out", tmp_path / "q.png", "--npy", tmp_path / "q.npy")
    assert code == 0, err
    assert np.array_equal(np.load(tmp_path / "p.npy"), np.load(tmp_path / "q.npy"))  # same seed, same digits

    bad = subprocess.run([sys.executable, "-m", "ddpm_lite", "sample", "--checkpoint", str(tmp_path / "none.pt")],
                         env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.startswith("error: checkpoint") and bad.stderr.count("\n") == 1, bad.stderr


@pytest.mark.parametrize("flag, values, bad, message", [
    ("--spacing", ("1", "2.5"), ("0.5",), "must be a number >= 1 (1 = evenly spaced steps), got {}"),
    ("--eps-scaling", ("1", "0.98"), ("0", "-0.5", "nan", "inf"), "must be a positive number, got {}"),
])
def test_sample_float_flags_reach_the_sampler_and_bad_ones_are_refused(capsys, tiny_ckpts, tmp_path, monkeypatch,
                                                                       flag, values, bad, message):
    from ddpm_lite.cli import sample_command as sample_cmd
    seen, key = [], flag[2:].replace("-", "_")
    real = sample_cmd.sample
    monkeypatch.setattr(sample_cmd, "sample", lambda model, *a, **kw: seen.append(getattr(model.sampling, key))
                        or real(model, *a, **kw))
    for value in values:
        code, _, err = run_cli(capsys, *sample_args(tiny_ckpts.cond, tmp_path, "--n", "2", "--steps", "3",
                                                    flag, value))
        assert code == 0, err
    assert seen == [float(v) for v in values]
    for value in bad:
        code, _, err = run_cli(capsys, *sample_args(tiny_ckpts.cond, tmp_path, flag, value))
        assert code == 2 and f"argument {flag}: " + message.format(value) in err


def test_sample_precision_flag_reaches_the_sampler(capsys, tiny_ckpts, tmp_path):
    npy = {}
    for precision in ("fp32", "bf16"):
        npy[precision] = tmp_path / f"{precision}.npy"
        code, _, err = run_cli(capsys, *sample_args(tiny_ckpts.cond, tmp_path, "--n", "4", "--steps", "3", "--label",
                                                    "all", "--precision", precision, "--npy", npy[precision]))
        assert code == 0, err
    full, low = (np.load(npy[p]).astype(int) for p in ("fp32", "bf16"))
    assert (full != low).any() and np.abs(full - low).mean() < 8  # bf16 rounding: a few grey levels on average
    code, _, err = run_cli(capsys, *sample_args(tiny_ckpts.cond, tmp_path, "--precision", "fp8"))
    assert code == 2 and "argument --precision: unknown precision 'fp8'; choose one of fp32, bf16, fp16" in err


@pytest.mark.parametrize("command", [("sample", "--out", "s.png"), ("evaluate", "--n", "10"),
                                     ("train", "--steps", "1")])
@pytest.mark.parametrize("device,cuda,count,message", [
    ("gpu", False, 0, "argument --device: 'gpu' is not a device; use cpu, cuda, cuda:N or mps"),
    ("cuda", False, 0, "argument --device: 'cuda': PyTorch sees no CUDA GPU on this machine; use cpu"),
    ("cuda:3", True, 1, "argument --device: 'cuda:3': this machine has 1 CUDA device(s), numbered from 0"),
])
def test_a_device_this_machine_lacks_is_refused_before_any_work(capsys, monkeypatch, tmp_path, command, device,
                                                                 cuda, count, message):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.chdir(tmp_path)  # nothing may be written, no data or checkpoint read
    assert_usage_error(run_cli(capsys, *command, "--device", device), message)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("device, asked, resume, bar, expected", [
    ("cpu", "auto", False, True, "training 3,750 steps (2 epochs of 60,000 images, batch 32) on cpu; the bar below "
     "shows the time left. No GPU found, so this runs on the CPU; with one, the same command uses it (on Colab: "
     "Runtime > Change runtime type > GPU)"),
    ("cpu", "cpu", False, False, "training 3,750 steps (2 epochs of 60,000 images, batch 32) on cpu"),
    ("cuda", "auto", True, True, "continuing to 3,750 steps (2 epochs of 60,000 images, batch 32) on cuda; the bar "
     "below shows the time left"),
])
def test_the_train_command_says_what_it_will_do_and_where(device, asked, resume, bar, expected):
    """The default run (2 epochs = 3,750 steps of 32); the GPU hint only where auto found no GPU."""
    from ddpm_lite.cli.train_command import start_line
    from ddpm_lite.recipe import TrainConfig
    assert start_line(TrainConfig(steps=3750), 60_000, device, asked=asked, resume=resume, bar=bar) == expected


def test_train_accepts_auto_and_sample_a_present_device():
    from ddpm_lite.cli import build_parser
    assert build_parser().parse_args(["train"]).device == "auto"
    assert build_parser().parse_args(["sample", "--device", "cpu"]).device == "cpu"
    assert build_parser().parse_args(["evaluate", "--device", "meta"]).device == "meta"


def recommending_checkpoint(tiny_ckpts, tmp_path, **settings):
    from ddpm_lite import checkpoint
    from ddpm_lite.samplers import SamplerSettings
    return checkpoint.export_ema(tiny_ckpts.cond, tmp_path / "rec.pt", sampling=SamplerSettings(**settings))


def test_sample_with_no_flags_uses_the_checkpoints_recommended_settings(capsys, tiny_ckpts, tmp_path):
    from ddpm_lite import load_model, sample
    from ddpm_lite.lab.viz import to_npy
    ckpt = recommending_checkpoint(tiny_ckpts, tmp_path, steps=3, eta=0.7, eps_scaling=0.98, labels="random")
    code, _, err = run_cli(capsys, "sample", "--checkpoint", ckpt, "--n", "6", "--seed", "2", "--out",
                           tmp_path / "s.png", "--npy", tmp_path / "s.npy", "--no-progress")
    assert code == 0, err
    model, schedule = load_model(tiny_ckpts.cond)  # no settings of its own: give them all
    labels = torch.randint(0, 10, (6,), generator=torch.Generator().manual_seed(2))
    x = sample(model, schedule, 6, steps=3, eta=0.7, eps_scaling=0.98, labels=labels,
               generator=torch.Generator().manual_seed(2))
    assert np.array_equal(np.load(tmp_path / "s.npy"), to_npy(x))
    # a flag given replaces that one setting: --label none is the "no label" path, the rest still recommended
    code, _, err = run_cli(capsys, "sample", "--checkpoint", ckpt, "--n", "6", "--seed", "2", "--label", "none",
                           "--out", tmp_path / "s.png", "--npy", tmp_path / "n.npy", "--no-progress")
    x = sample(model, schedule, 6, steps=3, eta=0.7, eps_scaling=0.98, generator=torch.Generator().manual_seed(2))
    assert code == 0 and np.array_equal(np.load(tmp_path / "n.npy"), to_npy(x)), err


def test_export_records_sampling_flags_as_the_recommendation(capsys, tiny_ckpts, tmp_path):
    from ddpm_lite import checkpoint
    dst = tmp_path / "rec.pt"
    code, out, err = run_cli(capsys, "export", tiny_ckpts.cond, dst, "--steps", "7", "--eta", "0.7", "--label",
                             "random")
    assert code == 0, err
    s = checkpoint.load_model(dst)[0].sampling
    assert (s.sampler, s.steps, s.eta, s.labels, s.eps_scaling) == ("ddim", 7, 0.7, "random", 1.0)
    assert run_cli(capsys, "export", dst, tmp_path / "b.pt", "--label", "none")[0] == 0
    s = checkpoint.load_model(tmp_path / "b.pt")[0].sampling
    assert (s.steps, s.eta, s.labels) == (7, 0.7, None)


def test_a_path_that_cannot_be_written_gets_one_line_before_any_work(capsys, tiny_ckpts, tmp_path, monkeypatch):
    from ddpm_lite.cli import sample_command as sample_cmd
    monkeypatch.setattr(sample_cmd, "sample", lambda *a, **kw: pytest.fail("sampled before checking the output"))
    (tmp_path / "file").write_text("in the way")
    result = run_cli(capsys, *sample_args(tiny_ckpts.cond, tmp_path, "--npy", tmp_path / "file" / "x.npy"))
    assert_usage_error(result, f"error: cannot write {tmp_path / 'file' / 'x.npy'}: {tmp_path / 'file'} is not a "
                               f"writable folder")
    assert_usage_error(run_cli(capsys, *sample_args(tiny_ckpts.cond, tmp_path, "--gif", tmp_path)),
                       f"error: {tmp_path} is a folder; give a file name to write")


def test_a_failing_write_still_gets_one_line(capsys, tiny_ckpts, tmp_path, monkeypatch):
    """Past the checks (a disk that fills up, a folder removed meanwhile): OSError becomes one line too."""
    from ddpm_lite.cli import sample_command as sample_cmd

    def full_disk(*a, **kw):
        raise OSError(28, "No space left on device", str(tmp_path / "s.png"))
    monkeypatch.setattr(sample_cmd, "save_grid", full_disk)
    result = run_cli(capsys, *sample_args(tiny_ckpts.cond, tmp_path, "--n", "2", "--steps", "2"))
    assert_usage_error(result, f"error: No space left on device: {tmp_path / 's.png'}")


def test_a_request_that_cannot_fit_in_memory_is_refused_before_any_work(capsys, tiny_ckpts, tmp_path):
    result = run_cli(capsys, *sample_args(tiny_ckpts.cond, tmp_path, "--n", str(10 ** 12)))
    assert_usage_error(result, "error: --n 1000000000000 asks for")
    assert "more than this machine's" in result[2] and not (tmp_path / "s.png").exists()


def test_non_finite_weights_get_one_line(capsys, tiny_ckpts, tmp_path):
    from ddpm_lite import checkpoint
    ckpt = checkpoint.load(tiny_ckpts.cond)
    ckpt["ema"]["conv_out.weight"][0, 0, 0, 0] = float("nan")
    checkpoint.save({k: v for k, v in ckpt.items() if k not in ("format", "version")}, tmp_path / "nan.pt")
    assert_usage_error(run_cli(capsys, *sample_args(tmp_path / "nan.pt", tmp_path)),
                       "holds non-finite values (NaN or inf) in ema.conv_out.weight")


@pytest.mark.parametrize("flag, value, message", [
    ("--ema-decay", "1.5", "must be in [0, 1), got 1.5"), ("--lr", "0", "must be in (0, inf), got 0"),
    ("--label-dropout", "-0.1", "must be in [0, 1], got -0.1"), ("--seed", "-1", "must be an integer in [0, "),
    ("--warmup", "-5", "must be an integer >= 0, got -5"), ("--grad-clip", "nan", "must be in (0, inf), got nan"),
])
def test_train_settings_outside_their_meaning_are_refused_by_the_parser(capsys, tmp_path, flag, value, message):
    result = run_cli(capsys, "train", "--out", tmp_path / "run", f"{flag}={value}")
    assert_usage_error(result, f"argument {flag}: {message}")
    assert not (tmp_path / "run").exists()


def test_a_second_training_run_on_the_same_folder_gets_one_line(capsys, mnist, tmp_path):
    """The first run holds the run folder's lock (here: taken directly, as a running train() would)."""
    from ddpm_lite.parallel.distributed import run_folder
    with run_folder(tmp_path / "run", None):
        result = run_cli(capsys, "train", "--steps", "2", *TINY_FLAGS, "--out", tmp_path / "run")
    assert_usage_error(result, "error: another training run is using run folder")


@pytest.mark.parametrize("classes, expected", [(12, 12), (0, None)])
def test_train_on_a_folder_takes_its_classes_from_the_folder(capsys, tmp_path, classes, expected):
    """12 class subfolders give a 12-class network (the command once fixed 10); a flat folder an unconditional one."""
    from PIL import Image
    root = tmp_path / "pictures"
    for i in range(24):
        folder = root / (f"class{i % classes:02d}" if classes else "")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((28, 28), 10 * i, dtype=np.uint8)).save(folder / f"{i:03d}.png")
    run = tmp_path / "run"
    code, out, err = run_cli(capsys, "train", "--dataset", "folder", "--data-root", root, "--steps", "2",
                             *TINY_FLAGS, "--out", run)
    assert code == 0, err
    from ddpm_lite import checkpoint
    assert checkpoint.load(run / "last.pt")["model_config"]["num_classes"] == expected


def test_evaluate_without_mnist_fails_before_it_samples(capsys, monkeypatch, tmp_path, tiny_ckpts):
    from ddpm_lite.cli import evaluate_command
    sampled = []
    monkeypatch.setattr(evaluate_command, "generate", lambda *a: sampled.append(1))
    monkeypatch.setattr("ddpm_lite.data._torchvision_dataset", _no_download)
    code, _, err = run_cli(capsys, "evaluate", "--checkpoint", str(tiny_ckpts.cond), "--n", "10",
                           "--data-root", str(tmp_path))
    assert code == 2 and "MNIST" in err and sampled == []


def _no_download(name, root, train, download):
    from ddpm_lite.errors import DataNotFoundError
    raise DataNotFoundError(f"MNIST was not found under {root}")
