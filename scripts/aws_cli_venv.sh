#!/usr/bin/env bash
# The AWS CLI (v1, from PyPI) in its own virtualenv (.venv-aws at the repository root, or $AWS_CLI_VENV):
# the README's walkthrough uses `aws dynamodb ...`, and `make test` runs that walkthrough verbatim
# (tests/e2e/test_readme_walkthrough.py). awscli pins botocore exactly, so it does not share the dev
# venv. A stamp file records the pinned version so later runs skip pip entirely. Prints the bin dir.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
AWS_CLI_VERSION="1.46.3"
VENV="${AWS_CLI_VENV:-$ROOT/.venv-aws}"
STAMP="$VENV/.installed-awscli-${AWS_CLI_VERSION}"

if [[ ! -f "$STAMP" ]]; then
    if [[ ! -x "$VENV/bin/python" ]]; then
        "$(bash "$ROOT/scripts/find_python.sh" "${PYTHON:-}")" -m venv "$VENV"
    fi
    echo "aws_cli_venv: installing awscli==$AWS_CLI_VERSION in $VENV (first run only)" >&2
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "awscli==$AWS_CLI_VERSION"
    rm -f "$VENV"/.installed-awscli-*
    touch "$STAMP"
fi
echo "$VENV/bin"
