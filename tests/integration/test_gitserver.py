"""Self-test of the smart-HTTP test server and repository builders against the real git CLI."""

from __future__ import annotations

import base64
import gzip
import http.client
import random
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from gitmirror_dev.gitserver import GitHTTPServer, serve_git
from tests.support import gitrepo

USER = "alice"
PASSWORD = "s3cret-pw"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[GitHTTPServer]:
    with serve_git(tmp_path / "srv") as srv:
        yield srv


@pytest.fixture
def auth_server(tmp_path: Path) -> Iterator[GitHTTPServer]:
    with serve_git(tmp_path / "srv", username=USER, password=PASSWORD) as srv:
        yield srv


def client(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run the git CLI as an HTTP client: no credential helpers, no prompts."""
    return gitrepo.run_git("-c", "credential.helper=", *args, cwd=cwd, check=False, timeout=30)


def stderr_of(proc: subprocess.CompletedProcess[bytes]) -> str:
    return proc.stderr.decode("utf-8", "replace")


def make_source(server: GitHTTPServer, name: str = "src.git") -> tuple[Path, list[str]]:
    repo = server.create_bare(name)
    c1 = gitrepo.commit(repo, files={"a.txt": "one\n", "dir/b.txt": b"two\n"}, message="first")
    c2 = gitrepo.commit(repo, files={"a.txt": "one more\n"}, message="second")
    gitrepo.tag(repo, "v1", c1, annotated=True, message="release 1")
    gitrepo.tag(repo, "light", c2)
    return repo, [c1, c2]


def incompressible(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


# -- fetching ---------------------------------------------------------------------------


def test_clone_mirror_without_auth(server: GitHTTPServer, tmp_path: Path) -> None:
    src, _ = make_source(server)
    dest = tmp_path / "clone.git"
    proc = client("clone", "--quiet", "--mirror", server.repo_url("src.git"), str(dest))
    assert proc.returncode == 0, stderr_of(proc)
    assert gitrepo.refs(dest) == gitrepo.refs(src)

    fetches = server.rpc_requests("git-upload-pack")
    assert fetches and all(r.status == 200 and r.done for r in fetches)
    assert server.bytes_sent("git-upload-pack") > 0
    assert server.bytes_received("git-upload-pack") > 0
    assert not server.requests_matching(service="git-receive-pack")


def test_auth_required(auth_server: GitHTTPServer) -> None:
    make_source(auth_server)
    proc = client("ls-remote", auth_server.repo_url("src.git"))
    assert proc.returncode != 0
    assert [r.status for r in auth_server.requests] == [401]

    proc = client("ls-remote", auth_server.authed_repo_url("src.git", password="wrong"))
    assert proc.returncode != 0
    assert "Authentication failed" in stderr_of(proc)

    auth_server.clear_requests()
    proc = client("ls-remote", auth_server.authed_repo_url("src.git"))
    assert proc.returncode == 0, stderr_of(proc)
    assert b"refs/heads/main" in proc.stdout
    # git tries anonymously first, then retries with the URL's credentials
    assert auth_server.requests[0].status == 401
    assert auth_server.requests[-1].status == 200
    assert auth_server.requests[-1].user == USER

    auth_server.clear_requests()
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    proc = client(
        "-c",
        f"http.extraHeader=Authorization: Basic {token}",
        "ls-remote",
        auth_server.repo_url("src.git"),
    )
    assert proc.returncode == 0, stderr_of(proc)
    assert all(r.status == 200 for r in auth_server.requests)


def test_protocol_v2_and_v0(server: GitHTTPServer) -> None:
    make_source(server)
    proc = client("-c", "protocol.version=2", "ls-remote", server.repo_url("src.git"))
    assert proc.returncode == 0, stderr_of(proc)
    assert b"refs/tags/v1^{}" in proc.stdout
    adverts = server.requests_matching(path_contains="info/refs")
    assert adverts[0].header("Git-Protocol") == "version=2"
    # v2 ls-remote issues an ls-refs command via POST; v0 only needs the advertisement
    assert len(server.rpc_requests("git-upload-pack")) == 1

    server.clear_requests()
    proc = client("-c", "protocol.version=0", "ls-remote", server.repo_url("src.git"))
    assert proc.returncode == 0, stderr_of(proc)
    assert server.requests[0].header("Git-Protocol") is None
    assert server.rpc_requests("git-upload-pack") == []


def test_raw_chunked_and_gzip_upload_pack_requests(server: GitHTTPServer) -> None:
    _, (_, c2) = make_source(server)
    want = f"want {c2}\n".encode()
    body = b"%04x%s0000" % (len(want) + 4, want) + b"0009done\n"
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    headers = {"Content-Type": "application/x-git-upload-pack-request"}

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(body), 7):
            yield body[i : i + 7]

    conn.request("POST", "/src.git/git-upload-pack", body=chunks(), headers=headers, encode_chunked=True)
    resp = conn.getresponse()
    data = resp.read()
    assert resp.status == 200
    assert data.startswith(b"0008NAK\n") and b"PACK" in data

    # same keep-alive connection, gzip-compressed Content-Length body
    compressed = gzip.compress(body)
    conn.request(
        "POST",
        "/src.git/git-upload-pack",
        body=compressed,
        headers={**headers, "Content-Encoding": "gzip"},
    )
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    assert resp.status == 200
    assert b"PACK" in data
    first, second = server.rpc_requests("git-upload-pack")
    assert first.header("Transfer-Encoding") == "chunked"
    assert first.request_bytes == len(body)
    assert second.request_bytes == len(compressed)
    assert second.response_bytes == len(data)


def test_non_git_path_and_unknown_repo(server: GitHTTPServer) -> None:
    with urllib.request.urlopen(f"{server.url}/not-git", timeout=5) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/html")
        assert b"<html>" in resp.read()
    proc = client("ls-remote", f"{server.url}/not-git")
    assert proc.returncode != 0

    server.clear_requests()
    proc = client("ls-remote", server.repo_url("missing.git"))
    assert proc.returncode != 0
    assert "not found" in stderr_of(proc)
    assert server.requests[0].status == 404


# -- pushing ----------------------------------------------------------------------------


def test_push_create_update_delete(server: GitHTTPServer, tmp_path: Path) -> None:
    dst = server.create_bare("dst.git")
    local = gitrepo.init_bare(tmp_path / "local.git")
    c1 = gitrepo.commit(local, files={"f": "1"}, message="c1")
    c2 = gitrepo.commit(local, files={"f": "2"}, message="c2")
    c3 = gitrepo.commit(local, ref=None, parents=[c1], files={"f": "3"}, message="c3")
    url = server.repo_url("dst.git")

    def push(*refspecs: str) -> None:
        proc = client("push", "--porcelain", url, *refspecs, cwd=local)
        assert proc.returncode == 0, stderr_of(proc)

    push(f"{c1}:refs/heads/main", f"{c1}:refs/heads/feature")
    assert gitrepo.refs(dst) == {"refs/heads/main": c1, "refs/heads/feature": c1}
    push(f"{c2}:refs/heads/main")
    assert gitrepo.refs(dst)["refs/heads/main"] == c2
    push(f"+{c3}:refs/heads/main", ":refs/heads/feature")
    assert gitrepo.refs(dst) == {"refs/heads/main": c3}
    assert not gitrepo.is_ancestor(dst, c2, c3)
    pushes = server.rpc_requests("git-receive-pack")
    assert len(pushes) == 3 and all(r.status == 200 for r in pushes)


def test_large_push_uses_chunked_encoding(server: GitHTTPServer, tmp_path: Path) -> None:
    dst = server.create_bare("dst.git")
    local = gitrepo.init_bare(tmp_path / "local.git")
    size = 300_000
    big = gitrepo.commit(local, files={"big.bin": incompressible(size)}, message="big")
    proc = client("-c", "http.postBuffer=1024", "push", server.repo_url("dst.git"), "main", cwd=local)
    assert proc.returncode == 0, stderr_of(proc)
    assert gitrepo.refs(dst) == {"refs/heads/main": big}
    chunked = [
        r for r in server.rpc_requests("git-receive-pack") if r.header("Transfer-Encoding") == "chunked"
    ]
    assert chunked and chunked[-1].request_bytes > size
    assert server.bytes_received("git-receive-pack") > size


def test_pre_receive_hook_rejects_push(server: GitHTTPServer, tmp_path: Path) -> None:
    dst = server.create_bare("dst.git")
    server.install_hook("dst.git", "pre-receive", "echo 'rejected by policy: read-only' >&2\nexit 1\n")
    local = gitrepo.init_bare(tmp_path / "local.git")
    gitrepo.commit(local, files={"f": "1"})
    proc = client("push", server.repo_url("dst.git"), "main", cwd=local)
    assert proc.returncode != 0
    err = stderr_of(proc)
    assert "remote: rejected by policy: read-only" in err
    assert "pre-receive hook declined" in err
    assert gitrepo.refs(dst) == {}


# -- failure injection ------------------------------------------------------------------


def test_fail_next(server: GitHTTPServer, tmp_path: Path) -> None:
    make_source(server)
    url = server.repo_url("src.git")
    server.fail_next(502)
    proc = client("ls-remote", url)
    assert proc.returncode != 0
    assert "502" in stderr_of(proc)
    assert client("ls-remote", url).returncode == 0

    server.fail_next(500, count=2)
    for _ in range(2):
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"{url}/info/refs?service=git-upload-pack", timeout=5)
        assert info.value.code == 500
        info.value.close()
    with urllib.request.urlopen(f"{url}/info/refs?service=git-upload-pack", timeout=5) as resp:
        assert resp.status == 200
    assert [r.kind for r in server.requests[-3:]] == ["injected", "injected", "git"]

    # only pushes fail; fetches are unaffected and the rule is used up after one request
    dst = server.create_bare("dst.git")
    local = gitrepo.init_bare(tmp_path / "local.git")
    gitrepo.commit(local, files={"f": "1"})
    server.fail_next(403, path_contains="git-receive-pack")
    assert client("ls-remote", url).returncode == 0
    proc = client("push", server.repo_url("dst.git"), "main", cwd=local)
    assert proc.returncode != 0 and "403" in stderr_of(proc)
    assert gitrepo.refs(dst) == {}
    proc = client("push", server.repo_url("dst.git"), "main", cwd=local)
    assert proc.returncode == 0, stderr_of(proc)


def test_stall(server: GitHTTPServer) -> None:
    make_source(server)
    server.stall_seconds = 0.4
    start = time.monotonic()
    proc = client("-c", "protocol.version=0", "ls-remote", server.repo_url("src.git"))
    assert proc.returncode == 0, stderr_of(proc)
    assert time.monotonic() - start >= 0.4

    server.stall_seconds = 2.0
    with pytest.raises((TimeoutError, urllib.error.URLError)):
        urllib.request.urlopen(f"{server.url}/not-git", timeout=0.2)
    server.stall_seconds = 0


def test_close_mid_response(server: GitHTTPServer, tmp_path: Path) -> None:
    src = server.create_bare("src.git")
    gitrepo.commit(src, files={"big.bin": incompressible(200_000)})
    server.close_mid_response_after_bytes = 1000
    server.close_mid_response_path_contains = "/git-upload-pack"
    proc = client("clone", "--mirror", server.repo_url("src.git"), str(tmp_path / "c1.git"))
    assert proc.returncode != 0
    cut = server.rpc_requests("git-upload-pack")[-1]
    assert cut.aborted and cut.response_bytes == 1000
    # the advertisement was not cut
    assert not server.requests_matching(path_contains="info/refs")[0].aborted

    # raw HTTP view: the chunked body ends early
    server.close_mid_response_path_contains = None
    server.close_mid_response_after_bytes = 10
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request("GET", "/src.git/info/refs?service=git-upload-pack")
    resp = conn.getresponse()
    assert resp.status == 200
    with pytest.raises(http.client.IncompleteRead):
        resp.read()
    conn.close()

    server.close_mid_response_after_bytes = None
    proc = client("clone", "--mirror", server.repo_url("src.git"), str(tmp_path / "c2.git"))
    assert proc.returncode == 0, stderr_of(proc)


# -- repository builders ----------------------------------------------------------------


def test_gitrepo_builders(tmp_path: Path) -> None:
    repo = gitrepo.init_bare(tmp_path / "r.git")
    c1 = gitrepo.commit(repo, files={"a": "1", "d/b": b"2"}, message="c1")
    c2 = gitrepo.commit(repo, files={"a": None, "d/c": "3"}, message="c2")
    assert gitrepo.git(repo, "ls-tree", "-r", "--name-only", c2).splitlines() == ["d/b", "d/c"]
    assert gitrepo.git(repo, "rev-parse", f"{c2}^") == c1
    assert gitrepo.is_ancestor(repo, c1, c2) and not gitrepo.is_ancestor(repo, c2, c1)
    root = gitrepo.commit(repo, ref="refs/heads/orphan", message="orphan")
    assert gitrepo.git(repo, "rev-list", "--parents", "-n1", root) == root

    t1 = gitrepo.tag(repo, "v1", c1, annotated=True, message="one")
    t2 = gitrepo.tag(repo, "v2", c2)
    assert gitrepo.git(repo, "cat-file", "-t", t1) == "tag"
    assert gitrepo.git(repo, "rev-parse", "v1^{commit}") == c1
    assert t2 == c2
    assert gitrepo.refs(repo) == {
        "refs/heads/main": c2,
        "refs/heads/orphan": root,
        "refs/tags/v1": t1,
        "refs/tags/v2": c2,
    }
    gitrepo.delete_ref(repo, "refs/heads/orphan")
    gitrepo.set_head(repo, "v-branch")
    assert gitrepo.head(repo) == "refs/heads/v-branch"
    gitrepo.set_ref(repo, "refs/heads/v-branch", c1)
    assert gitrepo.git(repo, "fsck", "--strict", "--no-dangling") == ""

    # deterministic: the same steps in another repository give the same ids
    other = gitrepo.init_bare(tmp_path / "other.git")
    assert gitrepo.commit(other, files={"a": "1", "d/b": b"2"}, message="c1") == c1

    bundle = tmp_path / "r.bundle"
    gitrepo.git(repo, "bundle", "create", str(bundle), "--all")
    mirror = gitrepo.clone_bundle_bare(bundle, tmp_path / "mirror.git")
    assert gitrepo.refs(mirror) == gitrepo.refs(repo)
    assert gitrepo.git(mirror, "remote") == ""
    with pytest.raises(gitrepo.GitError, match="update-ref"):
        gitrepo.set_ref(repo, "refs/heads/x", "0" * 39 + "1")
