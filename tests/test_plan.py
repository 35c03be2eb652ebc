"""Planning a run: a budget to steps and its message (exact
strings), the probe's arithmetic on a scripted clock, and when bf16 autocast pays."""
import itertools

import pytest
import torch

from conftest import tiny_config, tiny_train_config, tiny_train_data
from ddpm_lite.lab import plan
from ddpm_lite.recipe import TrainConfig


@pytest.mark.parametrize("seconds, text", [(0.2, "1 s"), (45, "45 s"), (89.4, "89 s"), (90, "2 min"), (720, "12 min"),
                                           (89 * 60, "89 min"), (90 * 60, "1 h 30 min"), (125 * 60, "2 h 05 min")])
def test_durations_read_as_people_say_them(seconds, text):
    assert plan.duration(seconds) == text


def test_a_budget_shorter_than_a_full_run_says_what_the_full_run_would_take():
    p = plan.for_budget(0.5, budget_s=120, n_images=60_000, batch_size=128, full_epochs=2, device="cpu")
    assert (p.steps, p.full_steps) == (240, 938)
    assert p.message() == ("On cpu, one step of 128 pictures takes 0.5 s (measured). This run: 240 steps (0.51 epochs "
                           "of 60,000 pictures), about 2 min. A full run of 2 epochs (938 steps) would take about "
                           "8 min here.")


def test_a_budget_that_holds_the_full_run_runs_it_and_no_longer():
    p = plan.for_budget(0.0125, budget_s=300, n_images=60_000, batch_size=128, full_epochs=2, device="cuda")
    assert p.steps == 938 and p.seconds() == pytest.approx(11.725)
    assert p.message() == ("On cuda, one step of 128 pictures takes 0.0125 s (measured). This run: 938 steps (2 epochs "
                           "of 60,000 pictures), about 12 s. That is a full run (2 epochs).")
    assert plan.for_budget(3.0, budget_s=1, n_images=100, batch_size=10, full_epochs=1).steps == 1  # at least one
    capped = plan.for_budget(0.0125, budget_s=300, n_images=60_000, batch_size=128, full_epochs=2, max_steps=6)
    assert capped.steps == 6 and capped.full_steps == 938
    unlimited = plan.for_budget(2.0, budget_s=float("inf"), n_images=5000, batch_size=128, full_epochs=2)
    assert unlimited.steps == 79 and unlimited.message().endswith("about 3 min. That is a full run (2 epochs).")  # 158 s


def test_the_plans_training_config_is_the_recipe_with_a_warm_up_that_fits():
    short = plan.for_budget(1.0, budget_s=100, n_images=60_000, batch_size=64, full_epochs=2)
    cfg = short.train_config(out_dir="run", lr=2e-3)
    assert (cfg.steps, cfg.batch_size, cfg.warmup, cfg.lr, cfg.out_dir) == (100, 64, min(TrainConfig.warmup, 20), 2e-3,
                                                                            "run")
    assert cfg.ema_decay == TrainConfig.ema_decay  # everything else is the recipe's
    assert short.train_config(warmup=3).warmup == 3  # a warm-up given is kept
    long = plan.for_budget(0.01, budget_s=10 ** 6, n_images=60_000, batch_size=128, full_epochs=20)
    assert long.train_config().warmup == min(TrainConfig.warmup, long.steps // 5)


def test_the_probe_times_the_steps_after_the_warm_up_in_a_throwaway_folder(tmp_path, monkeypatch):
    clock = (k * k for k in itertools.count(1))  # 1, 4, 9, 16, ...: each interval different
    monkeypatch.setattr(plan, "perf_counter", lambda: next(clock))
    cfg = tiny_train_config(tmp_path / "never")
    seconds = plan.seconds_per_step(cfg, tiny_config(image_size=8), tiny_train_data(), warmup=2, steps=3)
    assert seconds == (25 - 4) / 3  # stamps after steps 1..5 are 1, 4, 9, 16, 25: steps 3..5 took 25 - 4
    assert next(clock) == 36  # five steps were taken, no more
    assert not (tmp_path / "never").exists()  # the run's own folder is untouched


def test_the_probe_measures_real_time_and_refuses_no_steps(tmp_path):
    seconds = plan.seconds_per_step(tiny_train_config(tmp_path), tiny_config(image_size=8), tiny_train_data(),
                                    warmup=1, steps=2)
    assert 0 < seconds < 60
    with pytest.raises(ValueError, match="warmup and steps must be at least 1"):
        plan.seconds_per_step(tiny_train_config(tmp_path), tiny_config(image_size=8), tiny_train_data(), warmup=0)


def test_bf16_autocast_pays_from_compute_capability_8(monkeypatch):
    assert plan.amp_pays("cpu") is False
    for capability, pays in (((7, 5), False), ((8, 0), True), ((9, 0), True)):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None, c=capability: c)
        assert plan.amp_pays("cuda") is pays


def test_step_seconds_leaves_out_the_first_steps():
    stamps = [1.0, 2.0, 2.5, 3.0, 3.5]  # time at the end of each of 5 steps
    assert plan.step_seconds(stamps, 1) == 2.5 / 4
    assert plan.step_seconds(stamps, 2) == 0.5
