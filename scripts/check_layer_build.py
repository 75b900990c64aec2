#!/usr/bin/env python3
"""Check what `sam build` made (scripts/sam_build.sh runs this on .aws-sam/build).

A layer's build directory is the one holding ``python/`` (SAM's python_pip builder installs there; it is
/opt/python at run time); a function's is one holding ``app.py``. Checks, each printed:

- the layer holds only the runtime package ``gitmirror`` (Python sources only: no ``__pycache__``, no
  egg-info), ``requirements.txt`` and the distributions pip installed for it, each pinned requirement at
  its pinned version; no developer tooling (the CLI, the dev tooling, the tests, moto, pytest, ...);
- every compiled extension is an aarch64 ELF for CPython 3.12 (the ELF machine field, and the file name's
  ``cpython-312-aarch64`` tag), and every wheel installed was tagged for cp312 / abi3 on aarch64, or pure;
- the unzipped size of the layers plus the largest function is under Lambda's 250 MB (printed).

Standard library only. Exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Lambda: "Deployment package (.zip file archive) size: 250 MB (unzipped, including layers)".
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024
RUNTIME_PACKAGE = "gitmirror"
# Top-level names (import packages or distributions, normalized) that are development-only.
DEVELOPER_TOOLING = {
    "gitmirror_cli",
    "gitmirror_dev",
    "tests",
    "moto",
    "pytest",
    "_pytest",
    "hypothesis",
    "mypy",
    "ruff",
    "flask",
    "werkzeug",
    "responses",
}
EM_AARCH64 = 183  # ELF e_machine
EXTENSION_TAG = re.compile(r"\.cpython-(?P<version>\d+)-(?P<platform>[a-z0-9_]+)-linux-gnu\.so$")
PINNED = re.compile(r"^\s*(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*==\s*(?P<version>[^\s;#]+)")


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def elf_machine(path: Path) -> int | None:
    """The ELF e_machine of a file, None when it is not an ELF file."""
    with path.open("rb") as f:
        header = f.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    return int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")


def tree_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def wheel_tag_ok(tag: str) -> bool:
    """A wheel tag a python3.12 arm64 Lambda can load: pure, or cp312 / abi3 (<= cp312) on aarch64."""
    python, abi, platform = tag.split("-")
    if platform == "any":
        return abi == "none" and any(p.startswith("py3") or p == "cp312" for p in python.split("."))
    if "aarch64" not in platform or not platform.startswith(("manylinux", "linux")):
        return False
    if abi == "cp312":
        return python == "cp312"
    if abi == "abi3":
        return any(re.fullmatch(r"cp3(\d+)", p) and int(p[3:]) <= 12 for p in python.split("."))
    return False


class Report:
    def __init__(self) -> None:
        self.failures: list[str] = []

    def check(self, ok: bool, what: str, detail: str = "") -> None:
        print(f"check_layer_build: {'ok  ' if ok else 'FAIL'} {what}{': ' + detail if detail else ''}")
        if not ok:
            self.failures.append(what)


def check_layer(layer: Path, report: Report) -> None:
    site = layer / "python"
    top = {p.name for p in site.iterdir()}
    dist_infos = sorted(p for p in site.iterdir() if p.name.endswith(".dist-info"))
    installed: dict[str, str] = {}
    owned: set[str] = set()
    bad_tags: list[str] = []
    for info in dist_infos:
        name, _, version = info.name.removesuffix(".dist-info").rpartition("-")
        installed[normalize(name)] = version
        owned.add(info.name)
        record = info / "RECORD"
        if record.is_file():
            for line in record.read_text(encoding="utf-8").splitlines():
                first = line.split(",", 1)[0].split("/", 1)[0]
                if first and first != "..":
                    owned.add(first)
        wheel = info / "WHEEL"
        tags = [
            line.split(":", 1)[1].strip()
            for line in wheel.read_text().splitlines()
            if line.startswith("Tag:")
        ]
        # a wheel lists one Tag line per expanded tag (py2.py3-none-any: two); one loadable tag suffices
        if not any(wheel_tag_ok(t) for t in tags):
            bad_tags.append(f"{info.name}: {', '.join(tags) or 'no tag'}")

    # requirements.txt itself is copied from layers/ with the package; every pin must be installed as pinned
    pins = {}
    for line in (site / "requirements.txt").read_text(encoding="utf-8").splitlines():
        match = PINNED.match(line)
        if match:
            pins[normalize(match["name"])] = match["version"]
    wrong = [
        f"{n}=={v} (installed: {installed.get(n, 'missing')})"
        for n, v in pins.items()
        if installed.get(n) != v
    ]
    report.check(
        bool(pins) and not wrong,
        f"{layer.name}: the pinned requirements are installed as pinned",
        ", ".join(wrong) or f"{len(pins)} pins, {len(installed)} distributions",
    )

    strays = sorted(top - owned - {RUNTIME_PACKAGE, "requirements.txt"})
    report.check(
        not strays,
        f"{layer.name}: only {RUNTIME_PACKAGE}/, requirements.txt and installed distributions",
        ", ".join(strays),
    )
    tooling = sorted(
        {normalize(n.split("-")[0]) for n in top} & DEVELOPER_TOOLING | set(installed) & DEVELOPER_TOOLING
    )
    report.check(not tooling, f"{layer.name}: no developer tooling", ", ".join(tooling))

    package = site / RUNTIME_PACKAGE
    not_source = sorted(
        str(p.relative_to(site))
        for p in package.rglob("*")
        if p.is_file() and p.suffix not in (".py", ".typed")
    ) + sorted(str(p.relative_to(site)) for p in package.rglob("*") if p.is_dir() and p.name == "__pycache__")
    report.check(
        package.is_dir() and not not_source,
        f"{layer.name}: {RUNTIME_PACKAGE}/ holds Python sources only",
        ", ".join(not_source[:10]),
    )
    expected = sorted(
        str(p.relative_to(ROOT / "layers")) for p in (ROOT / "layers" / RUNTIME_PACKAGE).rglob("*.py")
    )
    shipped = sorted(str(p.relative_to(site)) for p in package.rglob("*.py"))
    report.check(
        shipped == expected,
        f"{layer.name}: {RUNTIME_PACKAGE}/ is layers/{RUNTIME_PACKAGE}/ as it is",
        ", ".join(sorted(set(shipped) ^ set(expected))[:10]),
    )

    report.check(
        not bad_tags, f"{layer.name}: every wheel is cp312/abi3 aarch64 or pure", ", ".join(bad_tags)
    )
    extensions = 0
    wrong_binaries = []
    for path in sorted(site.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        machine = elf_machine(path)
        if machine is None:
            if ".so" in path.suffixes:
                wrong_binaries.append(f"{path.relative_to(site)} (not ELF)")
            continue
        extensions += 1
        if machine != EM_AARCH64:
            wrong_binaries.append(f"{path.relative_to(site)} (ELF machine {machine}, not aarch64)")
        tag = EXTENSION_TAG.search(path.name)
        if tag and (tag["version"] != "312" or tag["platform"] != "aarch64"):
            wrong_binaries.append(
                f"{path.relative_to(site)} (built for cpython-{tag['version']}-{tag['platform']})"
            )
    report.check(
        extensions > 0 and not wrong_binaries,
        f"{layer.name}: compiled extensions are aarch64 for cp312",
        ", ".join(wrong_binaries) or f"{extensions} ELF files",
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-dir", default=str(ROOT / ".aws-sam" / "build"))
    args = parser.parse_args(argv)
    build = Path(args.build_dir)
    report = Report()
    layers = sorted(p for p in build.iterdir() if (p / "python").is_dir()) if build.is_dir() else []
    functions = sorted(p for p in build.iterdir() if (p / "app.py").is_file()) if build.is_dir() else []
    report.check(
        bool(layers) and bool(functions),
        f"{build}: layers and functions built",
        f"layers {[p.name for p in layers]}, functions {[p.name for p in functions]}",
    )
    for layer in layers:
        check_layer(layer, report)
    for function in functions:
        extra = sorted(
            str(p.relative_to(function)) for p in function.rglob("*") if p.is_file() and p.name != "app.py"
        )
        report.check(not extra, f"{function.name}: only its handler app.py", ", ".join(extra))

    if layers and functions:
        layer_bytes = sum(tree_size(p) for p in layers)
        largest = max(functions, key=tree_size)
        total = layer_bytes + tree_size(largest)
        mb = 1024 * 1024
        report.check(
            total < LAMBDA_UNZIPPED_LIMIT,
            "unzipped layer + largest function under Lambda's 250 MB",
            f"layer {layer_bytes / mb:.1f} MB + {largest.name} {tree_size(largest) / 1024:.1f} KB"
            f" = {total / mb:.1f} MB of {LAMBDA_UNZIPPED_LIMIT // mb} MB",
        )
    if report.failures:
        print(f"check_layer_build: FAILED ({len(report.failures)} checks)", file=sys.stderr)
        return 1
    print("check_layer_build: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
