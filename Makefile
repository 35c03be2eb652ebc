# Two entry points, both working on a fresh machine: `make sample` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export DDPM_LITE_DATA ?= $(abspath ../shared/data)

.PHONY: sample test test-python test-slow notebooks assets bench

# A regular install (not -e): setuptools says nothing about it, while an editable one of this layout (the weights in
# checkpoints/ install as ddpm_lite.weights) prints a notice. Commands run here import this checkout anyway (the
# current folder comes first, and it finds checkpoints/ beside it); the installed copy, which a notebook kernel in
# JupyterLab imports, is brought up to date whenever the package or its weights change.
$(VENV)/.installed: pyproject.toml $(wildcard ddpm_lite/*.py ddpm_lite/*/*.py checkpoints/*.pt)
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	@# A current pip first: it checks requires-python before resolving anything, so a Python below our range is
	@# refused at once; the pip that ships with 3.9/3.10 (23.0) resolves (and downloads torch) for minutes first.
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q ".[dev,notebooks]"
	touch $@

sample: $(VENV)/.installed  ## generate 64 digits and a reverse-process GIF from the shipped checkpoint
	$(PY) -m ddpm_lite sample --out samples.png --gif reverse.gif

test: $(VENV)/.installed  ## the unit tests and notebook smoke runs
	$(PY) -m pytest -q

# The suite under another interpreter, in its own venv (.venv-3.10, .venv-3.13, ...): what CI runs at the ends of
# the supported range. Example: make test-python PYTHON=~/.pyenv/versions/3.10.13/bin/python
test-python:
	@v=$$($(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) \
		|| { echo "test-python: PYTHON=$(PYTHON) is not a runnable Python interpreter" >&2; exit 2; }; \
	$(MAKE) --no-print-directory test PYTHON='$(PYTHON)' VENV=.venv-$$v

test-slow: $(VENV)/.installed
	$(PY) -m pytest -q -m slow

notebooks: $(VENV)/.installed  ## re-execute the tutorial notebooks in place (full mode): the outputs GitHub shows
	$(PY) -m tools.run_notebooks
