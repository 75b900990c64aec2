# gitmirror — two commands for a fresh clone: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint check-sam bench fuzz load clean

$(STAMP): pyproject.toml requirements-dev.lock layers/requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.lock
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(VENV)/bin/gitmirror demo

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: setup
	$(VENV)/bin/pytest -q -p no:cacheprovider

check-sam:
	bash scripts/check_sam.sh
	bash scripts/check_layer_wheels.sh

bench: setup
	$(PY) bench/run.py

fuzz: setup
	GITMIRROR_FUZZ_EXAMPLES=10000 $(VENV)/bin/pytest -q -p no:cacheprovider tests/integration/test_fuzz_receiver.py

load: setup
	$(PY) -m gitmirror_dev.loadtest

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
