#!/usr/bin/env bash
# Check that every requirement of the Lambda layer (layers/requirements.txt, with its transitive
# dependencies) is available as a binary wheel for the deployment target: CPython 3.12 on Linux arm64
# (Lambda python3.12 runs on Amazon Linux 2023, glibc 2.34). `sam build` cross-builds the layer with
# pip, accepting the same manylinux tags as below (aws-lambda-builders' python_pip workflow); a
# requirement that only ships an sdist would be compiled for the build host instead and break at
# import time on Lambda. Also guards the unpacked size against Lambda's 250 MB (function + layers)
# limit. Exits non-zero when anything lacks a suitable wheel or the layer is too large.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

REQUIREMENTS="${REQUIREMENTS:-layers/requirements.txt}"
# Unpacked size budget of the third-party part of the layer, leaving room for the gitmirror package and
# the function code within Lambda's 250 MB.
MAX_UNPACKED_MB="${MAX_UNPACKED_MB:-200}"
PYTHON="${PYTHON:-}"
if [[ -z "$PYTHON" ]]; then
    if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi

DEST="$(mktemp -d "${TMPDIR:-/tmp}/gitmirror-layer-wheels.XXXXXX")"
trap 'rm -rf "$DEST"' EXIT

PLATFORMS=(
    manylinux2014_aarch64
    manylinux_2_17_aarch64
    manylinux_2_28_aarch64
    manylinux_2_34_aarch64
)
platform_args=()
for p in "${PLATFORMS[@]}"; do platform_args+=(--platform "$p"); done

echo "check_layer_wheels: resolving $REQUIREMENTS for cp312 / linux aarch64 (wheels only)" >&2
if ! "$PYTHON" -m pip download \
        --disable-pip-version-check \
        --quiet \
        --requirement "$REQUIREMENTS" \
        "${platform_args[@]}" \
        --python-version 3.12 \
        --implementation cp \
        --abi cp312 --abi abi3 --abi none \
        --only-binary=:all: \
        --dest "$DEST"; then
    echo "check_layer_wheels: FAILED - some requirement has no cp312 linux aarch64 (or pure-Python) wheel" >&2
    exit 1
fi

# Belt and braces: only wheels may have been fetched, and every binary one must target aarch64.
status=0
shopt -s nullglob
for f in "$DEST"/*; do
    name="$(basename "$f")"
    case "$name" in
        *.whl) ;;
        *) echo "check_layer_wheels: not a wheel: $name" >&2; status=1; continue ;;
    esac
    tag="${name%.whl}"
    plat="${tag##*-}"
    if [[ "$plat" != "any" && "$plat" != *aarch64* ]]; then
        echo "check_layer_wheels: wrong platform: $name" >&2
        status=1
    fi
done
count=$(find "$DEST" -maxdepth 1 -name '*.whl' | wc -l)
if [[ $status -ne 0 || $count -eq 0 ]]; then
    echo "check_layer_wheels: FAILED" >&2
    exit 1
fi
unpacked_mb=$("$PYTHON" - "$DEST" <<'PY'
import pathlib
import sys
import zipfile

total = sum(i.file_size for w in pathlib.Path(sys.argv[1]).glob("*.whl") for i in zipfile.ZipFile(w).infolist())
print(total // (1024 * 1024))
PY
)
if (( unpacked_mb > MAX_UNPACKED_MB )); then
    echo "check_layer_wheels: FAILED - layer dependencies unpack to ${unpacked_mb} MB (> ${MAX_UNPACKED_MB} MB)" >&2
    exit 1
fi
echo "check_layer_wheels: OK ($count wheels, ${unpacked_mb} MB unpacked)" >&2
find "$DEST" -maxdepth 1 -name '*.whl' -printf '  %f\n' | sort >&2
