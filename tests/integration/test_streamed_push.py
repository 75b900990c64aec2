"""A first mirror into an empty target pushes the pack while it downloads, and never lets a pack that is
not whole land: the source's answer is scripted (held mid-pack until the target's push has started,
then finished, damaged or cut), the target is git http-backend."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from gitmirror_dev.gitserver import GitHTTPServer
from tests.conftest import TARGET_TOKEN, TARGET_USER
from tests.integration.test_cli_sync import GITMIRROR
from tests.support import gitrepo as g
from tests.support.hostile import FLUSH, HostileGitServer, ls_refs, pkts, sideband, v2_advertisement

MAIN = b"refs/heads/main"
DST = "dst.git"


def big_commit_pack(tmp: Path) -> tuple[bytes, bytes]:
    """A real pack (git pack-objects) of one commit whose tree holds 3 MiB of random bytes: more
    than the push buffers (1 MiB, as git's http.postBuffer) before it streams."""
    repo = g.init_bare(tmp / "pack-source.git")
    git = ["git", f"--git-dir={repo}", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    blob = subprocess.run(
        [*git, "hash-object", "-w", "--stdin"],
        input=os.urandom(3 * 1024 * 1024),
        capture_output=True,
        check=True,
    ).stdout.strip()
    tree = subprocess.run(
        [*git, "mktree"], input=b"100644 blob " + blob + b"\tnoise.bin\n", capture_output=True, check=True
    ).stdout.strip()
    commit = subprocess.run(
        [*git, "commit-tree", "-m", "one", tree.decode()], capture_output=True, check=True
    )
    sha = commit.stdout.strip()
    pack = subprocess.run(
        [*git, "pack-objects", "--stdout", "-q"],
        input=b"\n".join([sha, tree, blob]) + b"\n",
        capture_output=True,
        check=True,
    ).stdout
    return sha, pack


class HeldSource:
    """A source whose fetch answer sends all but the pack's last KiB, then waits until the target has
    a receive-pack request in progress (or 20 s), then sends `tail` (None: closes the connection)."""

    def __init__(self, target: GitHTTPServer, sha: bytes, pack: bytes, tail: bytes | None) -> None:
        self.target = target
        self.push_seen_mid_download = threading.Event()
        head, rest = pack[:-1024], pack[-1024:]
        finish = b"" if tail is None else sideband(1, rest[: -len(tail)] + tail) + FLUSH

        def answer() -> Iterator[bytes]:
            yield pkts(b"packfile\n") + sideband(1, head)
            if self._wait_for_push():
                self.push_seen_mid_download.set()
            yield finish

        self.server = HostileGitServer(v2_advertisement(), ls_refs=ls_refs((sha, MAIN)), fetch=answer)

    def _wait_for_push(self) -> bool:
        for _ in range(2000):
            posts = self.target.rpc_requests("git-receive-pack")
            if posts and posts[0].request_bytes > 0:
                return True
            threading.Event().wait(0.01)
        return False


def sync(source: str, target: str, *flags: str) -> tuple[int, dict[str, object]]:
    env = dict(
        os.environ,
        GITMIRROR_SOURCE_USERNAME=TARGET_USER,
        GITMIRROR_SOURCE_TOKEN=TARGET_TOKEN,
        GITMIRROR_TARGET_USERNAME=TARGET_USER,
        GITMIRROR_TARGET_TOKEN=TARGET_TOKEN,
    )
    proc = subprocess.run(
        [GITMIRROR, "sync", source, target, "--json", "--no-lfs", *flags],
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert proc.stdout, proc.stderr
    assert b"Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def objects_in(repo: Path) -> dict[str, str]:
    out = g.git(repo, "count-objects", "-v")
    return dict(line.split(": ", 1) for line in out.splitlines())


@pytest.fixture
def target(tmp_path: Path) -> Iterator[GitHTTPServer]:
    with GitHTTPServer(tmp_path / "srv-dst", TARGET_USER, TARGET_TOKEN) as server:
        server.create_bare(DST)
        yield server


def test_the_first_push_starts_while_the_pack_downloads(tmp_path: Path, target: GitHTTPServer) -> None:
    sha, pack = big_commit_pack(tmp_path)
    held = HeldSource(target, sha, pack, tail=pack[-1024:][-20:])
    with held.server:
        code, out = sync(held.server.url + "/src.git", target.repo_url(DST))
    assert code == 0, out
    assert held.push_seen_mid_download.is_set()  # the target was receiving before the source finished
    assert g.refs(target.repo_path(DST)) == {"refs/heads/main": sha.decode()}
    posts = target.rpc_requests("git-receive-pack")
    assert len(posts) == 1 and posts[0].request_bytes >= len(pack)  # one push, the pack whole
    assert g.git(target.repo_path(DST), "fsck", "--no-progress").strip() == ""


@pytest.mark.parametrize("ending", ["damaged checksum", "connection closed"])
def test_a_pack_that_is_not_whole_never_lands_on_the_target(
    tmp_path: Path, target: GitHTTPServer, ending: str
) -> None:
    sha, pack = big_commit_pack(tmp_path)
    tail = bytes(20) if ending == "damaged checksum" else None
    held = HeldSource(target, sha, pack, tail=tail)
    with held.server:
        code, out = sync(held.server.url + "/src.git", target.repo_url(DST))
    assert code == 1, out
    assert out["status"] == "failed"
    assert "truncated or damaged pack" in str(out["error"]) or "closed unexpectedly" in str(out["error"])
    assert held.push_seen_mid_download.is_set()  # the target had most of the pack already
    dst = target.repo_path(DST)
    assert g.refs(dst) == {}
    counts = objects_in(dst)
    assert counts["count"] == "0" and counts["packs"] == "0", counts  # the partial pack was not kept


def test_under_a_push_cap_a_first_mirror_is_not_streamed(tmp_path: Path, target: GitHTTPServer) -> None:
    """A pack over the cap would be uploaded up to the cap for nothing: the history goes in steps, each
    push whole and under the cap, none stopped short."""
    with GitHTTPServer(tmp_path / "srv-src", TARGET_USER, TARGET_TOKEN) as source:
        src = source.create_bare("src.git")
        for i in range(3):
            g.commit(src, "refs/heads/main", {f"part{i}.bin": os.urandom(1536 * 1024)}, message=f"part {i}")
        code, out = sync(source.repo_url("src.git"), target.repo_url(DST), "--max-push-bytes", "2M")
    assert code == 0, out
    dst = target.repo_path(DST)
    assert g.refs(dst) == g.refs(src)
    posts = target.rpc_requests("git-receive-pack")
    assert len(posts) >= 3 and not any(p.aborted for p in posts)
    assert all(p.request_bytes <= 2 * 1024 * 1024 for p in posts)
    assert g.git(dst, "fsck", "--no-progress").strip() == ""


def test_nothing_in_scope_for_an_empty_target_pushes_nothing(tmp_path: Path, target: GitHTTPServer) -> None:
    with GitHTTPServer(tmp_path / "srv-src", TARGET_USER, TARGET_TOKEN) as source:
        src = source.create_bare("src.git")
        g.commit(src, "refs/heads/main", {"a": "a\n"})
        code, out = sync(source.repo_url("src.git"), target.repo_url(DST), "--branch-filter", "release/*")
    assert code == 0, out
    assert out["status"] == "success" and out["refs"] == []
    assert g.refs(target.repo_path(DST)) == {}
    assert target.rpc_requests("git-receive-pack") == []
