"""Print the supported Python range as "OLDEST NEWEST" (e.g. "3.10 3.13"), from pyproject.toml's classifiers.

Checks first that the places which state the range agree: the classifiers name every minor version between the ends,
requires-python is ">=OLDEST", environment.yml pins "python>=OLDEST,<NEXT" and README.md says "(OLDEST to NEWEST)".
Any disagreement: one line on stderr, exit status 1. Usage (from the repository root): python3 .ci/python_range.py
"""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def fail(msg):
    print(f"python_range: {msg}", file=sys.stderr)
    sys.exit(1)


def read(name):
    try:
        return (ROOT / name).read_text(encoding="utf-8")
    except OSError as e:
        fail(f"cannot read {name}: {e.strerror}")


def main():
    pyproject = read("pyproject.toml")
    try:
        import tomllib
    except ImportError:  # Python < 3.11: pyproject's two fields are plain enough for a pattern
        tomllib = None
    if tomllib is not None:
        project = tomllib.loads(pyproject).get("project", {})
        classifiers, requires = project.get("classifiers", []), project.get("requires-python")
    else:
        classifiers = re.findall(r'"(Programming Language :: Python :: [^"]+)"', pyproject)
        m = re.search(r'^requires-python\s*=\s*"([^"]*)"', pyproject, re.M)
        requires = m.group(1) if m else None

    minors = sorted(int(m.group(1)) for c in classifiers if (m := re.fullmatch(r"Programming Language :: Python :: 3\.(\d+)", c)))
    if not minors:
        fail('pyproject.toml has no "Programming Language :: Python :: 3.N" classifiers')
    lo, hi = minors[0], minors[-1]
    if minors != list(range(lo, hi + 1)):
        fail(f"pyproject.toml's Python classifiers skip a version: 3.{', 3.'.join(map(str, minors))}")
    if requires is None or requires.replace(" ", "") != f">=3.{lo}":
        fail(f'pyproject.toml: requires-python is {requires!r}, the classifiers say ">=3.{lo}"')
    if f"python>=3.{lo},<3.{hi + 1}" not in read("environment.yml").replace(" ", ""):
        fail(f'environment.yml does not pin "python>=3.{lo},<3.{hi + 1}" (pyproject.toml\'s classifiers: 3.{lo} to 3.{hi})')
    if f"(3.{lo} to 3.{hi})" not in read("README.md"):
        fail(f'README.md does not state "(3.{lo} to 3.{hi})" (pyproject.toml\'s classifiers)')
    print(f"3.{lo} 3.{hi}")


if __name__ == "__main__":
    main()
