"""Smoke tests of the speed suite (benchmarks/versus_diffusers.py): it runs end to end at tiny sizes and prints its
tables; `python -m ddpm_lite benchmark` runs it from a checkout and says where it is elsewhere.

No timing is asserted: speed figures live in benchmarks/README.md, measured by `python -m benchmarks.versus_diffusers`.
"""
from __future__ import annotations

import importlib.util
import time

import pytest

from benchmarks import timing, versus_diffusers
from ddpm_lite import cli

HAS_DIFFUSERS = importlib.util.find_spec("diffusers") is not None


def run_suite(capsys, *argv):
    code = versus_diffusers.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_smoke_run_prints_every_table(capsys):
    code, out, _ = run_suite(capsys, "--smoke", "--threads", "1", "--no-memory")
    assert code == 0
    for header in ("training step", "DDPM 1000", "DDIM 2", "student / row", "forward, batch 2", "machine peak"):
        assert header in out
    assert "ddpm-lite" in out and "load average" in out
    if HAS_DIFFUSERS:
        assert "throughput ddpm-lite / diffusers" in out and "diffusers / ours" in out
    else:
        assert "diffusers is not installed" in out


def test_training_memory_is_measured_in_a_subprocess(capsys):
    code, out, _ = run_suite(capsys, "--smoke", "--threads", "1", "--only", "train", "--no-diffusers")
    assert code == 0
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("training step"))
    row = lines[header + 2]  # below the header and its dashes
    assert row.startswith("ddpm-lite") and row.split()[-1].isdigit(), row  # MB, not "failed: ..."
    assert "diffusers left out" in out


@pytest.mark.parametrize("argv, message", [
    (["--only", "sampling"], "unknown --only section(s) sampling"),
    (["--ddim-steps", "0"], "--ddim-steps must be"),
    (["--threads", "0"], "argument --threads: must be a positive integer, got 0"),
])
def test_bad_options_fail_before_any_work(capsys, argv, message):
    try:
        code, out, err = run_suite(capsys, *argv)
    except SystemExit as e:  # refused by the parser
        code, (out, err) = e.code, capsys.readouterr()
    assert code == 2 and message in err and "training step" not in out


def test_the_command_runs_the_suite_from_a_checkout(capfd):
    assert cli.main(["benchmark", "--smoke", "--threads", "1", "--only", "sample", "--no-diffusers"]) == 0
    out = capfd.readouterr().out
    assert "ddpm-lite speed benchmark (SMOKE" in out and "DDPM 1000" in out and "training step" not in out


def test_the_command_says_where_the_suite_lives_outside_a_checkout(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["benchmark", "--smoke"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "benchmarks/" in err and "python -m benchmarks.versus_diffusers" in err


def test_measure_keeps_the_fastest_of_interleaved_runs():
    calls, naps = [], iter([0, 0.3, 0.01, 0.01])  # a's warm-up, then a slow first repeat

    def a():
        calls.append("a")
        time.sleep(next(naps))

    times = timing.measure({"a": a, "b": lambda: calls.append("b")}, repeat=3, warmup=1)
    assert calls == ["a", "b"] * 4  # one warm-up each, then round-robin
    assert 0.01 <= times["a"].wall_s < 0.09  # the fastest repeat: not the slow one, nor the mean (0.107 s)
    assert times["a"].cpu_s < times["a"].wall_s  # a sleep takes wall time, not CPU time
    assert times["b"].wall_s < 0.01


def test_count_flops_of_a_matmul_is_exact():
    import torch
    a, b = torch.randn(3, 4), torch.randn(4, 5)
    assert timing.count_flops(lambda: a @ b) == 2 * 3 * 4 * 5


def test_format_table_aligns_columns():
    text = timing.format_table(["name", "value"], [["a", "1"], ["long name", "22"]])
    lines = text.splitlines()
    assert lines[0] == "name       value"
    assert lines[2] == "a              1" and lines[3] == "long name     22"


@pytest.mark.skipif(not HAS_DIFFUSERS, reason="diffusers is not installed (pip install '.[bench]')")
def test_matched_widths_come_closest_to_our_parameter_count():
    from benchmarks.versus_diffusers import diffusers_unet, matched_widths
    from ddpm_lite.unet import UNet, UNetConfig, count_parameters
    cfg = UNetConfig(in_channels=1, image_size=28, base_channels=32, channel_mults=(1, 2, 2), num_res_blocks=1,
                     attention_levels=(2,), num_classes=10, groups=8, dropout=0.0)  # the default of sessions 1-7
    assert matched_widths(cfg) == (24, 56, 56)
    ours = count_parameters(UNet(cfg))

    def gap(widths):
        return abs(count_parameters(diffusers_unet(cfg, widths)) - ours)
    assert all(gap((24, 56, 56)) < gap(w) for w in [(24, 48, 48), (24, 64, 64), (16, 56, 56), (32, 56, 56)])
