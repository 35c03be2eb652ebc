"""ddpm_lite.lab.course: the smoke switch, and figures that reach assets/ only when tools/run_notebooks.py asks."""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ddpm_lite.lab import course  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def test_size_follows_the_smoke_switch(monkeypatch):
    monkeypatch.delenv(course.FAST_ENV, raising=False)
    assert not course.smoke() and course.size(64, smoke=16) == 64
    monkeypatch.setenv(course.FAST_ENV, "1")
    assert course.smoke() and course.size(64, smoke=16) == 16 and course.size(64) == 64


def test_a_learners_run_writes_figures_outside_the_repository(monkeypatch):
    monkeypatch.delenv(course.ASSETS_ENV, raising=False)
    course.savefig(plt.figure(), "nb_99_test.png")
    path = course.figure("nb_99_test.png")
    assert path.is_file() and ROOT not in path.resolve().parents
    assert course.figure("a.png").parent == path.parent  # one folder per session


def test_make_notebooks_writes_figures_where_it_says(monkeypatch, tmp_path):
    monkeypatch.setenv(course.ASSETS_ENV, str(tmp_path))
    course.savefig(plt.figure(), "nb_99_test.png")
    assert (tmp_path / "nb_99_test.png").is_file()
