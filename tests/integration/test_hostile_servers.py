"""Every malformed answer a server can give ends in `failed` with one clean line, never a crash.

The servers are scripted loopback smart-HTTP servers (tests/support/hostile.py); the target is a real
bare repository, and `gitmirror sync --json` runs as a subprocess, as a user runs it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gitmirror.adapters.aws.queue import SqsJobQueue
from gitmirror.jobs import make_job
from gitmirror.mirror.engine import sync_mirror
from gitmirror.mirror.transport import Remote, http_client
from gitmirror.mirror.urls import parse_remote
from gitmirror.scrub import scrub
from gitmirror.values import RunStatus, Trigger, UpdateStatus
from gitmirror_dev.lambdas import QueuePoller, load_function
from tests.conftest import AwsEnv, GitServers
from tests.support import gitrepo as g
from tests.support.hostile import (
    FLUSH,
    HostileGitServer,
    fetch_response,
    ls_refs,
    one_commit_pack,
    pkts,
    sideband,
    v2_advertisement,
)
from tests.support.service import add_mirror, store

MAIN = b"refs/heads/main"
ESCAPES = b"\x1b[31m\x1b]0;title\x07\x1b[2J"
LONG_ERROR = (ESCAPES + b"fatal: something went wrong on the server ") * 1400  # ~60 KB


def gitmirror_sync(source: str, target: Path) -> tuple[int, dict[str, object], str]:
    proc = subprocess.run(
        [sys.executable, "-m", "gitmirror_cli.main", "sync", "--json", source, str(target)],
        capture_output=True,
        timeout=120,
    )
    return proc.returncode, json.loads(proc.stdout), proc.stderr.decode("utf-8", "replace")


def assert_clean_failure(code: int, payload: dict[str, object], stderr: str, expect: str) -> str:
    assert code == 1, (payload, stderr)
    assert payload["status"] == "failed" and payload["refs"] == []
    error = payload["error"]
    assert isinstance(error, str) and expect in error, error
    assert "\n" not in error and "\r" not in error
    assert not any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F for c in error), repr(error)
    assert len(error) <= 1000
    assert "internal error" not in error and "Traceback" not in stderr
    return error


Case = Callable[[bytes, bytes], dict[str, bytes]]
CASES: dict[str, tuple[Case, str]] = {
    "non-hex object id": (
        lambda commit, pack: {"ls_refs": ls_refs((b"z" * 40, MAIN))},
        "invalid object id",
    ),
    "non-UTF-8 object id": (
        lambda commit, pack: {"ls_refs": ls_refs((b"\xff\xfe" * 20, MAIN))},
        "invalid object id",
    ),
    "short object id": (
        lambda commit, pack: {"ls_refs": ls_refs((commit[:12], MAIN))},
        "invalid object id",
    ),
    "non-hex pkt-line length": (lambda commit, pack: {"ls_refs": b"zzzzjunk"}, "pkt-line length"),
    "pkt-line length below 4": (lambda commit, pack: {"ls_refs": b"0002"}, "pkt-line length"),
    "pkt-line longer than its body": (
        lambda commit, pack: {"ls_refs": b"0fff" + commit + b" " + MAIN},
        "does not match length prefix",
    ),
    "ERR line with 60 KB and escapes": (
        lambda commit, pack: {"ls_refs": pkts(b"ERR " + LONG_ERROR[:60000])},
        "fatal: something went wrong",
    ),
    "unknown side-band channel": (
        lambda commit, pack: {
            "ls_refs": ls_refs((commit, MAIN)),
            "fetch": pkts(b"packfile\n") + sideband(5, b"what is this") + FLUSH,
        },
        "sideband channel 5",
    ),
    "side-band error of 60 KB with escapes": (
        lambda commit, pack: {
            "ls_refs": ls_refs((commit, MAIN)),
            "fetch": pkts(b"packfile\n") + sideband(3, LONG_ERROR[:60000], chunk=30000) + FLUSH,
        },
        "fatal: something went wrong",
    ),
    "truncated pack, framed": (
        lambda commit, pack: {"ls_refs": ls_refs((commit, MAIN)), "fetch": fetch_response(pack[:-30])},
        "truncated or damaged pack",
    ),
    "truncated pack, connection closed": (
        lambda commit, pack: {
            "ls_refs": ls_refs((commit, MAIN)),
            "fetch": pkts(b"packfile\n") + sideband(1, pack)[:-30],
        },
        "",
    ),
    "not a pack": (
        lambda commit, pack: {"ls_refs": ls_refs((commit, MAIN)), "fetch": fetch_response(b"NOPE" * 10)},
        "not a git pack",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_answers_are_clean_failures(tmp_path: Path, case: str) -> None:
    commit, pack = one_commit_pack(tmp_path)
    answers, expect = CASES[case]
    target = g.init_bare(tmp_path / "dst.git")
    with HostileGitServer(v2_advertisement(), **answers(commit, pack)) as server:
        code, payload, stderr = gitmirror_sync(server.url, target)
    error = assert_clean_failure(code, payload, stderr, expect)
    assert "\x1b" not in error and "\x07" not in error
    assert "[31m" not in error and "[2J" not in error and "title" not in error  # nor their "?" forms
    assert g.refs(target) == {}  # nothing half-written


def test_a_v0_advertisement_with_a_non_hex_id(tmp_path: Path) -> None:
    advertisement = (
        pkts(b"# service=git-upload-pack\n")
        + FLUSH
        + pkts(b"g" * 40 + b" HEAD\0multi_ack side-band-64k ofs-delta symref=HEAD:refs/heads/main\n")
        + pkts(b"g" * 40 + b" refs/heads/main\n")
        + FLUSH
    )
    target = g.init_bare(tmp_path / "dst.git")
    with HostileGitServer(advertisement) as server:
        code, payload, stderr = gitmirror_sync(server.url, target)
    assert_clean_failure(code, payload, stderr, "invalid object id")


@pytest.mark.parametrize("host", ["a..b", "x" * 64 + ".example.com"])
def test_hosts_idna_rejects(tmp_path: Path, host: str) -> None:
    target = g.init_bare(tmp_path / "dst.git")
    code, payload, stderr = gitmirror_sync(f"https://{host}/repo.git", target)
    assert_clean_failure(code, payload, stderr, "invalid host name")


def test_the_worker_records_a_clean_failure(aws: AwsEnv, git_servers: GitServers) -> None:
    with HostileGitServer(v2_advertisement(), ls_refs=ls_refs((b"\xff" * 40, MAIN))) as server:
        hostile = add_mirror(aws, server.url, git_servers.target_url)
        bad_host = add_mirror(aws, "https://a..b/repo.git", git_servers.target_url)
        for mirror in (hostile, bad_host):
            SqsJobQueue(aws.queue_url).enqueue(make_job(mirror.id, Trigger.MANUAL, None))
        assert QueuePoller(load_function("worker"), aws.queue_url).drain() == 2
    for mirror, expect in ((hostile, "invalid object id"), (bad_host, "invalid host name")):
        after = store().get(mirror.id)
        assert after is not None and after.update_status == UpdateStatus.FAILED
        assert after.last_error and "internal error" not in after.last_error
        error = after.last_error.split("\n\nHint: ")[0]  # the status adds a hint paragraph
        assert expect in error and "\n" not in error and after.last_error == scrub(after.last_error)


@pytest.mark.parametrize("flood", ["refs", "bytes"])
def test_a_flood_of_refs_is_refused_while_it_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flood: str
) -> None:
    """The caps (500,000 refs, 64 MiB) scaled down; the listing is cut off as soon as it passes them."""
    monkeypatch.setattr(http_client, "MAX_REFS", 1000)
    monkeypatch.setattr(http_client, "MAX_LISTING_BYTES", 256 * 1024)
    count = 5000 if flood == "refs" else 1000
    name = b"refs/heads/" + (b"x" * 300 if flood == "bytes" else b"b")
    refs = [(b"%040x" % i, name + b"-%d" % i) for i in range(1, count)]

    def listing() -> Iterator[bytes]:
        answer = ls_refs(*refs)
        for start in range(0, len(answer), 4096):
            yield answer[start : start + 4096]

    target = g.init_bare(tmp_path / "dst.git")
    with HostileGitServer(v2_advertisement(), ls_refs=listing) as server:
        result = sync_mirror(Remote(parse_remote(server.url)), Remote(parse_remote(str(target))))
    assert result.status == RunStatus.FAILED and result.error
    expect = "more than 1,000 refs" if flood == "refs" else "ref listing larger than 0.25 MiB"
    assert expect in result.error, result.error
    assert g.refs(target) == {}
