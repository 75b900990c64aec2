"""The gitmirror the benchmarks run: this checkout, installed the way a user installs it.

`make setup` installs the checkout editable into .venv: a path finder runs at every interpreter start,
and where PYTHONDONTWRITEBYTECODE is set (containers and CI often set it) no bytecode is ever cached for
an editable install, so every run compiles gitmirror's modules from source: ~35 ms of a 0.15 s no-op
sync. A user's `pip install` has neither: a wheel, byte-compiled when installed. So the benchmarks run
the checkout built as a wheel and installed into bench/.cache/gitmirror-venv, rebuilt whenever a source
file changed (a few seconds). Its dependencies are .venv's, on its path through a .pth file (whose plain
directory line does not run the .pth files there, the editable finder among them).

BENCH_GITMIRROR names another binary instead (`.venv/bin/gitmirror`: the editable install).
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
VENV = BENCH_DIR / ".cache" / "gitmirror-venv"
# what the wheel is made of (pyproject.toml's packages)
SOURCES = ("pyproject.toml", "layers/gitmirror", "tools/gitmirror_cli", "tools/gitmirror_dev")
_STAMP = "source.sha256"


def _source_files() -> list[Path]:
    files: list[Path] = []
    for name in SOURCES:
        root = REPO_ROOT / name
        if root.is_file():
            files.append(root)
        else:
            files += sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    return files


def source_digest() -> str:
    """Of every file the wheel is built from, and of the interpreter (the dependencies are its)."""
    digest = hashlib.sha256(sys.version.encode())
    for path in _source_files():
        digest.update(str(path.relative_to(REPO_ROOT)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def description() -> str:
    """How the benchmarked gitmirror is installed, for the report."""
    if os.environ.get("BENCH_GITMIRROR"):
        return f"BENCH_GITMIRROR={os.environ['BENCH_GITMIRROR']}"
    return f"this checkout as a wheel in {VENV.relative_to(REPO_ROOT)} (byte-compiled, not editable)"


@functools.cache
def gitmirror_bin() -> Path:
    """BENCH_GITMIRROR, else the installed checkout's `gitmirror` (installed first if out of date)."""
    explicit = os.environ.get("BENCH_GITMIRROR")
    if explicit:
        return Path(explicit)
    binary = VENV / "bin" / "gitmirror"
    digest = source_digest()
    stamp = VENV / _STAMP
    if not (binary.is_file() and stamp.is_file() and stamp.read_text() == digest):
        _install(digest)
    return binary


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")


def _install(digest: str) -> None:
    print(f"[bench] installing this checkout as a wheel into {VENV}", file=sys.stderr, flush=True)
    shutil.rmtree(VENV, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="gitmirror-bench-wheel-") as tmp:
        # built from a copy: setuptools leaves build/ and *.egg-info beside what it builds
        tree = Path(tmp) / "src"
        for path in _source_files():
            target = tree / path.relative_to(REPO_ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        wheels = Path(tmp) / "wheels"
        pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
        _run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(wheels), str(tree)])
        _run([sys.executable, "-m", "venv", "--without-pip", str(VENV)])
        python = VENV / "bin" / "python"
        wheel = [str(w) for w in wheels.glob("gitmirror-*.whl")]
        _run([*pip, "--python", str(python), "install", "--no-deps", "--no-index", "--compile", *wheel])
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    dependencies = sorted({sysconfig.get_path("purelib"), sysconfig.get_path("platlib")})
    (Path(site) / "_gitmirror_bench_dependencies.pth").write_text("\n".join(dependencies) + "\n")
    (VENV / _STAMP).write_text(digest)
