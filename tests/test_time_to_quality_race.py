"""benchmarks/time_to_quality_race.py: the quality levels and the first budget that meets them on hand-made score
rows, the training clock's snapshots, and a smoke race that trains both recipes for seconds and scores them.

No figure of the race is asserted: they are measured by the command in benchmarks/README.md.
"""
from __future__ import annotations

import importlib.util
import json
from contextlib import contextmanager

import pytest
import torch

from benchmarks import time_to_quality_race as race
from ddpm_lite import checkpoint

HAS_DIFFUSERS = importlib.util.find_spec("diffusers") is not None
REAL = dict(fid_real=0.74, confident_real=0.979, balance_real=0.999)


def row(recipe="ours", budget=10.0, *, fid, confident, balance, **real):
    return {"recipe": recipe, "budget_min": budget, "fid": fid, "confident": confident, "balance": balance,
            **REAL, **real}


@pytest.mark.parametrize("figures, bar, recognisable", [
    # every figure exactly on its edge: FID = 2 x 0.74, confident 0.02 below (0.979 - 0.959 is 0.020000000000000018
    # in floats), balance 0.02 below
    (dict(fid=1.48, confident=0.959, balance=0.979), True, True),
    (dict(fid=1.4801, confident=0.979, balance=0.999), False, True),  # FID just over 2x
    (dict(fid=1.0, confident=0.9589, balance=0.999), False, True),  # confident 0.0201 below
    (dict(fid=1.0, confident=1.0, balance=0.999), False, True),  # 0.021 above real: too sure is off too
    (dict(fid=1.0, confident=0.979, balance=0.978), False, False),  # balance 0.021 below
    (dict(fid=90.0, confident=0.929, balance=1.0), False, True),  # confident exactly 0.05 below; FID not asked
    (dict(fid=90.0, confident=0.928, balance=1.0), False, False),
])
def test_levels_on_hand_made_rows(figures, bar, recognisable):
    assert race.meets(row(**figures), race.LEVELS["bar"]) is bar
    assert race.meets(row(**figures), race.LEVELS["recognisable"]) is recognisable


def test_first_budget_per_recipe_and_level():
    rows = [row("ours", 40.0, fid=1.2, confident=0.975, balance=0.998),
            row("ours", 10.0, fid=9.0, confident=0.94, balance=0.999),  # recognisable
            row("ours", 20.0, fid=1.4, confident=0.97, balance=0.997),  # the bar
            row("diffusers", 10.0, fid=60.0, confident=0.7, balance=0.98),
            row("diffusers", 40.0, fid=20.0, confident=0.92, balance=0.999),  # worse again at 40: 20 stays first
            row("diffusers", 20.0, fid=12.0, confident=0.95, balance=0.99)]  # recognisable
    firsts = race.first_budgets(rows)
    assert firsts == {"ours": {"bar": 20.0, "recognisable": 10.0},
                      "diffusers": {"bar": None, "recognisable": 20.0}}
    assert race.crossing_lines(firsts) == [
        "ours: bar (FID <= 2x real's, confident share within 0.02, balance within 0.02) first at 20 min; "
        "recognisable (confident share within 0.05, balance within 0.02) first at 10 min",
        "diffusers: bar (FID <= 2x real's, confident share within 0.02, balance within 0.02) not within the budgets; "
        "recognisable (confident share within 0.05, balance within 0.02) first at 20 min"]


class FakeClock:
    """A training clock set by hand; paused() blocks move nothing."""

    def __init__(self):
        self.now = 0.0

    def seconds(self):
        return self.now

    @contextmanager
    def paused(self):
        yield


def test_snapshots_are_taken_as_the_clock_passes_each_budget(tmp_path):
    clock, weights = FakeClock(), lambda: {"w": torch.ones(2)}
    snaps = race.Snapshots(tmp_path, (0.5, 1.0, 2.0), clock, {"base": 1}, {"recipe": "ours"})
    clock.now = 29.9
    assert snaps.after_step(3, weights) is False and not list(tmp_path.iterdir())
    clock.now = 61.0  # passes 0.5 and 1.0 min in one step: both get this step's weights
    assert snaps.after_step(7, weights) is False
    clock.now = 70.0
    snaps.finish(8, weights)  # the run ended before 2 min
    saved = [checkpoint.load(tmp_path / f"budget_0{i}.pt") for i in (1, 2, 3)]
    assert [(c["step"], c["meta"]["budget_min"], c["meta"]["train_s"], c["meta"]["ended_early"]) for c in saved] == [
        (7, 0.5, 61.0, False), (7, 1.0, 61.0, False), (8, 2.0, 70.0, True)]
    assert saved[0]["base"] == 1 and saved[0]["meta"]["recipe"] == "ours"
    assert torch.equal(saved[0]["ema"]["w"], torch.ones(2))


def test_the_clock_leaves_out_paused_time(monkeypatch):
    readings = iter([10.0, 12.0, 15.0, 20.0])  # made at 10 s, paused from 12 s to 15 s, read at 20 s
    monkeypatch.setattr(race.time, "perf_counter", lambda: next(readings))
    clock = race.Clock()
    with clock.paused():
        pass
    assert clock.seconds() == 7.0


@pytest.mark.parametrize("argv, message", [
    (["--budgets", "10,x"], "--budgets: must be comma-separated positive minutes"),
    (["--budgets", "0,10"], "--budgets: must be comma-separated positive minutes"),
    (["--n", "3"], "--n must be more than 3"),
    (["--threads", "0"], "--threads: must be a positive integer"),
])
def test_bad_options_fail_before_any_work(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        race.main(argv)
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_budgets_are_sorted_and_unique():
    assert race.budget_list("40,10,20,10") == (10.0, 20.0, 40.0)


@pytest.mark.skipif(not HAS_DIFFUSERS, reason="diffusers is not installed (pip install '.[bench]')")
def test_smoke_race_scores_both_recipes_and_scores_again_the_same(mnist, tmp_path, capsys):
    out, first, again = tmp_path / "race", tmp_path / "race.json", tmp_path / "again.json"
    assert race.main(["--smoke", "--out", str(out), "--threads", "1", "--json", str(first)]) == 0
    text = capsys.readouterr().out
    rows = json.loads(first.read_text())["rows"]
    assert [(r["recipe"], r["budget_min"]) for r in rows] == [
        ("ours", 0.03), ("ours", 0.06), ("diffusers", 0.03), ("diffusers", 0.06)]
    for r in rows:
        assert f"| {r['recipe']} | {r['budget_min']:g} | " in text
        assert r["n"] == race.SMOKE.n and r["epochs"] == r["steps"] * race.SMOKE.batch_size / race.SMOKE.n_images
        assert r["ended_early"] or r["train_min"] >= r["budget_min"]  # a snapshot is taken once the clock passes
    assert not any(r["ended_early"] for r in rows[2:])  # diffusers' recipe trains until the last budget
    assert rows[0]["steps"] <= rows[1]["steps"] and rows[2]["steps"] <= rows[3]["steps"]
    assert "ours: bar (FID" in text and "diffusers: bar (FID" in text and "steps planned from it" in text
    # the snapshots score again to the same figures: sampling and the metric are seeded
    assert race.main(["--score-only", str(out), "--threads", "1", "--json", str(again)]) == 0
    assert json.loads(again.read_text())["rows"] == rows
    # a second race into the same folder would mix two races' snapshots
    capsys.readouterr()
    assert race.main(["--smoke", "--out", str(out), "--threads", "1"]) == 2
    assert "already holds snapshots" in capsys.readouterr().err
