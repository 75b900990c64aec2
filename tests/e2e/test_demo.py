"""`make demo`'s flow, as a user runs it: every step must pass and everything it started must stop."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

GITMIRROR = str(Path(sys.executable).with_name("gitmirror"))


@pytest.mark.parametrize("sample", ["generated", "auto"])
def test_demo_runs_the_whole_flow(sample: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [GITMIRROR, "demo", "--sample", sample],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "TMPDIR": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "HTTP 202" in out
    assert '"update_status": "finished"' in out and '"result": "success"' in out
    assert "downstream matches upstream exactly" in out
    assert '"result": "partial"' in out
    assert "Some refs have diverged and have not been updated on the remote:" in out
    assert "every step passed" in out
    assert "Traceback" not in proc.stderr
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith("gitmirror-")]
    assert leftovers == []  # the stack removed its working directory and every scratch repository
