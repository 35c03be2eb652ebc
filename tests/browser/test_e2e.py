"""End to end: the sliders in JupyterLab in headless Chromium, moved by keyboard and mouse like a reader would.

Every course notebook runs in full in the browser (slow): the ones without a widget are only checked to run
clean, with their figures on the page. For each notebook that builds sliders (tests/browser/sliders.ipynb, and notebooks/*.ipynb that call forward_slider,
reverse_slider, guidance_slider, learning_slider or steps_slider) the test runs all cells in a private JupyterLab,
then per slider: presses ArrowRight, presses End, drags the handle, picks another entry in each menu. After each move it
waits for the picture's src to change and the kernel to go idle, then checks that the status line names the value
the slider shows, that no error is on the page, and, for sliders.ipynb, that the PNG the page shows is byte for byte
the picture the same cells compute in this process. Screenshots and timings go to test-artifacts/browser/.
"""
from __future__ import annotations

import ast
import json
import os
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
OWN = Path(__file__).with_name("sliders.ipynb")
OWN_PAD = Path(__file__).with_name("pad.ipynb")
ARTIFACTS = REPO / "test-artifacts" / "browser"
SLIDER_CALL = re.compile(r"\b(forward_slider|reverse_slider|guidance_slider|learning_slider|steps_slider)\(")
PAD_CALL = re.compile(r"\bdrawing_pad\(")
STATUS_VALUE = {"forward": r"t = (\d+)", "reverse": r"step (\d+)/", "guidance": r"w = ([-\d.]+)",
                "learning": r"snapshot (\d+)/", "steps": r"(\d+) steps?\b"}
HANDLE = ".ddpm-lite-slider .noUi-handle, .ddpm-lite-slider .ui-slider-handle"  # ipywidgets 8, 7
TRACK = ".ddpm-lite-slider .noUi-base, .ddpm-lite-slider .ui-slider"
ERROR_OUTPUT = '.jp-OutputArea-output[data-mime-type*="error"], .jp-OutputArea-output[data-mime-type*="stderr"]'
TIMINGS: dict = {}


def slider_notebooks() -> list[Path]:
    found = [p for p in sorted((REPO / "notebooks").glob("*.ipynb")) if SLIDER_CALL.search(p.read_text())]
    return [OWN, *found]


def pad_notebooks() -> list[Path]:
    found = [p for p in sorted((REPO / "notebooks").glob("*.ipynb")) if PAD_CALL.search(p.read_text())]
    return [OWN_PAD, *found]


def plain_notebooks() -> list[Path]:
    """Course notebooks with neither a slider nor a pad: the browser runs them too, to check they run clean there."""
    covered = {*slider_notebooks(), *pad_notebooks()}
    return [p for p in sorted((REPO / "notebooks").glob("*.ipynb")) if p not in covered]


def notebook_params():
    """sliders.ipynb in the default suite (about 2 minutes); the course notebooks, each run in full, as slow."""
    return [pytest.param(nb, id=nb.stem, marks=() if nb == OWN else pytest.mark.slow) for nb in slider_notebooks()]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A private JupyterLab server and a headless Chromium; both stopped, with every process, at the end."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed: pip install playwright")
    pytest.importorskip("jupyterlab", reason="JupyterLab is not installed: pip install jupyterlab")
    from labdriver import CHROMIUM_ARGS, LabServer, chromium_path
    chromium = chromium_path()
    if chromium is None:
        pytest.skip("Chromium not found at /usr/bin/chromium or on PATH: apt-get install chromium")
    tmp = tmp_path_factory.mktemp("lab")
    env = {"DDPM_LITE_FAST": "1", "DDPM_LITE_CHECKPOINT": str(model_checkpoint(tmp)),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
           "DDPM_LITE_DATA": os.environ.get("DDPM_LITE_DATA", "")}
    server = LabServer(lab_root(tmp / "root"), tmp / "jupyter", env)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    try:
        server.start()
        TIMINGS["server start, s"] = round(time.monotonic() - start, 1)
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            try:
                yield server, browser, env
            finally:
                browser.close()
    finally:
        server.stop()
        (ARTIFACTS / "timings.json").write_text(json.dumps(TIMINGS, indent=1))
        print("\nbrowser timings:", json.dumps(TIMINGS, indent=1))


def model_checkpoint(tmp: Path) -> Path:
    """A copy of the shipped checkpoint (it may be refreshed while we run), or a tiny random one."""
    from ddpm_lite.checkpoint import RELEASE_NAME, shipped
    release = shipped(RELEASE_NAME)
    if release.is_file():
        return Path(shutil.copy(release, tmp / "model.pt"))
    from conftest import save_tiny_checkpoint, tiny_unet
    from ddpm_lite.schedule import Schedule
    return save_tiny_checkpoint(tmp / "model.pt", tiny_unet(seed=1), Schedule.cosine(1000))


def lab_root(root: Path) -> Path:
    """Copies of the notebooks, so running them writes nothing into the repository (their assets land in root)."""
    (root / "notebooks").mkdir(parents=True)
    (root / "assets").mkdir()
    for nb in {*slider_notebooks(), *pad_notebooks(), *plain_notebooks()}:
        shutil.copy(nb, root / ("" if nb in (OWN, OWN_PAD) else "notebooks") / nb.name)
    for name in ("ddpm_lite", "checkpoints"):
        (root / name).symlink_to(REPO / name)
    return root


def reference_widgets(notebook: Path, env: dict) -> list:
    """Run the notebook's code cells in this process; the sliders they display, in order."""
    import nbformat
    from ddpm_lite.lab.widgets import SliderWidget
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        found, namespace = [], {}
        for cell in nbformat.read(notebook, as_version=4).cells:
            if cell.cell_type != "code":
                continue
            tree = ast.parse(cell.source)
            last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
            exec(compile(tree, notebook.name, "exec"), namespace)
            value = eval(compile(ast.Expression(last.value), notebook.name, "eval"), namespace) if last else None
            if isinstance(value, SliderWidget):
                found.append(value)
        return found
    finally:
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


def run_all_cells(page, server, relpath: str):
    from labdriver import ALL_CELLS_RUN, open_notebook, wait_idle
    open_notebook(page, server, relpath, shot=ARTIFACTS / f"{Path(relpath).stem}-open.png")
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_function(ALL_CELLS_RUN, timeout=480_000, polling=250)
    wait_idle(page, 120_000)


def page_errors(page) -> list[str]:
    """Tracebacks in outputs, errors shown by a widget, widgets that failed to render."""
    found = []
    for out in page.locator(ERROR_OUTPUT).all():
        text, mime = out.inner_text(), out.get_attribute("data-mime-type") or ""
        if "error" in mime or "Traceback" in text or re.search(r"\w+Error\b", text):
            found.append(text)
    found += [e.inner_text() for e in page.locator(".ddpm-lite-error").all() if e.inner_text().strip()]
    body = page.locator(".jp-Notebook").inner_text()
    found += [msg for msg in ("Error displaying widget", "Failed to load model class", "Traceback") if msg in body]
    return found


def shown_state(box, kind: str) -> dict:
    """What the page shows: slider position and readout, status line, menus, and the picture's PNG bytes."""
    from labdriver import image_bytes
    handle = box.locator(HANDLE).first
    status = box.locator(".ddpm-lite-status").inner_text()
    match = re.search(STATUS_VALUE[kind], status)
    assert match, f"status line {status!r} does not name the {kind} slider's value"
    return {"readout": box.locator(".ddpm-lite-slider .widget-readout").inner_text().strip(), "status": status,
            "value": float(match.group(1)), "pos": float(handle.get_attribute("aria-valuenow")),
            "max": float(handle.get_attribute("aria-valuemax")),
            "menus": [s.evaluate("s => s.value") for s in box.locator("select").all()],
            "png": image_bytes(box.locator(".ddpm-lite-image"))}


def check_shown(box, kind: str, ref, shot: Path) -> dict:
    from ddpm_lite.lab.viz import decode_png
    box.screenshot(path=str(shot))
    state = shown_state(box, kind)
    assert float(state["readout"]) == state["value"], f"readout {state['readout']} but status {state['status']!r}"
    if ref is not None:  # make the reference show the same values, then compare pictures
        for menu, label in zip(ref.controls, state["menus"]):
            menu.label = label
        ref.slider.value = int(state["value"]) if kind != "guidance" else state["value"]
        shown, expected = decode_png(state["png"]), ref.frame()
        if not np.array_equal(shown, expected):
            np.save(shot.with_suffix(".expected.npy"), expected)
            pytest.fail(f"{shot.name}: the page shows another picture than the cells compute "
                        f"(shapes {shown.shape} vs {expected.shape})")
        assert ref.errors == []
    return state


def move(page, box, action, what: str) -> float:
    """Do a user action, then wait for the new picture and an idle kernel; returns ms until the picture changed."""
    from labdriver import settle, wait_new_src
    image = box.locator(".ddpm-lite-image")
    old = image.get_attribute("src")
    start = time.monotonic()
    action()
    wait_new_src(image, old, timeout_ms=120_000, box=box)
    ms = 1000 * (time.monotonic() - start)
    settle(page, image)
    assert page_errors(page) == [], f"after {what.split(' ->')[0]}"
    TIMINGS.setdefault(what, []).append(round(ms))
    return ms


def exercise(page, box, ref, name: str):
    kind = next(k for k in STATUS_VALUE if f"ddpm-lite-{k}" in (box.get_attribute("class") or ""))
    shot = lambda step: ARTIFACTS / f"{name}-{kind}-{step}.png"  # noqa: E731
    box.scroll_into_view_if_needed()
    before = check_shown(box, kind, ref, shot("0-initial"))
    handle = box.locator(HANDLE).first
    handle.focus()
    key = "ArrowLeft" if before["pos"] == before["max"] else "ArrowRight"
    move(page, box, lambda: page.keyboard.press(key), f"{kind}: key press -> new picture, ms")
    after = check_shown(box, kind, ref, shot("1-arrow"))
    assert after["pos"] == before["pos"] + (1 if key == "ArrowRight" else -1) and after["png"] != before["png"]

    move(page, box, lambda: page.keyboard.press("End"), f"{kind}: End -> new picture, ms")
    end = check_shown(box, kind, ref, shot("2-end"))
    assert end["pos"] == end["max"] and end["value"] > after["value"]

    track, grip = box.locator(TRACK).first.bounding_box(), handle.bounding_box()
    y = grip["y"] + grip["height"] / 2

    def drag():
        page.mouse.move(grip["x"] + grip["width"] / 2, y)
        page.mouse.down()
        page.mouse.move(track["x"] + 0.3 * track["width"], y, steps=12)
        page.mouse.up()
    move(page, box, drag, f"{kind}: mouse drag -> new picture, ms")
    dragged = check_shown(box, kind, ref, shot("3-drag"))
    assert 0 < dragged["pos"] < end["max"] and dragged["png"] != end["png"]

    for j, select in enumerate(box.locator("select").all()):
        options = select.evaluate("s => Array.from(s.options).map(o => o.value)")
        current = select.evaluate("s => s.value")
        choice = options[-1] if current != options[-1] else options[0]
        move(page, box, lambda: select.select_option(choice), f"{kind}: menu -> new picture, ms")
        check_shown(box, kind, ref, shot(f"4-menu{j}"))
    assert page_errors(page) == []


@pytest.mark.parametrize("notebook", notebook_params())
def test_sliders_respond_in_the_browser(lab, notebook):
    server, browser, env = lab
    start = time.monotonic()
    refs = reference_widgets(notebook, env) if notebook == OWN else None
    relpath = notebook.name if notebook == OWN else f"notebooks/{notebook.name}"
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    problems = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    try:
        run_all_cells(page, server, relpath)
        TIMINGS[f"{notebook.stem}: open and run, s"] = round(time.monotonic() - start, 1)
        page.screenshot(path=str(ARTIFACTS / f"{notebook.stem}-after-run.png"), full_page=True)
        assert page_errors(page) == []
        boxes = page.locator(".ddpm-lite-widget").all()
        assert boxes, f"{notebook.name} calls a slider but no slider rendered (is jupyterlab_widgets installed?)"
        if refs is not None:
            assert len(boxes) == len(refs)
        for i, box in enumerate(boxes):
            exercise(page, box, refs[i] if refs else None, f"{notebook.stem}-{i}")
        assert problems == [], f"uncaught errors in the page: {problems}"
    finally:
        page.screenshot(path=str(ARTIFACTS / f"{notebook.stem}-end.png"), full_page=True)
        page.close()
        TIMINGS[f"{notebook.stem}: total, s"] = round(time.monotonic() - start, 1)


def pad_params():
    """pad.ipynb in the default suite (under a minute); the course notebooks with a pad, each run in full, as slow."""
    return [pytest.param(nb, id=nb.stem, marks=() if nb == OWN_PAD else pytest.mark.slow) for nb in pad_notebooks()]


def pad_status(box) -> tuple[int, str]:
    status = box.locator(".ddpm-lite-status").inner_text()
    match = re.search(r"t0 = (\d+)", status)
    assert match, f"status line {status!r} does not name t0"
    return int(match.group(1)), status


def draw_stroke(page, canvas):
    """A mouse stroke over the canvas: press, a bar across the lower half in small moves with a tail, release."""
    area = canvas.bounding_box()
    at = lambda fx, fy: (area["x"] + fx * area["width"], area["y"] + fy * area["height"])  # noqa: E731
    page.mouse.move(*at(0.15, 0.6))
    page.mouse.down()
    page.mouse.move(*at(0.85, 0.6), steps=10)
    page.mouse.move(*at(0.8, 0.9), steps=5)
    page.mouse.up()


@pytest.mark.parametrize("notebook", pad_params())
def test_drawing_pad_responds_in_the_browser(lab, notebook):
    server, browser, _ = lab
    start, problems = time.monotonic(), []
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.on("pageerror", lambda e: problems.append(str(e)))
    shot = lambda step: str(ARTIFACTS / f"{notebook.stem}-pad-{step}.png")  # noqa: E731
    try:
        run_all_cells(page, server, notebook.name if notebook == OWN_PAD else f"notebooks/{notebook.name}")
        TIMINGS[f"{notebook.stem}: open and run, s"] = round(time.monotonic() - start, 1)
        assert page_errors(page) == []
        box = page.locator(".ddpm-lite-pad").first
        box.scroll_into_view_if_needed()
        canvas = box.locator(".ddpm-lite-canvas canvas, canvas.ddpm-lite-canvas").first
        canvas.wait_for(state="visible", timeout=30_000)  # the ipycanvas widget loaded
        box.screenshot(path=shot("0-initial"))
        t0, status = pad_status(box)
        assert "my drawing" not in status and "is not installed" not in box.inner_text()

        move(page, box, lambda: draw_stroke(page, canvas), "pad: stroke -> new picture, ms")
        box.screenshot(path=shot("1-stroke"))
        assert "my drawing" in pad_status(box)[1] and "the pad is empty" not in pad_status(box)[1]

        box.locator(HANDLE).first.focus()
        move(page, box, lambda: page.keyboard.press("ArrowRight"), "pad: t0 key press -> new picture, ms")
        box.screenshot(path=shot("2-t0"))
        moved, status = pad_status(box)
        assert moved > t0 and "my drawing" in status
        assert float(box.locator(".ddpm-lite-slider .widget-readout").inner_text()) == moved

        digit = box.locator("select").first
        move(page, box, lambda: digit.select_option(digit.evaluate("s => s.options[4].value")),
             "pad: digit menu -> new picture, ms")
        assert "digit 3" in pad_status(box)[1]
        move(page, box, lambda: box.locator(".ddpm-lite-clear").click(), "pad: clear -> new picture, ms")
        box.screenshot(path=shot("3-clear"))
        assert "the pad is empty" in pad_status(box)[1]
        assert page_errors(page) == [] and problems == [], f"uncaught errors in the page: {problems}"
    finally:
        page.screenshot(path=str(ARTIFACTS / f"{notebook.stem}-pad-end.png"), full_page=True)
        page.close()
        TIMINGS[f"{notebook.stem}: pad total, s"] = round(time.monotonic() - start, 1)


def committed_images(notebook: Path) -> int:
    """How many pictures the notebook's committed outputs show (PNG, GIF, JPEG, SVG)."""
    import nbformat
    return sum(any(k.startswith("image/") for k in out.get("data", {}))
               for cell in nbformat.read(notebook, as_version=4).cells if cell.cell_type == "code"
               for out in cell.get("outputs", []))


@pytest.mark.slow
@pytest.mark.parametrize("notebook", plain_notebooks(), ids=lambda p: p.stem)
def test_course_notebook_runs_clean_in_the_browser(lab, notebook):
    """Run All in JupyterLab (smoke mode): no traceback, no error output, no uncaught page error, and the page
    shows at least as many pictures as the committed notebook."""
    server, browser, _ = lab
    start, problems = time.monotonic(), []
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.on("pageerror", lambda e: problems.append(str(e)))
    try:
        run_all_cells(page, server, f"notebooks/{notebook.name}")
        TIMINGS[f"{notebook.stem}: open and run, s"] = round(time.monotonic() - start, 1)
        assert page_errors(page) == []
        assert problems == [], f"uncaught errors in the page: {problems}"
        shown, committed = page.locator(".jp-OutputArea-output img").count(), committed_images(notebook)
        assert shown >= committed, f"{notebook.name}: the page shows {shown} pictures, the committed notebook {committed}"
    finally:
        page.screenshot(path=str(ARTIFACTS / f"{notebook.stem}-run.png"), full_page=True)
        page.close()
        TIMINGS[f"{notebook.stem}: total, s"] = round(time.monotonic() - start, 1)
