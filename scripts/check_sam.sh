#!/usr/bin/env bash
# Validate template.yaml with the SAM CLI (`sam validate --lint`) and cfn-lint.
#
# aws-sam-cli pins botocore/boto3 tightly, so it lives in its own virtualenv (.venv-sam at the
# repository root) instead of the dev venv. The venv is created on first use; a stamp file records the
# pinned versions so later runs skip pip entirely. Exits non-zero on any finding.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

SAM_CLI_VERSION="1.170.0"
CFN_LINT_VERSION="1.58.0"
PYTHON="${PYTHON:-python3}"
VENV="${SAM_VENV:-$ROOT/.venv-sam}"
STAMP="$VENV/.installed-sam-${SAM_CLI_VERSION}-cfnlint-${CFN_LINT_VERSION}"
TEMPLATE="${TEMPLATE:-template.yaml}"

export SAM_CLI_TELEMETRY=0
export SAM_CLI_CONTEXTS_TELEMETRY=0
# `sam validate` needs a region and (for --lint only) no credentials; keep it off any real profile.
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
export PIP_DISABLE_PIP_VERSION_CHECK=1

if [[ ! -f "$STAMP" ]]; then
    if [[ ! -x "$VENV/bin/python" ]]; then
        echo "check_sam: creating $VENV" >&2
        "$PYTHON" -m venv "$VENV"
    fi
    echo "check_sam: installing aws-sam-cli==$SAM_CLI_VERSION cfn-lint==$CFN_LINT_VERSION (first run only)" >&2
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q "aws-sam-cli==$SAM_CLI_VERSION" "cfn-lint==$CFN_LINT_VERSION"
    rm -f "$VENV"/.installed-sam-*
    touch "$STAMP"
fi

status=0

echo "check_sam: sam validate --lint" >&2
if ! "$VENV/bin/sam" validate --lint --template "$TEMPLATE" --region us-east-1; then
    status=1
fi

echo "check_sam: cfn-lint" >&2
# --include-checks I: informational findings count too.
if ! "$VENV/bin/cfn-lint" --include-checks I -- "$TEMPLATE"; then
    status=1
fi

if [[ $status -ne 0 ]]; then
    echo "check_sam: FAILED" >&2
else
    echo "check_sam: OK" >&2
fi
exit $status
