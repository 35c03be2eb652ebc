"""The package's edges: imports point one way (command line -> library -> torch) with no cycle, nothing is loaded by
importlib or found outside the package, and functions stay short. Read from the source with ast, not by importing."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "ddpm_lite"
LONGEST = 42  # lines per function: the house style's "past about 40, split"


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
