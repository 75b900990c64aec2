#!/usr/bin/env bash
# Print the path of the Python interpreter the project's virtualenvs are made with: the Lambda
# functions' runtime, CPython 3.12. Order: $1 when given (e.g. `make setup PYTHON=...`), `python3.12`
# on PATH, pyenv's newest 3.12.x, else `python3` when it is >= 3.11 (with a one-line warning on
# stderr). Candidates are run, not just looked up: a pyenv shim is on PATH even for a version that is
# not active, and then fails. Exits 1 when no usable interpreter exists.
set -euo pipefail

# The interpreter's absolute path when it runs and is at least the given minor version, else nothing.
usable() {
    local candidate="$1" min_minor="$2"
    "$candidate" -c "import sys; sys.exit(0 if sys.version_info[:2] >= (3, $min_minor) else 1)" \
        >/dev/null 2>&1 || return 1
    "$candidate" -c 'import sys; print(sys.executable)'
}

is_312() {
    [[ "$("$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" == "3.12" ]]
}

if [[ -n "${1:-}" ]]; then
    if ! found="$(usable "$1" 11)"; then
        echo "find_python: $1 is not a Python >= 3.11 that runs" >&2
        exit 1
    fi
    is_312 "$found" || echo "find_python: warning: $1 is not Python 3.12 (the Lambda runtime)" >&2
    echo "$found"
    exit 0
fi

if found="$(usable python3.12 12)" && is_312 "$found"; then
    echo "$found"
    exit 0
fi

if command -v pyenv >/dev/null 2>&1; then
    root="$(pyenv root 2>/dev/null || true)"
    if [[ -n "$root" && -d "$root/versions" ]]; then
        # newest 3.12.x first (version sort), skipping variants such as 3.12.1t or 3.12-dev
        while read -r version; do
            if found="$(usable "$root/versions/$version/bin/python3.12" 12)" && is_312 "$found"; then
                echo "$found"
                exit 0
            fi
        done < <(find "$root/versions" -mindepth 1 -maxdepth 1 -name '3.12.*' -printf '%f\n' \
            | grep -E '^3\.12\.[0-9]+$' | sort -rV)
    fi
fi

if found="$(usable python3 11)"; then
    version="$("$found" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')"
    echo "find_python: warning: no Python 3.12 (the Lambda runtime) found; using Python $version ($found)" >&2
    echo "$found"
    exit 0
fi

echo "find_python: no Python 3.12 (nor python3 >= 3.11) found; install python3.12 or pass PYTHON=..." >&2
exit 1
