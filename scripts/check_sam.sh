#!/usr/bin/env bash
# Validate template.yaml with the SAM CLI (`sam validate --lint`) and cfn-lint.
#
# The SAM CLI lives in its own virtualenv (.venv-sam, see scripts/sam_venv.sh). Exits non-zero on any
# finding.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TEMPLATE="${TEMPLATE:-template.yaml}"
# shellcheck source=scripts/sam_venv.sh
source "$ROOT/scripts/sam_venv.sh"

status=0

echo "check_sam: sam validate --lint" >&2
if ! "$SAM_VENV/bin/sam" validate --lint --template "$TEMPLATE" --region us-east-1; then
    status=1
fi

echo "check_sam: cfn-lint" >&2
# --include-checks I: informational findings count too.
if ! "$SAM_VENV/bin/cfn-lint" --include-checks I -- "$TEMPLATE"; then
    status=1
fi

if [[ $status -ne 0 ]]; then
    echo "check_sam: FAILED" >&2
else
    echo "check_sam: OK" >&2
fi
exit $status
