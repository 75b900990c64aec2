#!/usr/bin/env bash
# `sam build` of template.yaml without Docker, then scripts/check_layer_build.py on the result.
#
# The functions and the layer are python3.12 on arm64. SAM's python_pip builder (aws-lambda-builders)
# needs a `python3.12` on PATH that runs (it checks the runtime binary), and cross-builds the layer on
# any host: pip downloads the manylinux aarch64 / pure wheels of layers/requirements.txt, so only PyPI
# must be reachable. The Python 3.12 scripts/find_python.sh finds (pyenv's, say) has its bin directory
# put first on PATH for the build. Without a Python 3.12, build in the Lambda image instead:
# `sam build --use-container` (needs Docker). Extra arguments go to `sam build`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TEMPLATE="${TEMPLATE:-template.yaml}"
BUILD_DIR="${BUILD_DIR:-.aws-sam/build}"
# shellcheck source=scripts/sam_venv.sh
source "$ROOT/scripts/sam_venv.sh"

if [[ "$("$SAM_PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" != "3.12" ]]; then
    echo "sam_build: FAILED - sam build needs Python 3.12 (the functions' runtime) on PATH;" \
        "install it, or build in the Lambda image with \`sam build --use-container\` (Docker)" >&2
    exit 1
fi
PY312_BIN="$(dirname "$SAM_PYTHON")"

echo "sam_build: sam build (python3.12 from $PY312_BIN, no Docker)" >&2
# --no-cached: CI checks a build from the sources as they are, not one reused from .aws-sam/cache.
PATH="$PY312_BIN:$PATH" "$SAM_VENV/bin/sam" build --template "$TEMPLATE" --build-dir "$BUILD_DIR" \
    --no-cached "$@"

"$SAM_PYTHON" scripts/check_layer_build.py --build-dir "$BUILD_DIR"
