#!/usr/bin/env bash
# Make (or bring up to date) the dev virtualenv .venv: Python 3.12, the Lambda runtime, found by
# scripts/find_python.sh ($1 names an interpreter explicitly). A .venv of another minor version is
# made again; the pinned requirements are installed when a requirements file is newer than the stamp.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV=.venv
PY="$VENV/bin/python"
STAMP="$VENV/.installed"

base="$(bash scripts/find_python.sh "${1:-}")"
minor() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])'; }
want="$(minor "$base")"

if [[ -x "$PY" ]] && [[ "$(minor "$PY" 2>/dev/null || true)" != "$want" ]]; then
    echo "setup: $VENV is not Python $want: making it again" >&2
    rm -rf "$VENV"
fi
if [[ ! -x "$PY" ]]; then
    echo "setup: creating $VENV with $base" >&2
    "$base" -m venv "$VENV"
fi

fresh=1
for input in pyproject.toml requirements-dev.lock layers/requirements.txt; do
    [[ -f "$STAMP" && "$STAMP" -nt "$input" ]] || fresh=0
done
if (( ! fresh )); then
    "$PY" -m pip install -q --disable-pip-version-check -r requirements-dev.lock
    "$PY" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
    touch "$STAMP"
fi
