"""The tutorial notebooks: the committed outputs are clean, and every notebook runs top to bottom in smoke mode.

Smoke mode is the notebooks' own switch (DDPM_LITE_FAST=1 through ddpm_lite.lab.course: fewer samples and steps); it
must not write into the repository. Figures reach assets/ only through ddpm_lite.lab.course when tools/run_notebooks.py
runs in full mode in place (`make notebooks`); a learner's run writes none there. The committed outputs come from a
full run of `python -m tools.run_notebooks`, which shares its execution and checks with these tests.
"""
from __future__ import annotations

import os
import re
import statistics
from pathlib import Path

import nbformat
import pytest

import ddpm_lite

from ddpm_lite.lab import exercises
from tools import run_notebooks

ROOT = Path(__file__).resolve().parent.parent

TOUR = ["00_quickstart", "01_forward_process", "02_unet", "03_training", "04_sampling", "04b_score_view",
        "05_fast_sampling", "06_guidance", "07_evaluation", "08_editing", "09_train_your_own", "10_distillation"]
PATHS = run_notebooks.notebook_paths()
CELL_TIMEOUT = 300  # seconds; a smoke-mode cell takes a few


def read(path: Path):
    return nbformat.read(path, as_version=4)


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def test_the_tour_is_complete():
    assert [p.stem for p in PATHS] == TOUR


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_committed_outputs_are_clean(path):
    nb = read(path)
    nbformat.validate(nb)
    assert run_notebooks.problems(nb) == []  # no error outputs, no machine paths
    assert run_notebooks.drift(nb) == [], "prose states figures its outputs do not show: re-run, and say what they show"
    assert nb.metadata.kernelspec.name == "python3"
    assert "widgets" not in nb.metadata, "widget state is dropped by tools/run_notebooks.py"
    assert not any("execution" in c.metadata for c in nb.cells), "timing metadata is dropped by the script"
    assert nb.metadata.get("ddpm_lite", {}).get("fast") is False, \
        f"{path.name} holds smoke-mode outputs (or none); regenerate with python -m tools.run_notebooks"
    assert all(c.execution_count is not None for c in code_cells(nb)), f"{path.name} was not run to the end"
    assert any("image/png" in out.get("data", {}) for c in code_cells(nb) for out in c.outputs), "no figures"


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_colab_header_comes_from_one_place(path):
    nb = read(path)
    assert nb.cells[0].source.startswith(run_notebooks.badge(path.name) + "\n")
    assert f"/notebooks/{path.name})" in nb.cells[0].source.split("\n")[0]
    assert nb.cells[1].source == run_notebooks.colab_setup()
    assert 'if "google.colab" in sys.modules' in nb.cells[1].source  # does nothing outside Colab


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_notebook_uses_the_library_and_short_cells(path):
    cells = code_cells(read(path))
    source = "\n".join(c.source for c in cells)
    assert re.search(r"^import ddpm_lite$", source, re.M)
    # a build-it-yourself exercise writes its own q_sample, loss, ... and checks it against the library's
    redefined = set(re.findall(r"^def (\w+)", source, re.M)) & set(ddpm_lite.__all__) - set(exercises.EXERCISES)
    assert not redefined, f"{path.name} redefines library functions {redefined}; import them instead"
    assert "course." in source, "sizes and figure paths go through ddpm_lite.lab.course (the smoke switch, assets/)"
    assert "DDPM_LITE_FAST" not in source and "assets" not in source, \
        "smoke switch and figure folder live in ddpm_lite.lab.course, not in the notebook"
    assert statistics.median(len(c.source.splitlines()) for c in cells[2:]) <= 8  # story in markdown, code short


def _snapshot() -> dict:
    """Names at the top level, and size and mtime of the files a notebook could touch: notebooks/, assets/,
    the shipped checkpoints."""
    files = [*(ROOT / "notebooks").rglob("*"), *(ROOT / "assets").rglob("*"), *(ROOT / "checkpoints").glob("*.pt")]
    return {"top": sorted(p.name for p in ROOT.iterdir()),
            **{str(p.relative_to(ROOT)): (p.stat().st_size, p.stat().st_mtime_ns) for p in files if p.is_file()}}


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_notebook_runs_in_smoke_mode(path, monkeypatch):
    # One thread per kernel, as conftest sets for the tests: small convolutions on a busy 2-core machine run
    # several times faster on one thread than on two threads competing with other processes.
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
    before = _snapshot()
    nb = run_notebooks.execute(read(path), fast=True, timeout=CELL_TIMEOUT)  # raises CellExecutionError on failure
    assert run_notebooks.problems(run_notebooks.clean(nb, fast=True)) == []
    assert _snapshot() == before, f"{path.name} wrote into the repository in smoke mode"


def _solutions(nb) -> list:
    return [c for c in code_cells(nb) if "solution" in c.metadata.get("tags", [])]


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_exercises_have_revealable_solutions_and_the_notebook_ends_well(path):
    nb = read(path)
    solutions = _solutions(nb)
    assert len(solutions) >= 2, f"{path.name}: two or three exercises, each with a solution cell"
    assert all(c.metadata.get("jupyter", {}).get("source_hidden") for c in solutions), "solutions start collapsed"
    assert any(c.cell_type == "markdown" and "Exercise" in c.source for c in nb.cells)
    ending = "\n".join(c.source for c in nb.cells[-3:] if c.cell_type == "markdown")
    assert "What to take away" in ending and ("next" in ending.lower() or "Further reading" in ending), \
        f"{path.name} ends with what to take away and what comes next"


def test_the_map_of_the_series_lives_in_the_quickstart_and_the_readme():
    """00 and the README list every notebook; the other notebooks end with their own take-away, not a map."""
    first = "\n".join(c.source for c in read(PATHS[0]).cells if c.cell_type == "markdown")
    readme = (ROOT / "README.md").read_text()
    for path in PATHS[1:]:
        assert path.name in first, f"00's map of the series leaves out {path.name}"
        assert path.name in readme, f"the README leaves out {path.name}"
        others = [p.name for p in PATHS if p != path and p.name in "\n".join(
            c.source for c in read(path).cells if c.cell_type == "markdown")]
        assert len(others) < len(PATHS) - 2, f"{path.name} lists the whole series; the map lives in 00"


def _notebook(*cells):
    """A notebook with the course's header and the given (kind, source) cells."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("x", metadata={"tags": [run_notebooks.BADGE_TAG]}),
                nbformat.v4.new_code_cell("", metadata={"tags": [run_notebooks.SETUP_TAG]})]
    nb.cells += [nbformat.v4.new_markdown_cell(s) if kind == "md" else nbformat.v4.new_code_cell(s) for kind, s in cells]
    return nb


def test_drift_names_a_figure_the_prose_states_and_no_output_shows():
    nb = _notebook(("code", "print(round(0.0061, 3))"), ("md", "T = 200 keeps 37 % of the signal."))
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", name="stdout", text="0.006\n")]
    assert run_notebooks.drift(nb) == ["cell 3: the prose says '37 %', which no code cell near it shows"]
    nb.cells[3].source = "T = 200 keeps 0.006 of the signal, about 0.6 %; `0.37` in code is not prose."
    assert run_notebooks.drift(nb) == []
    nb.cells[2].outputs = [nbformat.v4.new_output("display_data", data={"text/markdown": "| T | kept |\n| 200 | 0.37 |"})]
    nb.cells[3].source = "T = 200 keeps 37 % of the signal."  # a table shown as markdown shows its figures
    assert run_notebooks.drift(nb) == []
    nb.cells[2].source += "  # keeps about 80 steps"  # a comment is prose too
    assert run_notebooks.drift(nb) == ["cell 2: the prose says 'about 80', which no code cell near it shows"]


def test_a_full_run_fails_naming_a_claim_that_no_longer_holds(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    path = tmp_path / "99_claim.ipynb"
    nbformat.write(_notebook(("code", "import ddpm_lite\nfrom ddpm_lite.lab import course\n"
                                      "course.claim(1 + 1 == 3, 'one and one make three')")), path)
    seconds, found = run_notebooks.run_one(path, fast=False, timeout=120, out_dir=tmp_path / "out")
    assert len(found) == 1 and "ClaimFailed" in found[0] and "one and one make three" in found[0]
    assert not (tmp_path / "out").exists()  # a failed run writes nothing
    seconds, found = run_notebooks.run_one(path, fast=True, timeout=120, out_dir=tmp_path / "out")
    assert found == []  # smoke mode prints the claim as not checked
