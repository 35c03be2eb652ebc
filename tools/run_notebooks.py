#!/usr/bin/env python
"""Execute the tutorial notebooks in place, so the outputs GitHub shows are fresh.

    python -m tools.run_notebooks            # every notebook in full mode, written back in place
    python -m tools.run_notebooks 04 06      # only the notebooks whose names start with 04 or 06
    python -m tools.run_notebooks --fast     # smoke mode (DDPM_LITE_FAST=1): run and check, write nothing

Before a run, each notebook's first two cells (the "Open in Colab" badge and the Colab setup cell) are
rewritten from REPO below, the one place the GitHub org/repo is named. After it, the outputs are cleaned:
execution timing metadata and widget state are dropped, a slider's output becomes a one-line note (sliders
need a kernel; a static twin sits beside each), and a tqdm progress widget becomes its final text line.
A notebook with an error output or a machine path in its outputs fails the run and is not written.
The kernel imports ddpm_lite from this checkout (its root goes first on PYTHONPATH). Only a full run written in
place (`make notebooks`) sets DDPM_LITE_ASSETS, so only it writes the figures in assets/ (ddpm_lite.lab.course); a
smoke run, a run with --out and a learner's own run write figures to a temporary folder.
"""
from __future__ import annotations

import argparse
import html
import os
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
ASSETS = ROOT / "assets"
REPO, BRANCH = "ddpm-lite/ddpm-lite", "main"  # GitHub org/repo for the Colab badge and the Colab clone
BADGE_TAG, SETUP_TAG = "colab-badge", "colab-setup"
SLIDER_NOTE = ("[interactive widget: run this cell in Jupyter or Colab to use it; "
               "the figure beside it shows the same without a kernel]")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def badge(name: str) -> str:
    url = f"https://colab.research.google.com/github/{REPO}/blob/{BRANCH}/notebooks/{name}"
    return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})"


def colab_setup() -> str:
    """The first code cell: on Colab only, clone the repository, install it and work from notebooks/."""
    return f'''# On Colab only: fetch ddpm-lite, install it and work from its notebooks/ folder. Elsewhere: nothing.
import importlib, os, subprocess, sys
if "google.colab" in sys.modules and not os.path.isdir("/content/ddpm-lite"):
    subprocess.run(["git", "clone", "--depth", "1", "--branch", "{BRANCH}",
                    "https://github.com/{REPO}.git", "/content/ddpm-lite"], check=True)
    # a regular install (not -e): this very kernel sees it at once, weights included; Colab keeps its torch
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "/content/ddpm-lite"], check=True)
    importlib.invalidate_caches()
if "google.colab" in sys.modules:
    os.chdir("/content/ddpm-lite/notebooks")'''


def notebook_paths(prefixes=()) -> list[Path]:
    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]*_*.ipynb"))  # 00_quickstart ... 04b_score_view ...
    return [p for p in paths if not prefixes or any(p.name.startswith(pre) for pre in prefixes)]


def sync_header(nb, name: str):
    """Rewrite the badge line (first line of the first cell) and the Colab setup cell from REPO."""
    first, setup = nb.cells[0], nb.cells[1]
    if BADGE_TAG not in first.metadata.get("tags", []) or SETUP_TAG not in setup.metadata.get("tags", []):
        raise ValueError(f"{name}: cell 1 must be tagged {BADGE_TAG!r} and cell 2 {SETUP_TAG!r}")
    lines = first.source.split("\n")
    body = "\n".join(lines[1:] if lines[0].startswith("[![Open In Colab]") else lines).strip("\n")
    first.source = f"{badge(name)}\n\n{body}"
    setup.source = colab_setup()
    return nb


def kernel_env(fast: bool, assets: bool = False) -> dict:
    """The kernel's environment: this checkout first on PYTHONPATH, the smoke switch, an absolute data root, and
    DDPM_LITE_ASSETS (figures into assets/) only when `assets` is asked for."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.pop("DDPM_LITE_FAST", None)
    env.pop("DDPM_LITE_ASSETS", None)
    if fast:
        env["DDPM_LITE_FAST"] = "1"
    if assets:
        env["DDPM_LITE_ASSETS"] = str(ASSETS)
    if env.get("DDPM_LITE_DATA"):  # the kernel runs in notebooks/: a relative root would point elsewhere
        env["DDPM_LITE_DATA"] = str(Path(env["DDPM_LITE_DATA"]).expanduser().resolve())
    return env


def execute(nb, fast: bool, timeout: int = 600, assets: bool = False):
    """Run every cell of nb (in notebooks/, so relative paths resolve as when a reader runs it); returns nb.
    assets=True lets it write its figures into assets/ (a full in-place run only)."""
    from nbclient import NotebookClient
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", store_widget_state=True,
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute(env=kernel_env(fast, assets))
    return nb


def _progress_text(model_id: str, state: dict) -> str | None:
    """tqdm.auto's widget (HBox of HTML, progress bar, HTML) as tqdm's own text line, from its final state."""
    box = state.get(model_id, {})
    kids = [state.get(c.removeprefix("IPY_MODEL_"), {}) for c in box.get("state", {}).get("children", [])]
    if box.get("model_name") != "HBoxModel" or len(kids) != 3 or "Progress" not in kids[1].get("model_name", ""):
        return None
    bar = kids[1]["state"]
    filled = round(10 * bar.get("value", 0) / bar["max"]) if bar.get("max") else 0
    left, right = (html.unescape(k["state"].get("value", "")).replace("\xa0", " ") for k in (kids[0], kids[2]))
    return f"{left}|{'█' * filled}{' ' * (10 - filled)}|{right}"


def clean(nb, fast: bool):
    """Drop timing metadata and widget state; widget outputs become text; mark the mode the outputs came from."""
    state = nb.metadata.pop("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = {"name": "python"}
    nb.metadata["ddpm_lite"] = {"fast": fast}
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        for out in cell.get("outputs", []):
            view = out.get("data", {}).get(WIDGET_VIEW)
            if view:
                out["data"] = {"text/plain": _progress_text(view["model_id"], state) or SLIDER_NOTE}
        if cell.cell_type == "code":
            cell.outputs = _merge_streams(cell.outputs)
    return nb


def _merge_streams(outputs: list) -> list:
    """Consecutive prints to the same stream as one output, as a reader's Jupyter shows them."""
    merged = []
    for out in outputs:
        last = merged[-1] if merged else None
        if out.get("output_type") == "stream" and last and last.get("output_type") == "stream" \
                and last.get("name") == out.get("name"):
            last["text"] = "".join(last["text"]) + "".join(out["text"])
        else:
            merged.append(out)
    return merged


MACHINE_PATHS = re.compile("|".join([r"/work/", r"/tmp/", r"/root\b", r"/home/", r"/Users/", r"\b[A-Z]:\\\w",
                                    re.escape(str(ROOT))]))


def problems(nb) -> list[str]:
    """Error outputs and machine paths in the outputs (image data is not searched)."""
    found = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                found.append(f"cell {i}: {out.get('ename')}: {out.get('evalue')}")
            texts = [out.get("text", "")] + [v for k, v in out.get("data", {}).items() if not k.startswith("image/")]
            for text in texts:
                text = text if isinstance(text, str) else "".join(text) if isinstance(text, list) else str(text)
                m = MACHINE_PATHS.search(text)
                if m:
                    found.append(f"cell {i}: machine path in output: ...{text[max(0, m.start() - 40):m.end() + 40]}...")
    return found


# A figure in prose: a decimal, a percentage, or an approximate count ("about 80"). Math, inline code, links and
# HTML are not prose. Approximate words allow the figure to be off by APPROX; the others must match to their digits.
NOT_PROSE = re.compile(r"\$\$.*?\$\$|\$[^$\n]*\$|`[^`\n]*`|\]\([^)]*\)|<[^>]*>", re.S)
APPROX_WORDS = "about|around|roughly|nearly|almost|some|over|under|below|above|only|just"
FIGURE = re.compile(rf"(?<![\w.])(?:({APPROX_WORDS}) [~≈]?)?(\d[\d,]*(?:\.\d+)?)( ?%)?(?![\w])")
NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?:e-?\d+)?")
APPROX, NEARBY = 0.15, 3  # relative slack of "about N"; cells either side searched for the figure


def _figures(text: str) -> list[tuple[str, float, int, bool]]:
    """(as written, value, decimals, approximate) for each stated figure: decimals, percentages, "about N"."""
    found = []
    for m in FIGURE.finditer(NOT_PROSE.sub(" ", text)):
        word, digits, percent = m.groups()
        if not (word or percent or "." in digits):
            continue  # a bare integer is a count or a setting, not a measured figure
        value = float(digits.replace(",", ""))
        decimals = len(digits.split(".")[1]) if "." in digits else 0
        found.append((m.group(0), value / 100 if percent else value, decimals + (2 if percent else 0), bool(word)))
    return found


def _shown(value: float, decimals: int, approx: bool, numbers: list[float]) -> bool:
    for y in numbers:
        for v in (y, abs(y)):
            if approx and abs(v - value) <= APPROX * abs(value) or round(v, decimals) == round(value, decimals):
                return True
    return False


def _cell_numbers(cell) -> list[float]:
    """The numbers a code cell shows: its source without comments, and its text outputs."""
    texts = [re.sub(r"#.*", "", cell.source)]
    for out in cell.get("outputs", []):
        texts += [out.get("text", "")] + [v for k, v in out.get("data", {}).items() if k in ("text/plain",
                                                                                               "text/markdown")]
    joined = "\n".join(t if isinstance(t, str) else "".join(t) for t in texts)
    return [float(n) for n in NUMBER.findall(joined)]


def drift(nb) -> list[str]:
    """Figures the prose (markdown, code comments) states that no code cell within NEARBY cells shows, in its source
    or its outputs: what a sentence says the output shows, and the output no longer does. Full-mode outputs only."""
    found = []
    for i, cell in enumerate(nb.cells[2:], start=2):
        text = cell.source if cell.cell_type == "markdown" else "\n".join(re.findall(r"#(.*)", cell.source))
        figures = _figures(text)
        if not figures:
            continue
        near = [c for c in nb.cells[max(2, i - NEARBY):i + NEARBY + 1] if c.cell_type == "code"]
        numbers = [n for c in near for n in _cell_numbers(c)]
        for written, value, decimals, approx in figures:
            if not _shown(value, decimals, approx, numbers):
                found.append(f"cell {i}: the prose says {written.strip()!r}, which no code cell near it shows")
    return found


def run_one(path: Path, fast: bool, timeout: int, out_dir: Path | None) -> tuple[float, list[str]]:
    import nbformat
    nb = nbformat.read(path, as_version=4)
    sync_header(nb, path.name)
    start = time.perf_counter()
    try:
        execute(nb, fast, timeout, assets=not fast and out_dir is None)
    except Exception as e:  # CellExecutionError carries the cell and its traceback
        return time.perf_counter() - start, [f"{type(e).__name__}: {str(e)[-2000:]}"]
    seconds = time.perf_counter() - start
    found = problems(clean(nb, fast)) + ([] if fast else drift(nb))
    nbformat.validate(nb)
    if not found and (out_dir or not fast):
        target = (out_dir / path.name) if out_dir else path
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, target)
    return seconds, found


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("names", nargs="*", help="name prefixes, e.g. 00 04_sampling (default: all)")
    p.add_argument("--fast", action="store_true", help="smoke mode (DDPM_LITE_FAST=1); writes only with --out")
    p.add_argument("--out", type=Path, default=None, help="write executed notebooks here instead of in place")
    p.add_argument("--timeout", type=int, default=600, help="seconds allowed per cell")
    args = p.parse_args(argv)
    paths = notebook_paths(args.names)
    if not paths:
        print(f"no notebooks match {args.names} in notebooks/", file=sys.stderr)
        return 2
    failed, total = 0, 0.0
    for path in paths:
        seconds, found = run_one(path, args.fast, args.timeout, args.out)
        total += seconds
        print(f"{path.name:<28} {seconds:6.1f} s  {'ok' if not found else 'FAILED'}", flush=True)
        for line in found:
            print(f"    {line}", file=sys.stderr)
        failed += bool(found)
    mode = "smoke" if args.fast else "full"
    print(f"{len(paths) - failed}/{len(paths)} notebooks ran cleanly in {mode} mode, {total:.0f} s in all")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
