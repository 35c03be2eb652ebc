# Two entry points, both working on a fresh machine: `make sample` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export DDPM_LITE_DATA ?= $(abspath ../shared/data)

.PHONY: sample test test-slow notebooks assets bench

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e ".[dev,notebooks]"
	touch $@

sample: $(VENV)/.installed  ## generate 64 digits and a reverse-process GIF from the shipped checkpoint
	$(PY) -m ddpm_lite sample --out samples.png --gif reverse.gif

test: $(VENV)/.installed  ## the unit tests and notebook smoke runs
	$(PY) -m pytest -q

test-slow: $(VENV)/.installed
	$(PY) -m pytest -q -m slow

notebooks: $(VENV)/.installed  ## re-execute the tutorial notebooks in place (full mode): the outputs GitHub shows
	$(PY) scripts/run_notebooks.py
