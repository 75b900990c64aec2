"""`gitmirror sync`'s progress display, read back from a pseudo-terminal; none off a terminal or with
--quiet; the summary of a failed run never claims the mirror is in sync."""

from __future__ import annotations

import errno
import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import CANARIES, GitServers
from tests.support import gitrepo as g

GITMIRROR = str(Path(sys.executable).with_name("gitmirror"))
MAIN = "refs/heads/main"
CLEAR = "\r\x1b[K"
FRAME = re.compile(
    r"^(?P<phase>[a-z ]+): received (?P<rx>\d+\.\d) MiB \((?P<rx_rate>\d+\.\d) MiB/s\), "
    r"sent (?P<tx>\d+\.\d) MiB \((?P<tx_rate>\d+\.\d) MiB/s\)(, pushes (?P<done>\d+)/(?P<planned>\d+))?$"
)


def seed_large(servers: GitServers) -> None:
    """About 3 MiB that does not compress, so the counters move past 0.0 MiB."""
    g.commit(servers.source_path, MAIN, {"blob.bin": os.urandom(3 * 1024 * 1024)})
    g.tag(servers.source_path, "v1", MAIN, annotated=True)


def run_on_terminal(args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    """Run with stderr on a pseudo-terminal (stdout a pipe); returns exit code, stdout, terminal text."""
    controller, terminal = pty.openpty()
    proc = subprocess.Popen([GITMIRROR, *args], stdout=subprocess.PIPE, stderr=terminal, env=env)
    os.close(terminal)
    received = bytearray()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 0.5)
        if not ready:
            if proc.poll() is not None:
                break
            continue
        try:
            chunk = os.read(controller, 65536)
        except OSError as exc:  # EIO: the child closed the terminal
            if exc.errno != errno.EIO:
                raise
            break
        if not chunk:
            break
        received.extend(chunk)
    os.close(controller)
    stdout = proc.stdout.read().decode() if proc.stdout else ""
    code = proc.wait(timeout=30)
    text = received.decode()
    for canary in CANARIES:
        assert canary not in text and canary not in stdout
    return code, stdout, text


def frames(text: str) -> list[str]:
    # the terminal turns "\n" into "\r\n"; progress frames never contain a newline
    return [frame for frame in text.replace("\r\n", "\n").split(CLEAR) if frame]


def test_progress_on_a_terminal_shows_phases_bytes_rates_and_pushes(
    git_servers: GitServers, sync_env: dict[str, str]
) -> None:
    seed_large(git_servers)
    code, stdout, text = run_on_terminal(["sync", git_servers.source_url, git_servers.target_url], sync_env)
    assert code == 0, stdout + text
    assert text.endswith(CLEAR)  # the line is erased at the end: the summary stands alone
    shown = frames(text)
    parsed = [FRAME.match(frame) for frame in shown]
    assert all(parsed), shown
    phases = [m["phase"] for m in parsed if m]
    for phase in ("listing", "fetching", "planning", "pushing", "done"):
        assert phase in phases, phases
    assert phases.index("listing") < phases.index("fetching") < phases.index("pushing")
    last = parsed[-1]
    assert last is not None and last["phase"] == "done"
    assert float(last["rx"]) >= 3.0 and float(last["tx"]) >= 3.0  # the 3 MiB went both ways
    assert (last["done"], last["planned"]) == ("1", "1")
    pushing = [m for m in parsed if m and m["phase"] == "pushing"]
    assert (pushing[0]["done"], pushing[0]["planned"]) == ("0", "1")
    assert any(float(m["rx_rate"]) > 0 for m in parsed if m)
    # stdout has the summary and nothing of the display
    assert "\x1b" not in stdout and "MiB" not in stdout
    assert stdout.splitlines()[0].endswith(": success")
    assert g.refs(git_servers.target_path) == g.refs(git_servers.source_path)


def test_no_progress_with_quiet_or_off_a_terminal_and_json_is_unchanged(
    git_servers: GitServers, sync_env: dict[str, str]
) -> None:
    seed_large(git_servers)
    code, stdout, text = run_on_terminal(
        ["sync", git_servers.source_url, git_servers.target_url, "--quiet"], sync_env
    )
    assert code == 0 and text == ""
    assert "already in sync" not in stdout and "create" in stdout

    g.commit(git_servers.source_path, MAIN, {"b": "2"})
    proc = subprocess.run(
        [GITMIRROR, "sync", git_servers.source_url, git_servers.target_url, "--json"],
        env=sync_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and proc.stderr == ""  # stderr is a pipe here: no display
    out = json.loads(proc.stdout)
    assert (
        set(out) == {"status", "divergent_refs", "refs", "error", "lfs", "remaining_refs"}
        and out["status"] == "success"
    )

    # on a terminal --json keeps stdout exactly one JSON object; the display is on stderr only
    g.commit(git_servers.source_path, MAIN, {"c": "3"})
    code, stdout, text = run_on_terminal(
        ["sync", git_servers.source_url, git_servers.target_url, "--json"], sync_env
    )
    assert code == 0 and "pushing" in text
    assert set(json.loads(stdout)) == {"status", "divergent_refs", "refs", "error", "lfs", "remaining_refs"}


def test_a_failed_run_never_says_it_is_in_sync(git_servers: GitServers, sync_env: dict[str, str]) -> None:
    absent = git_servers.source.repo_url("absent.git")
    code, stdout, text = run_on_terminal(["sync", absent, git_servers.target_url], sync_env)
    assert code == 1
    assert stdout.splitlines()[0].endswith(": failed")
    assert "already in sync" not in stdout and "nothing to do" not in stdout
    assert "no ref was changed" in stdout and "error: repository not found" in stdout
    assert frames(text)[-1].startswith("done:")  # the display ends with the run, failed or not

    # and a real no-op still says so
    g.commit(git_servers.source_path, MAIN, {"a": "1"})
    subprocess.run(
        [GITMIRROR, "sync", git_servers.source_url, git_servers.target_url],
        env=sync_env,
        check=True,
        timeout=60,
    )
    proc = subprocess.run(
        [GITMIRROR, "sync", git_servers.source_url, git_servers.target_url],
        env=sync_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and "already in sync, nothing to do" in proc.stdout
