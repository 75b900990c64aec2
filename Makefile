# gitmirror — two commands for a fresh clone: `make demo` and `make test`.
SHELL := /bin/bash
# .venv is made with Python 3.12 (the Lambda runtime): python3.12 on PATH, else pyenv's 3.12, else
# python3 >= 3.11 with a warning (scripts/find_python.sh). `make setup PYTHON=...` names one explicitly.
PYTHON ?=
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup setup-lfs demo test unit lint check-sam build bench fuzz load clean

setup:
	@bash scripts/setup_venv.sh "$(PYTHON)"

# the LFS tests' giftless server (own virtualenv, .venv-lfs) and the git-lfs client
setup-lfs:
	PYTHON="$(PYTHON)" bash scripts/setup_lfs_venv.sh

demo: setup
	$(VENV)/bin/gitmirror demo

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# The README walkthrough test runs `aws ...` too: the AWS CLI in its own venv (scripts/aws_cli_venv.sh).
test: setup setup-lfs
	@bash scripts/aws_cli_venv.sh > /dev/null
	$(VENV)/bin/pytest -q -p no:cacheprovider

# The fast part of the suite: the unit tests (in-memory, no servers).
unit: setup
	$(VENV)/bin/pytest -q -p no:cacheprovider tests/unit

check-sam:
	bash scripts/check_sam.sh
	bash scripts/check_layer_wheels.sh

# `sam build` without Docker (Python 3.12 on PATH), then the check of the built layer.
build:
	bash scripts/sam_build.sh

# make bench SCENARIO=name[,name] runs only those run.py scenarios (`receiver`, `lfs` = those benchmarks);
# BENCH_ARGS passes more options (bench/README.md).
bench: setup setup-lfs
	$(PY) bench/run.py $(if $(SCENARIO),--only $(SCENARIO)) $(BENCH_ARGS)
	$(if $(SCENARIO),,$(PY) bench/push_limits.py)

fuzz: setup
	GITMIRROR_FUZZ_EXAMPLES=10000 $(VENV)/bin/pytest -q -p no:cacheprovider tests/integration/test_fuzz_receiver.py

load: setup
	$(PY) -m gitmirror_dev.loadtest

clean:
	rm -rf $(VENV) .venv-lfs .venv-aws .pytest_cache .mypy_cache .ruff_cache .aws-sam
