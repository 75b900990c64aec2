# Sourced by scripts/check_sam.sh and scripts/sam_build.sh: makes sure the SAM CLI's own virtualenv
# (.venv-sam at the repository root, or $SAM_VENV) has the pinned aws-sam-cli and cfn-lint, and keeps
# the SAM CLI offline-friendly and off any real AWS profile. aws-sam-cli pins botocore/boto3 tightly,
# so it does not share the dev venv. The venv is made with the interpreter scripts/find_python.sh picks
# (Python 3.12, or $PYTHON); a stamp file records the pinned versions so later runs skip pip entirely.
# Sets SAM_PYTHON (that interpreter) and SAM_VENV.

SAM_CLI_VERSION="1.170.0"
CFN_LINT_VERSION="1.58.0"
SAM_VENV="${SAM_VENV:-$ROOT/.venv-sam}"
SAM_PYTHON="$(bash "$ROOT/scripts/find_python.sh" "${PYTHON:-}")"

export SAM_CLI_TELEMETRY=0
export SAM_CLI_CONTEXTS_TELEMETRY=0
# `sam validate` and `sam build` need a region and no credentials; keep them off any real profile.
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
export PIP_DISABLE_PIP_VERSION_CHECK=1

sam_stamp="$SAM_VENV/.installed-sam-${SAM_CLI_VERSION}-cfnlint-${CFN_LINT_VERSION}"
if [[ ! -f "$sam_stamp" ]]; then
    if [[ ! -x "$SAM_VENV/bin/python" ]]; then
        echo "sam_venv: creating $SAM_VENV" >&2
        "$SAM_PYTHON" -m venv "$SAM_VENV"
    fi
    echo "sam_venv: installing aws-sam-cli==$SAM_CLI_VERSION cfn-lint==$CFN_LINT_VERSION (first run only)" >&2
    "$SAM_VENV/bin/python" -m pip install -q --upgrade pip
    "$SAM_VENV/bin/python" -m pip install -q "aws-sam-cli==$SAM_CLI_VERSION" "cfn-lint==$CFN_LINT_VERSION"
    rm -f "$SAM_VENV"/.installed-sam-*
    touch "$sam_stamp"
fi
unset sam_stamp
