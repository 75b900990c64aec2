"""`gitmirror local up` explains itself, shows the functions' INFO logs, and stops cleanly on a signal."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from tests.support import gitrepo as g
from tests.support.local_up import GITMIRROR, READY, LocalUp


def test_local_up_prints_how_to_use_it_and_its_curls_work(tmp_path: Path) -> None:
    stack = LocalUp(tmp_path)
    try:
        ready = stack.wait_for(READY)
        banner = "\n".join(stack.lines[:ready])
        workdir = stack.workdir
        env = stack.exports()
        upstream, downstream = Path(env["GITMIRROR_UPSTREAM"]), Path(env["GITMIRROR_DOWNSTREAM"])
        assert upstream.is_relative_to(workdir) and (upstream / "HEAD").is_file()
        assert downstream.is_relative_to(workdir) and (downstream / "HEAD").is_file()
        for needle in (f"upstream:    {upstream}", f"on disk at {downstream}", "git push -q origin HEAD"):
            assert needle in banner
        assert {"AWS_ENDPOINT_URL", "MIRRORS_TABLE", "RUNS_TABLE", "QUEUE_URL", "GITMIRROR_API"} <= set(env)
        curls = {
            m["provider"]: m["command"]
            for m in re.finditer(r"^  (?P<provider>\w+): (?P<command>curl .*)$", banner, re.M)
        }
        assert set(curls) == {"github", "gitlab", "gitea"}

        # push a commit upstream as the banner says, then send each provider's signed webhook
        shell_env = dict(os.environ, **env, HOME=str(tmp_path))
        push = "\n".join(
            line.strip()
            for line in banner.split("Push a commit upstream", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
        )
        subprocess.run(["bash", "-euc", push], cwd=tmp_path, env=shell_env, check=True, timeout=60)
        for provider, mirror_id in (("github", "demo"), ("gitlab", "demo-gitlab"), ("gitea", "demo-gitea")):
            mark = len(stack.lines)
            reply = subprocess.run(
                ["bash", "-euc", curls[provider]], env=shell_env, capture_output=True, text=True, timeout=60
            )
            assert json.loads(reply.stdout)["mirrors"] == [mirror_id], reply.stdout + reply.stderr
            # the terminal shows the receiver's and the worker's INFO lines for it
            received = json.loads(stack.lines[stack.wait_for('"message":"webhook handled"', start=mark)])
            assert received["level"] == "INFO" and received["mirrors"] == [mirror_id]
            line = stack.lines[stack.wait_for('"message":"job handled"', start=mark)]
            record = json.loads(line)
            assert record["mirror_id"] == mirror_id and record["result"] == "success", line
        heads = {k: v for k, v in g.refs(upstream).items() if k.startswith(("refs/heads/", "refs/tags/"))}
        assert {k: v for k, v in g.refs(downstream).items() if k in heads} == heads
    finally:
        code = stack.stop(signal.SIGTERM)
    assert code == 0, stack.output[-3000:]
    assert "gitmirror local up: stopped" in stack.output
    assert not workdir.exists()
    assert [p for p in tmp_path.iterdir() if p.name.startswith("gitmirror-")] == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_local_up_stops_on_a_signal_leaving_nothing_behind(tmp_path: Path, signum: int) -> None:
    stack = LocalUp(tmp_path)
    try:
        stack.wait_for(READY)
        workdir = stack.workdir
        assert workdir.is_dir()
    finally:
        code = stack.stop(signum)
    assert code == 0, stack.output[-3000:]
    assert "Traceback" not in stack.output
    assert not workdir.exists()
    assert [p for p in tmp_path.iterdir() if p.name.startswith("gitmirror-")] == []


def test_a_port_in_use_is_a_one_line_failure_leaving_nothing_behind(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        env = dict(os.environ, TMPDIR=str(tmp_path))
        proc = subprocess.run(
            [GITMIRROR, "local", "up", "--port", port, "--sample", "generated"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr == f"gitmirror: error: port {port} is already in use: stop what listens there, " + (
        "or pass --port 0 to pick a free one\n"
    )
    assert [p for p in tmp_path.iterdir() if p.name.startswith("gitmirror-")] == []
