"""The package's layout and edges: the core at the top of ddpm_lite/ is short enough to read in an evening; the
notebooks' interface (lab/), the command line (cli/), evaluation and the torchrun plumbing (parallel/) live in
subpackages; imports point one way (command line -> lab, evaluation -> core -> parallel, errors) with no cycle; nothing
installed imports diffusers; nothing is loaded by importlib or found outside the package, by the package or by the
tests; functions stay short. Read from the source with ast, not by importing."""
from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "ddpm_lite"
LONGEST = 42  # lines per function: the house style's "past about 40, split"
CORE_LINES = 2_000  # the top of the package, read in an evening (the house style's "Layout")
LAB = {"course", "exercises", "shapes", "pad", "plan", "preview", "snapshots", "toy", "twins", "viz", "widgets"}  # the notebooks' interface
NOTEBOOK_ONLY = {"ipywidgets", "IPython", "ipycanvas", "matplotlib", "imageio", "nbformat", "nbclient", "tqdm"}
# which parts of the package each part may import: one way, from the command line down to the leaves
MAY_IMPORT = {"cli": {"cli", "lab", "evaluation", "core", "parallel"}, "lab": {"lab", "core", "parallel"},
              "evaluation": {"evaluation", "core"}, "core": {"core", "parallel"}, "parallel": {"parallel", "errors"}}


def modules() -> dict:
    """{"ddpm_lite.cli.sample_command": ast tree, ...} for every module of the package."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = (ast.parse(path.read_text()), path.name == "__init__.py")
    return found


def imports(name: str, tree, is_package: bool) -> set:
    """The package's own modules that `name` imports (relative or absolute)."""
    here = name.split(".") if is_package else name.split(".")[:-1]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = here[:len(here) - node.level + 1] if node.level else []
            target = ".".join(base + (node.module.split(".") if node.module else []))
            out |= {f"{target}.{a.name}" for a in node.names} | {target}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
    return out


def graph() -> dict:
    mods = modules()
    return {name: {m for m in imports(name, tree, pkg) if m in mods and m != name}
            for name, (tree, pkg) in mods.items()}


def test_the_library_never_imports_the_command_line():
    for name, targets in graph().items():
        if not name.startswith("ddpm_lite.cli") and name != "ddpm_lite.__main__":  # the entry point is the CLI
            assert not {t for t in targets if t.startswith("ddpm_lite.cli")}, name


def test_the_errors_and_argument_types_are_leaves():
    g = graph()
    assert g["ddpm_lite.errors"] == set()
    assert not {t for t in g["ddpm_lite.cli.args"] if t.startswith("ddpm_lite.cli.") and t != "ddpm_lite.cli.args"}


def test_the_import_graph_has_no_cycle():
    g = {name: {t for t in targets if t != "ddpm_lite"} for name, targets in graph().items()}
    done, path = set(), []

    def visit(node):
        assert node not in path, " -> ".join(path[path.index(node):] + [node])
        if node in done:
            return
        path.append(node)
        for nxt in g.get(node, ()):
            if not (node.startswith(nxt + ".")):  # a module importing its own package's __init__ is no cycle
                visit(nxt)
        path.pop()
        done.add(node)
    for name in g:
        visit(name)


def test_a_cycle_would_be_found():
    """The check above can fail: a graph with a loop trips it."""
    import pytest
    original = graph
    try:
        globals()["graph"] = lambda: {"a": {"b"}, "b": {"a"}}
        with pytest.raises(AssertionError, match="a -> b -> a|b -> a -> b"):
            test_the_import_graph_has_no_cycle()
    finally:
        globals()["graph"] = original


def test_no_importlib_and_no_path_outside_the_package():
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        assert "importlib" not in text, path
        if path.name == "checkpoint.py":  # one exception: a source tree finds the shipped files beside it
            text = text.replace('CHECKOUT = Path(__file__).parent.parent / "checkpoints"', "")
        assert "parent.parent" not in text and "parents[" not in text, path


def test_no_function_runs_past_about_40_lines():
    long = [f"{path.relative_to(PACKAGE)}:{node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for path in PACKAGE.rglob("*.py") for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= LONGEST]
    assert long == []


def test_no_two_modules_share_a_name():
    """cli/train.py beside train.py read as an import cycle (args -> train -> args) to anyone, or any tool, that
    goes by file names: every module of the package has a name of its own."""
    names = [name.split(".")[-1] for name in modules()]
    assert sorted({n for n in names if names.count(n) > 1}) == []


def part(name: str) -> str:
    """"cli", "lab", "evaluation" or "parallel" for a module of that subpackage, "core" for one at the top."""
    pieces = name.split(".")
    return pieces[1] if len(pieces) > 2 or name.endswith(("cli", "lab", "evaluation", "parallel")) else "core"


def core_files() -> list[Path]:
    return sorted(PACKAGE.glob("*.py"))


def test_the_core_at_the_top_of_the_package_reads_in_an_evening():
    lines = {path.name: len(path.read_text().splitlines()) for path in core_files()}
    assert sum(lines.values()) <= CORE_LINES, f"{sum(lines.values())} lines at the top of ddpm_lite/: {lines}"


def test_the_notebooks_interface_lives_in_its_own_subpackage():
    assert {p.stem for p in (PACKAGE / "lab").glob("*.py")} - {"__init__"} == LAB
    assert not {p.stem for p in core_files()} & LAB
    for path in core_files():  # widgets, plots, GIFs and progress bars are the interface's, not the core's
        found = {a.split(".")[0] for a in _imported_names(path)} & (NOTEBOOK_ONLY - {"tqdm"})
        assert not found, f"{path.name} imports {found}"


def test_imports_point_one_way_between_the_parts():
    for name, targets in graph().items():
        if name in ("ddpm_lite", "ddpm_lite.__main__"):  # the package's face and its entry point
            continue
        allowed = MAY_IMPORT[part(name)]
        if part(name) == "parallel":
            wrong = {t for t in targets if part(t) != "parallel" and t != "ddpm_lite.errors"}
        else:
            wrong = {t for t in targets if part(t) not in allowed and t != "ddpm_lite"}
        assert not wrong, f"{name} ({part(name)}) imports {sorted(wrong)}"


def test_an_upward_import_would_be_found():
    original = graph
    try:
        globals()["graph"] = lambda: {"ddpm_lite.samplers": {"ddpm_lite.lab.viz"}}
        import pytest
        with pytest.raises(AssertionError, match="ddpm_lite.samplers"):
            test_imports_point_one_way_between_the_parts()
    finally:
        globals()["graph"] = original


def _imported_names(path: Path) -> set:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_nothing_installed_imports_diffusers():
    for path in PACKAGE.rglob("*.py"):
        assert not {n for n in _imported_names(path) if n.split(".")[0] == "diffusers"}, path


def test_every_subpackage_is_installed_and_tools_are_not():
    found = re.search(r"^packages = \[(.*?)\]", (REPO / "pyproject.toml").read_text(), re.M | re.S).group(1)
    listed = set(re.findall(r'"([\w.]+)"', found))
    subpackages = {".".join(p.parent.relative_to(REPO).parts) for p in PACKAGE.rglob("__init__.py")}
    assert listed == subpackages | {"ddpm_lite.weights", "ddpm_lite.weights.progress"}  # the shipped files
    for folder in ("benchmarks", "tools"):  # packages that tests import, outside the wheel
        assert (REPO / folder / "__init__.py").is_file() and not any(n.startswith(folder) for n in listed)


def test_no_test_loads_a_file_by_path():
    """importlib's spec_from_file_location and sys.path.insert, as code (names in strings do not count)."""
    for path in (REPO / "tests").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            named = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else ""
            assert named != "spec_from_file_location", path
            assert not (isinstance(node, ast.Attribute) and node.attr == "insert" and ast.unparse(node.value) ==
                        "sys.path"), path
