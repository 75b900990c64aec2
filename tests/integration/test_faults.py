"""Faults injected on real git servers: every one ends in a scrubbed, actionable `failed`, leaves the
target consistent (no ref pointing at a missing object), leaves no scratch files, and the next sync
converges."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gitmirror.mirror.credentials import StaticCredentials
from gitmirror.mirror.engine import sync_mirror
from gitmirror.mirror.transport import Remote
from gitmirror.mirror.urls import NetworkPolicy, parse_remote
from gitmirror.values import RunStatus, SyncResult
from tests.conftest import CANARIES, SOURCE_TOKEN, SOURCE_USER, TARGET_TOKEN, TARGET_USER, GitServers
from tests.support import gitrepo as g

MAIN = "refs/heads/main"


def sync(servers: GitServers, *, read_timeout: float = 120.0, mode: str = "incremental") -> SyncResult:
    source = Remote(
        parse_remote(servers.source_url),
        StaticCredentials(SOURCE_USER, SOURCE_TOKEN),
        read_timeout=read_timeout,
    )
    target = Remote(
        parse_remote(servers.target_url),
        StaticCredentials(TARGET_USER, TARGET_TOKEN),
        read_timeout=read_timeout,
    )
    result = sync_mirror(source, target, mode=mode)
    for canary in CANARIES:
        assert canary not in result.to_json()
    return result


def seed(servers: GitServers, size: int = 512 * 1024) -> None:
    import os

    g.commit(servers.source_path, MAIN, {"data.bin": os.urandom(size)})
    g.commit(servers.source_path, "refs/heads/dev", {"x": "dev"})
    g.tag(servers.source_path, "v1", MAIN, annotated=True)


def assert_consistent(servers: GitServers) -> None:
    """Every ref on the target points at an object it has, with its whole history."""
    g.git(servers.target_path, "fsck", "--connectivity-only", "--no-dangling")


def fault(servers: GitServers, name: str) -> None:
    src, dst = servers.source, servers.target
    if name == "fetch-cut":
        src.close_mid_response_after_bytes = 64 * 1024
        src.close_mid_response_path_contains = "/git-upload-pack"
    elif name == "push-cut":
        dst.close_mid_request_after_bytes = 64 * 1024
        dst.close_mid_request_path_contains = "/git-receive-pack"
    elif name.startswith("source-"):
        src.fail_next(int(name.split("-")[1]), count=100)
    elif name.startswith("target-"):
        dst.fail_next(int(name.split("-")[1]), count=100)


def clear(servers: GitServers) -> None:
    for server in (servers.source, servers.target):
        server.clear_failures()
        server.close_mid_response_after_bytes = None
        server.close_mid_request_after_bytes = None
        server.stall_seconds = 0.0


@pytest.mark.parametrize(
    ("name", "expect", "retryable"),
    [
        ("fetch-cut", "closed unexpectedly", True),
        ("push-cut", "closed unexpectedly", True),
        ("source-401", "authentication failed", False),
        ("source-403", "access denied", False),
        ("source-404", "not found", False),
        ("source-500", "HTTP 500", True),
        ("source-502", "HTTP 502", True),
        ("target-401", "authentication failed", False),
        ("target-403", "access denied", False),
        ("target-404", "not found", False),
        ("target-500", "HTTP 500", True),
        ("target-502", "HTTP 502", True),
    ],
)
def test_fault_fails_cleanly_and_next_sync_converges(
    git_servers: GitServers, isolated_tmpdir: Path, name: str, expect: str, retryable: bool
) -> None:
    seed(git_servers)
    fault(git_servers, name)
    result = sync(git_servers)
    assert result.status == RunStatus.FAILED, result
    assert result.error is not None and expect in result.error, result.error
    assert result.retryable is retryable
    assert_consistent(git_servers)
    assert list(isolated_tmpdir.iterdir()) == []
    clear(git_servers)
    again = sync(git_servers)
    assert again.status == RunStatus.SUCCESS, again.error
    assert g.refs(git_servers.target_path) == g.refs(git_servers.source_path)
    assert_consistent(git_servers)


def test_stalled_server_times_out(git_servers: GitServers, isolated_tmpdir: Path) -> None:
    seed(git_servers, size=1024)
    git_servers.source.stall_seconds = 3.0
    git_servers.source.stall_path_contains = "/git-upload-pack"
    result = sync(git_servers, read_timeout=1.0)
    assert result.status == RunStatus.FAILED
    assert result.error and "timed out" in result.error and result.retryable
    assert list(isolated_tmpdir.iterdir()) == []
    clear(git_servers)
    assert sync(git_servers).status == RunStatus.SUCCESS


class _Redirector(BaseHTTPRequestHandler):
    location = "http://169.254.169.254/latest/meta-data/"

    def do_GET(self) -> None:
        self.send_response(302)
        self.send_header("Location", self.location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def redirector() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Redirector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/repo.git"
    server.shutdown()
    server.server_close()


def test_redirects_are_never_followed(git_servers: GitServers, redirector: str) -> None:
    seed(git_servers, size=1024)
    result = sync_mirror(
        Remote(parse_remote(redirector), StaticCredentials(SOURCE_USER, SOURCE_TOKEN)),
        Remote(parse_remote(git_servers.target_url), StaticCredentials(TARGET_USER, TARGET_TOKEN)),
    )
    assert result.status == RunStatus.FAILED
    assert result.error and "redirected to http://169.254.169.254/" in result.error
    assert SOURCE_TOKEN not in result.error


@pytest.mark.parametrize(
    ("url", "policy", "message"),
    [
        (
            "http://169.254.169.254/latest/meta-data/repo.git",
            NetworkPolicy(allow_insecure_http=True),
            "link-local",
        ),
        ("https://127.0.0.1/repo.git", NetworkPolicy(), "loopback"),
        ("https://10.1.2.3/repo.git", NetworkPolicy(), "private"),
        ("http://example.com/repo.git", NetworkPolicy(), "https"),
        ("https://localhost/repo.git", NetworkPolicy(), "localhost"),
    ],
)
def test_network_policy_refuses_before_connecting(
    git_servers: GitServers, url: str, policy: NetworkPolicy, message: str
) -> None:
    result = sync_mirror(
        Remote(parse_remote(url), StaticCredentials(SOURCE_USER, SOURCE_TOKEN), policy=policy),
        Remote(parse_remote(git_servers.target_url), StaticCredentials(TARGET_USER, TARGET_TOKEN)),
    )
    assert result.status == RunStatus.FAILED and not result.retryable
    assert result.error and message in result.error
    assert git_servers.target.requests == [] or all(
        "receive-pack" not in r.path for r in git_servers.target.requests
    )


def test_target_accepting_some_refs_and_rejecting_others(git_servers: GitServers) -> None:
    seed(git_servers, size=1024)
    git_servers.target.install_hook(
        "dst.git",
        "update",
        '#!/bin/sh\n[ "$1" = refs/heads/dev ] && { echo "dev is locked" >&2; exit 1; }\nexit 0\n',
    )
    result = sync(git_servers)
    assert result.status == RunStatus.PARTIAL
    rejected = {r.ref: r.error for r in result.refs if r.action == "rejected"}
    assert list(rejected) == ["refs/heads/dev"] and "dev is locked" in str(rejected["refs/heads/dev"])
    assert_consistent(git_servers)
    assert "refs/heads/dev" not in g.refs(git_servers.target_path)
