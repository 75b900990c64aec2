"""Git LFS objects mirrored with the refs that need them, against real servers: git http-backend with
giftless mounted under each repository's info/lfs/, the real git-lfs client writing the source's history
and reading the target's, and `gitmirror sync` as a user runs it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from dulwich.pack import REF_DELTA, create_delta

from gitmirror_dev.gitserver import GitHTTPServer
from tests.conftest import CANARIES, SOURCE_TOKEN, SOURCE_USER, TARGET_TOKEN, TARGET_USER
from tests.integration.test_cli_sync import GITMIRROR
from tests.support import gitrepo as g
from tests.support.lfs import (
    LfsWork,
    clone_with_lfs,
    lfs_requests,
    payload,
    remove_object,
    sha256,
    stored_objects,
)
from tests.support.packs import pack_of

SRC, DST = "org/src.git", "org/dst.git"
MIB = 1024 * 1024


@dataclass
class LfsServers:
    source: GitHTTPServer
    target: GitHTTPServer
    work: LfsWork

    @property
    def source_url(self) -> str:
        return self.source.repo_url(SRC)

    @property
    def target_url(self) -> str:
        return self.target.repo_url(DST)


def _servers(tmp_path: Path, *, target_lfs: bool = True, source_v2: bool = True) -> Iterator[LfsServers]:
    with (
        GitHTTPServer(
            tmp_path / "srv-src", SOURCE_USER, SOURCE_TOKEN, lfs=True, protocol_v2=source_v2
        ) as source,
        GitHTTPServer(tmp_path / "srv-dst", TARGET_USER, TARGET_TOKEN, lfs=target_lfs) as target,
    ):
        source.create_bare(SRC)
        target.create_bare(DST)
        yield LfsServers(source, target, LfsWork.create(tmp_path / "work", source, SRC))


@pytest.fixture
def lfs_servers(tmp_path: Path) -> Iterator[LfsServers]:
    yield from _servers(tmp_path)


@pytest.fixture
def v0_source(tmp_path: Path) -> Iterator[LfsServers]:
    yield from _servers(tmp_path, source_v2=False)


@pytest.fixture
def no_lfs_target(tmp_path: Path) -> Iterator[LfsServers]:
    yield from _servers(tmp_path, target_lfs=False)


def sync(servers: LfsServers, *extra: str, env: dict[str, str]) -> tuple[int, dict[str, object]]:
    proc = subprocess.run(
        [GITMIRROR, "sync", servers.source_url, servers.target_url, "--json", *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    for canary in CANARIES:
        assert canary not in proc.stdout and canary not in proc.stderr
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def lfs(out: dict[str, object]) -> dict[str, object]:
    value = out["lfs"]
    assert isinstance(value, dict) and set(value) == {"objects", "bytes", "error"}
    return value


def test_cold_mirror_copies_every_object_and_a_clone_of_the_target_gets_the_contents(
    lfs_servers: LfsServers, sync_env: dict[str, str], tmp_path: Path
) -> None:
    files = {
        "big.bin": payload(30 * MIB, "big"),
        "small.bin": payload(1000, "small"),
        "docs/model.bin": payload(70_000, "model"),
    }
    work = lfs_servers.work
    work.commit({"README": b"plain file\n", "big.bin": files["big.bin"]}, "big")
    work.commit({k: v for k, v in files.items() if k != "big.bin"}, "more")
    work.push("main")
    assert set(stored_objects(lfs_servers.source, SRC)) == {sha256(v) for v in files.values()}

    code, out = sync(lfs_servers, env=sync_env)
    assert code == 0, out
    assert out["status"] == "success"
    assert lfs(out) == {"objects": 3, "bytes": sum(len(v) for v in files.values()), "error": None}
    assert stored_objects(lfs_servers.target, DST) == {sha256(v): len(v) for v in files.values()}
    assert g.refs(lfs_servers.target.repo_path(DST)) == g.refs(lfs_servers.source.repo_path(SRC))

    clone = clone_with_lfs(lfs_servers.target, DST, tmp_path / "clone")
    for name, data in files.items():
        assert (clone / name).read_bytes() == data
    assert (clone / "README").read_bytes() == b"plain file\n"

    # nothing new: no LFS request at all, nothing copied
    lfs_servers.target.clear_requests()
    code, out = sync(lfs_servers, env=sync_env)
    assert code == 0 and lfs(out) == {"objects": 0, "bytes": 0, "error": None}
    assert lfs_requests(lfs_servers.target) == []


def test_a_first_mirror_streaming_its_pack_copies_the_lfs_objects_before_any_ref(
    lfs_servers: LfsServers, sync_env: dict[str, str]
) -> None:
    """Into an empty target the pack is pushed while it downloads; when the pointer scan then finds LFS
    objects, that push is stopped short of the pack's checksum and the pack goes again after them."""
    work = lfs_servers.work
    lfs_file = payload(50_000, "lfs")
    work.commit(
        {"noise.dat": os.urandom(3 * MIB), "model.bin": lfs_file}, "a pack larger than the post buffer"
    )
    work.push("main")
    code, out = sync(lfs_servers, env=sync_env)
    assert code == 0, out
    assert lfs(out) == {"objects": 1, "bytes": len(lfs_file), "error": None}
    assert g.refs(lfs_servers.target.repo_path(DST)) == g.refs(lfs_servers.source.repo_path(SRC))
    requests = lfs_servers.target.requests
    pushes = [i for i, r in enumerate(requests) if r.is_rpc and r.service == "git-receive-pack"]
    uploads = [i for i, r in enumerate(requests) if r.method == "PUT" and "/info/lfs" in r.path]
    assert len(pushes) == 2 and len(uploads) == 1, [f"{r.method} {r.target}" for r in requests]
    assert pushes[0] < uploads[0] < pushes[1]  # the streamed push began, the object went, then the refs
    assert requests[pushes[0]].request_bytes < requests[pushes[1]].request_bytes  # stopped short


def _store_as_delta(repo: Path, blob: str, base: str) -> None:
    """Keep `blob` in `repo` only as a ref-delta onto `base` (in a pack of its own, completed by git),
    so that a thin pack made from it sends that delta as it is (git reuses stored deltas)."""
    data = g.git_bytes(repo, "cat-file", "blob", blob)
    delta = b"".join(create_delta(g.git_bytes(repo, "cat-file", "blob", base), data))
    pack = pack_of([(REF_DELTA, delta, bytes.fromhex(base))])
    g.run_git("-C", str(repo), "index-pack", "--stdin", "--fix-thin", input=pack)
    g.git(repo, "prune-packed")  # the loose copy goes: the delta is the only one left


def _pointer_stored_as_a_delta(servers: LfsServers, sync_env: dict[str, str]) -> tuple[str, bytes]:
    """A mirrored history, then a new version of an LFS file whose pointer the source stores only as a
    delta onto the old pointer: (old pointer id, new contents)."""
    work = servers.work
    old, new = payload(20_000, "v1"), payload(20_001, "v2")
    work.commit({"model.bin": old, "README": b"x\n"}, "v1")
    work.push("main")
    code, out = sync(servers, env=sync_env)
    assert code == 0 and lfs(out)["objects"] == 1, out
    work.commit({"model.bin": new}, "v2")
    work.push("main")
    src = servers.source.repo_path(SRC)
    old_pointer, new_pointer = (g.git(src, "rev-parse", f"main{rev}:model.bin").strip() for rev in ("~1", ""))
    _store_as_delta(src, new_pointer, old_pointer)
    servers.source.clear_requests()
    servers.source.record_body_bytes = 64 * 1024
    return old_pointer, new


def _synced_the_new_object(servers: LfsServers, sync_env: dict[str, str], new: bytes) -> list[bytes]:
    """Sync: the new object is copied and the refs match. Returns the source's fetch request bodies."""
    code, out = sync(servers, env=sync_env)
    assert code == 0, out
    assert lfs(out) == {"objects": 1, "bytes": len(new), "error": None}
    assert sha256(new) in stored_objects(servers.target, DST)
    assert g.refs(servers.target.repo_path(DST)) == g.refs(servers.source.repo_path(SRC))
    return [
        r.body
        for r in servers.source.rpc_requests("git-upload-pack")
        if b"command=fetch" in r.body or r.body[4:9] == b"want "
    ]


def test_a_thin_pack_s_pointer_stored_as_a_delta_is_read_onto_its_base_fetched_by_id(
    lfs_servers: LfsServers, sync_env: dict[str, str]
) -> None:
    old_pointer, new = _pointer_stored_as_a_delta(lfs_servers, sync_env)
    fetches = _synced_the_new_object(lfs_servers, sync_env, new)
    # the delta's pack (thin: the old pointer left out), then the old pointer alone, by its id
    assert len(fetches) == 2, fetches
    assert b"thin-pack" in fetches[0] and f"want {old_pointer}".encode() in fetches[1]


def test_a_protocol_v0_source_sends_the_base_by_id_too(
    v0_source: LfsServers, sync_env: dict[str, str]
) -> None:
    """Over stateless HTTP, upload-pack v0 checks that a wanted object is reachable from its tips (not
    that it is a tip): the old pointer, reachable, comes by id as in v2."""
    old_pointer, new = _pointer_stored_as_a_delta(v0_source, sync_env)
    fetches = _synced_the_new_object(v0_source, sync_env, new)
    assert len(fetches) == 2, fetches
    assert b"thin-pack" in fetches[0] and fetches[1][4:].startswith(b"want " + old_pointer.encode())


def test_incremental_sync_copies_exactly_the_new_object(
    lfs_servers: LfsServers, sync_env: dict[str, str], tmp_path: Path
) -> None:
    work = lfs_servers.work
    work.commit({f"f{i}.bin": payload(5000 + i, f"old{i}") for i in range(4)}, "four objects")
    work.push("main")
    code, out = sync(lfs_servers, env=sync_env)
    assert code == 0 and lfs(out)["objects"] == 4

    new = payload(123_456, "new")
    work.commit({"new.bin": new, "f0.bin": payload(5000, "old0")}, "one new object")
    work.push("main")
    code, out = sync(lfs_servers, env=sync_env)
    assert code == 0, out
    assert lfs(out) == {"objects": 1, "bytes": len(new), "error": None}
    assert sha256(new) in stored_objects(lfs_servers.target, DST)
    clone = clone_with_lfs(lfs_servers.target, DST, tmp_path / "clone")
    assert (clone / "new.bin").read_bytes() == new


def test_target_without_lfs_server_still_gets_the_refs_and_the_run_is_partial(
    no_lfs_target: LfsServers, sync_env: dict[str, str]
) -> None:
    work = no_lfs_target.work
    work.commit({"a.bin": payload(2000, "a"), "b.bin": payload(3000, "b")}, "two")
    work.push("main")
    code, out = sync(no_lfs_target, env=sync_env)
    assert code == 3, out
    assert out["status"] == "partial" and out["error"] is None
    result = lfs(out)
    assert result["objects"] == 0 and result["bytes"] == 0
    assert "the target has no Git LFS server" in str(result["error"])
    assert "2 objects were not mirrored" in str(result["error"])
    assert g.refs(no_lfs_target.target.repo_path(DST)) == g.refs(no_lfs_target.source.repo_path(SRC))


def test_object_missing_on_source_is_named_and_the_others_are_copied(
    lfs_servers: LfsServers, sync_env: dict[str, str]
) -> None:
    work = lfs_servers.work
    kept, lost = payload(4000, "kept"), payload(6000, "lost")
    work.commit({"kept.bin": kept, "lost.bin": lost}, "two")
    work.push("main")
    remove_object(lfs_servers.source, SRC, sha256(lost))

    code, out = sync(lfs_servers, env=sync_env)
    assert code == 3, out
    assert out["status"] == "partial"
    result = lfs(out)
    assert result["objects"] == 1 and result["bytes"] == len(kept)
    assert f"LFS object {sha256(lost)} is missing on the source" in str(result["error"])
    assert set(stored_objects(lfs_servers.target, DST)) == {sha256(kept)}
    assert g.refs(lfs_servers.target.repo_path(DST)) == g.refs(lfs_servers.source.repo_path(SRC))


def test_every_object_missing_on_source(lfs_servers: LfsServers, sync_env: dict[str, str]) -> None:
    """giftless answers the whole batch 404 when it has none of the objects: still "missing"."""
    work = lfs_servers.work
    lost = payload(6000, "only")
    work.commit({"only.bin": lost}, "one")
    work.push("main")
    remove_object(lfs_servers.source, SRC, sha256(lost))
    code, out = sync(lfs_servers, env=sync_env)
    assert code == 3
    assert lfs(out) == {
        "objects": 0,
        "bytes": 0,
        "error": f"LFS object {sha256(lost)} is missing on the source",
    }


def test_no_lfs_pushes_the_pointers_only(lfs_servers: LfsServers, sync_env: dict[str, str]) -> None:
    work = lfs_servers.work
    work.commit({"a.bin": payload(2000, "a")}, "one")
    work.push("main")
    lfs_servers.source.clear_requests()
    code, out = sync(lfs_servers, "--no-lfs", env=sync_env)
    assert code == 0, out
    assert lfs(out) == {"objects": 0, "bytes": 0, "error": None}
    assert lfs_requests(lfs_servers.source) == [] and lfs_requests(lfs_servers.target) == []
    assert stored_objects(lfs_servers.target, DST) == {}
    assert g.refs(lfs_servers.target.repo_path(DST)) == g.refs(lfs_servers.source.repo_path(SRC))


def test_lfs_server_down_fails_retryably_before_any_ref_is_pushed(
    lfs_servers: LfsServers, sync_env: dict[str, str]
) -> None:
    work = lfs_servers.work
    work.commit({"a.bin": payload(2000, "a")}, "one")
    work.push("main")
    lfs_servers.target.fail_next(503, count=10, path_contains="/info/lfs/objects/batch")
    code, out = sync(lfs_servers, env=sync_env)
    assert code == 1, out
    assert out["status"] == "failed" and "503" in str(out["error"])
    assert g.refs(lfs_servers.target.repo_path(DST)) == {}
    lfs_servers.target.clear_failures()
    code, out = sync(lfs_servers, env=sync_env)
    assert code == 0 and lfs(out)["objects"] == 1


def test_codecommit_target_is_partial_without_asking_for_lfs(
    lfs_servers: LfsServers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CodeCommit URL (served here by the loopback git server: the name resolves to it)."""
    from gitmirror.mirror.credentials import StaticCredentials
    from gitmirror.mirror.engine import sync_mirror
    from gitmirror.mirror.transport import Remote
    from gitmirror.mirror.urls import parse_remote

    host = "git-codecommit.eu-west-1.amazonaws.com"
    real = socket.getaddrinfo

    def resolve(name: object, *args: object, **kwargs: object) -> object:
        return real("127.0.0.1" if name == host else name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    work = lfs_servers.work
    work.commit({"a.bin": payload(2000, "a"), "b.bin": payload(2001, "b"), "c.bin": payload(2002, "c")}, "x")
    work.push("main")
    target_url = parse_remote(f"http://{host}:{lfs_servers.target.port}/{DST}")
    result = sync_mirror(
        Remote(parse_remote(lfs_servers.source_url), StaticCredentials(SOURCE_USER, SOURCE_TOKEN)),
        Remote(target_url, StaticCredentials(TARGET_USER, TARGET_TOKEN)),
    )
    assert result.status.value == "partial" and not result.retryable
    assert result.lfs.error == "AWS CodeCommit has no Git LFS; 3 objects were not mirrored"
    assert result.lfs.objects == 0
    assert lfs_requests(lfs_servers.target) == []
    assert g.refs(lfs_servers.target.repo_path(DST)) == g.refs(lfs_servers.source.repo_path(SRC))


def test_many_objects_go_in_batches_of_100(lfs_servers: LfsServers, sync_env: dict[str, str]) -> None:
    work = lfs_servers.work
    files = {f"many/{i:03d}.bin": payload(100 + i, f"many{i}") for i in range(210)}
    work.commit(files, "210 objects")
    work.push("main")
    lfs_servers.source.clear_requests()
    code, out = sync(lfs_servers, env=sync_env)
    assert code == 0, out
    assert lfs(out) == {"objects": 210, "bytes": sum(map(len, files.values())), "error": None}
    batches = [r for r in lfs_servers.target.requests_matching(path_contains="/objects/batch")]
    assert len(batches) == 3  # 100 + 100 + 10 objects asked for
    assert len(lfs_servers.source.requests_matching(path_contains="/objects/batch")) == 3
    # one PUT per object (another only when an upload failed mid-way and was streamed again)
    puts = {r.path.rsplit("/", 1)[1] for r in lfs_servers.target.requests_matching(method="PUT")}
    assert puts == {sha256(v) for v in files.values()}
    assert set(stored_objects(lfs_servers.target, DST)) == {sha256(v) for v in files.values()}


def test_a_corrupt_object_on_the_source_never_completes_on_the_target(
    lfs_servers: LfsServers, sync_env: dict[str, str]
) -> None:
    work = lfs_servers.work
    good, bad = payload(300_000, "good"), payload(400_000, "bad")
    work.commit({"good.bin": good, "bad.bin": bad}, "two")
    work.push("main")
    assert lfs_servers.source.lfs is not None
    stored = lfs_servers.source.lfs.object_path("org", "src", sha256(bad))
    stored.write_bytes(b"X" + bad[1:])  # same size, other bytes: giftless serves it as it is

    code, out = sync(lfs_servers, env=sync_env)
    assert code == 3, out
    result = lfs(out)
    assert result["objects"] == 1 and result["bytes"] == len(good)
    assert f"LFS object {sha256(bad)} was not copied" in str(result["error"])
    assert "sha256" in str(result["error"])
    on_target = stored_objects(lfs_servers.target, DST)
    assert on_target[sha256(good)] == len(good)
    assert on_target.get(sha256(bad), 0) < len(bad)  # the upload was cut before its last chunk


def test_a_dry_run_copies_no_lfs_object(lfs_servers: LfsServers, sync_env: dict[str, str]) -> None:
    work = lfs_servers.work
    work.commit({"a.bin": payload(2000, "a")}, "one")
    work.push("main")
    lfs_servers.source.clear_requests()
    code, out = sync(lfs_servers, "--dry-run", env=sync_env)
    assert code == 0, out
    assert out["dry_run"] is True and lfs(out) == {"objects": 0, "bytes": 0, "error": None}
    assert lfs_requests(lfs_servers.source) == [] and lfs_requests(lfs_servers.target) == []
    assert g.refs(lfs_servers.target.repo_path(DST)) == {}


def test_progress_reports_the_lfs_copy(lfs_servers: LfsServers) -> None:
    """The progress callback (the CLI's terminal display) names the LFS phase and the objects copied."""
    from gitmirror.mirror.credentials import StaticCredentials
    from gitmirror.mirror.engine import sync_mirror
    from gitmirror.mirror.transport import Remote
    from gitmirror.mirror.urls import parse_remote
    from gitmirror.values import SyncProgress
    from gitmirror_cli.progress import progress_line

    work = lfs_servers.work
    work.commit({"a.bin": payload(3000, "a"), "b.bin": payload(3001, "b")}, "two objects")
    work.push("main")
    seen: list[SyncProgress] = []
    result = sync_mirror(
        Remote(parse_remote(lfs_servers.source_url), StaticCredentials(SOURCE_USER, SOURCE_TOKEN)),
        Remote(parse_remote(lfs_servers.target_url), StaticCredentials(TARGET_USER, TARGET_TOKEN)),
        progress=seen.append,
    )
    assert result.status.value == "success" and result.lfs.objects == 2
    phases = [p.phase for p in seen]
    assert "copying LFS objects" in phases
    assert phases.index("copying LFS objects") < phases.index("pushing")
    assert seen[-1].phase == "done" and seen[-1].lfs_objects == 2
    assert progress_line(seen[-1], 0, 0, (0.0, 0.0)).endswith(", LFS objects 2")


def test_a_capped_mirror_copies_each_steps_objects_before_that_step_is_pushed(
    lfs_servers: LfsServers, sync_env: dict[str, str]
) -> None:
    """Under --max-push-bytes the history goes in several pushes, the next step downloading while the
    target takes the last one: every push finds the LFS objects its commits name on the target already."""
    work = lfs_servers.work
    files = [payload(5_000 + i, f"obj{i}") for i in range(6)]
    commits = [
        work.commit({f"noise{i}.dat": os.urandom(40_000), f"m{i}.bin": data}, f"step {i}")
        for i, data in enumerate(files)
    ]
    work.push("main")
    lfs_servers.target.record_body_bytes = 4096
    code, out = sync(lfs_servers, "--max-push-bytes", "100K", env=sync_env)
    assert code == 0, out
    assert lfs(out) == {"objects": len(files), "bytes": sum(map(len, files)), "error": None}
    assert stored_objects(lfs_servers.target, DST) == {sha256(d): len(d) for d in files}
    assert g.refs(lfs_servers.target.repo_path(DST)) == g.refs(lfs_servers.source.repo_path(SRC))
    requests = lfs_servers.target.requests
    pushed = [r for r in requests if r.is_rpc and r.service == "git-receive-pack"]
    assert len(pushed) >= 3, [f"{r.method} {r.target}" for r in requests]
    checked = 0
    for push in pushed:
        uploaded = {
            r.path.rsplit("/", 1)[-1] for r in requests if r.method == "PUT" and r.ended <= push.started
        }
        for i, commit in enumerate(commits):
            if f" {commit} refs/heads/main".encode() in push.body:  # main -> commit i: objects 0..i there
                assert {sha256(d) for d in files[: i + 1]} <= uploaded, i
                checked += 1
    assert checked >= 3
