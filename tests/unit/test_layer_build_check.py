"""scripts/check_layer_build.py (the CI check of `sam build`'s output) on small synthetic build trees: it
passes a layer laid out as SAM builds it and fails each kind of wrong layer."""

from __future__ import annotations

import importlib.util
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
EM_X86_64 = 62


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "check_layer_build", ROOT / "scripts" / "check_layer_build.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check = _load_script()


def elf(machine: int) -> bytes:
    """The first bytes of a little-endian 64-bit ELF shared object for `machine`."""
    ident = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)
    return ident + (3).to_bytes(2, "little") + machine.to_bytes(2, "little") + bytes(44)


def add_distribution(site: Path, name: str, version: str, files: dict[str, bytes], tag: str) -> None:
    info = site / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "WHEEL").write_text(f"Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: {tag}\n")
    for relative, data in files.items():
        (site / relative).parent.mkdir(parents=True, exist_ok=True)
        (site / relative).write_bytes(data)
    (info / "RECORD").write_text("".join(f"{f},,\n" for f in [*files, f"{info.name}/WHEEL"]))


@pytest.fixture
def build(tmp_path: Path) -> Path:
    """A build directory as `sam build` makes it: the layer (the package, requirements.txt, one wheel per
    pin, dulwich with an aarch64 extension) and one function."""
    site = tmp_path / "GitmirrorLayer" / "python"
    shutil.copytree(
        ROOT / "layers" / "gitmirror", site / "gitmirror", ignore=shutil.ignore_patterns("__pycache__")
    )
    requirements = (ROOT / "layers" / "requirements.txt").read_text()
    (site / "requirements.txt").write_text(requirements)
    for match in re.finditer(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==(\S+)", requirements, re.MULTILINE):
        name, version = match[1].replace("-", "_"), match[2]
        if name == "dulwich":
            files = {"dulwich/__init__.py": b"", "dulwich/_pack.cpython-312-aarch64-linux-gnu.so": elf(183)}
            add_distribution(site, name, version, files, "cp312-cp312-manylinux_2_28_aarch64")
        else:
            add_distribution(site, name, version, {f"{name}/__init__.py": b""}, "py3-none-any")
    (tmp_path / "WebhookFunction").mkdir()
    (tmp_path / "WebhookFunction" / "app.py").write_text("def lambda_handler(event, context): ...\n")
    return tmp_path


def run(build: Path) -> int:
    return int(check.main(["--build-dir", str(build)]))


def test_a_layer_as_sam_builds_it_passes(build: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(build) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out
    assert re.search(r"under Lambda's 250 MB: layer [\d.]+ MB \+ WebhookFunction [\d.]+ KB = [\d.]+ MB", out)


def _x86_extension(site: Path) -> None:
    (site / "dulwich" / "_pack.cpython-312-aarch64-linux-gnu.so").write_bytes(elf(EM_X86_64))


def _other_python(site: Path) -> None:
    so = site / "dulwich" / "_pack.cpython-312-aarch64-linux-gnu.so"
    so.rename(so.with_name("_pack.cpython-311-aarch64-linux-gnu.so"))


def _x86_wheel(site: Path) -> None:
    wheel = next(site.glob("dulwich-*.dist-info")) / "WHEEL"
    wheel.write_text(wheel.read_text().replace("manylinux_2_28_aarch64", "manylinux_2_28_x86_64"))


def _dev_tooling(site: Path) -> None:
    (site / "gitmirror_dev").mkdir()
    (site / "gitmirror_dev" / "__init__.py").write_text("")


def _moto(site: Path) -> None:
    add_distribution(site, "moto", "5.2.5", {"moto/__init__.py": b""}, "py3-none-any")


def _bytecode(site: Path) -> None:
    (site / "gitmirror" / "__pycache__").mkdir()
    (site / "gitmirror" / "__pycache__" / "values.cpython-312.pyc").write_bytes(b"\x00")


def _egg_info(site: Path) -> None:
    (site / "gitmirror.egg-info").mkdir()
    (site / "gitmirror.egg-info" / "PKG-INFO").write_text("Name: gitmirror\n")


def _stale_module(site: Path) -> None:
    (site / "gitmirror" / "removed_long_ago.py").write_text("")


def _wrong_pin(site: Path) -> None:
    info = next(site.glob("pydantic-*.dist-info"))
    info.rename(info.with_name("pydantic-1.0.0.dist-info"))


@pytest.mark.parametrize(
    ("damage", "failure"),
    [
        (_x86_extension, "compiled extensions are aarch64 for cp312"),
        (_other_python, "compiled extensions are aarch64 for cp312"),
        (_x86_wheel, "every wheel is cp312/abi3 aarch64 or pure"),
        (_dev_tooling, "no developer tooling"),
        (_moto, "no developer tooling"),
        (_bytecode, "gitmirror/ holds Python sources only"),
        (_egg_info, "only gitmirror/, requirements.txt and installed distributions"),
        (_stale_module, "gitmirror/ is layers/gitmirror/ as it is"),
        (_wrong_pin, "the pinned requirements are installed as pinned"),
    ],
)
def test_each_wrong_layer_fails(
    build: Path, capsys: pytest.CaptureFixture[str], damage: Callable[[Path], None], failure: str
) -> None:
    damage(build / "GitmirrorLayer" / "python")
    assert run(build) == 1
    failed = [line for line in capsys.readouterr().out.splitlines() if " FAIL " in line]
    assert any(failure in line for line in failed), failed


def test_a_function_with_more_than_its_handler_fails(build: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (build / "WebhookFunction" / "conftest.py").write_text("")
    assert run(build) == 1
    assert "FAIL WebhookFunction: only its handler app.py: conftest.py" in capsys.readouterr().out


def test_too_large_for_lambda_fails(
    build: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(check, "LAMBDA_UNZIPPED_LIMIT", 1024)
    assert run(build) == 1
    assert "FAIL unzipped layer + largest function under Lambda's 250 MB" in capsys.readouterr().out


def test_no_build_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tmp_path / "missing") == 1
    assert "FAIL" in capsys.readouterr().out
