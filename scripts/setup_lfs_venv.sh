#!/usr/bin/env bash
# The LFS tests' real Git LFS server (giftless) in its own virtualenv, .venv-lfs, and the git-lfs client.
# Idempotent: does nothing when both are there and the lock has not changed.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-lfs
LOCK=tests/lfs/requirements.lock
STAMP="$VENV/.installed"
if ! command -v git-lfs >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        (apt-get install -y -q git-lfs || (apt-get update -q && apt-get install -y -q git-lfs)) >/dev/null
    else
        echo "setup_lfs_venv: git-lfs is not installed (Debian: apt-get install -y git-lfs)" >&2
        exit 1
    fi
fi
if [ -f "$STAMP" ] && [ "$STAMP" -nt "$LOCK" ]; then
    exit 0
fi
test -x "$VENV/bin/python" || "$(bash scripts/find_python.sh "${PYTHON:-}")" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps -r "$LOCK"
"$VENV/bin/python" -c "import giftless.app, werkzeug.serving"
touch "$STAMP"
