"""Git LFS in the service: the mirror's `lfs` field (API model and CLI), separate LFS secrets, and the
worker copying LFS objects with the counts and GitLab's error in the status and run records. Real git
servers with giftless, real git-lfs, moto in server mode."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from gitmirror_dev.gitserver import GitHTTPServer
from gitmirror_dev.lambdas import QueuePoller, load_function
from gitmirror_dev.stack import local_stack
from tests.conftest import CANARIES, SOURCE_TOKEN, SOURCE_USER, TARGET_TOKEN, TARGET_USER, AwsEnv
from tests.integration.test_cli_service import add_args, cli, ok_json
from tests.integration.test_worker import queue_job
from tests.support import gitrepo as g
from tests.support.lfs import LfsWork, clone_with_lfs, payload, sha256, stored_objects
from tests.support.service import add_mirror, all_items, store

SRC, DST = "org/src.git", "org/dst.git"


@pytest.fixture
def servers(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[GitHTTPServer, GitHTTPServer, LfsWork]]:
    target_lfs = getattr(request, "param", True)
    with (
        GitHTTPServer(tmp_path / "srv-src", SOURCE_USER, SOURCE_TOKEN, lfs=True) as source,
        GitHTTPServer(tmp_path / "srv-dst", TARGET_USER, TARGET_TOKEN, lfs=target_lfs) as target,
    ):
        source.create_bare(SRC)
        target.create_bare(DST)
        yield source, target, LfsWork.create(tmp_path / "work", source, SRC)


def run_worker(aws: AwsEnv, mirror_id: str) -> None:
    queue_job(aws, mirror_id)
    assert QueuePoller(load_function("worker"), aws.queue_url).drain() == 1


def test_worker_on_the_local_stack_copies_lfs_objects(tmp_path: Path) -> None:
    with local_stack(sample="generated", lfs=True, prefix=f"lfs-{uuid.uuid4().hex[:8]}") as stack:
        work = LfsWork.clone(tmp_path / "work", stack.source, "upstream.git")
        files = {"assets/logo.bin": payload(300_000, "logo"), "data.bin": payload(2_000_000, "data")}
        work.commit(files, "add LFS files")
        work.push("HEAD:main")
        mirror = stack.register_mirror()
        status, _body = stack.send_github_push()
        assert status == 202
        assert stack.poller.drain() >= 1

        after = stack.store.get(mirror.id)
        assert after is not None and after.result == "success", after.last_error
        assert (after.lfs_objects, after.lfs_bytes, after.lfs_error) == (
            2,
            sum(map(len, files.values())),
            None,
        )
        runs = stack.store.list_runs(mirror.id)
        assert runs[0].lfs_objects == 2 and runs[0].lfs_bytes == after.lfs_bytes and runs[0].lfs_error is None
        assert set(stored_objects(stack.target, "downstream.git")) == {sha256(v) for v in files.values()}
        clone = clone_with_lfs(stack.target, "downstream.git", tmp_path / "clone")
        for name, data in files.items():
            assert (clone / name).read_bytes() == data


@pytest.mark.parametrize("servers", [False], indirect=True)
def test_worker_target_without_lfs_is_partial_with_gitlabs_message(
    aws: AwsEnv, servers: tuple[GitHTTPServer, GitHTTPServer, LfsWork]
) -> None:
    source, target, work = servers
    work.commit({"a.bin": payload(5000, "a")}, "one")
    work.push("main")
    mirror = add_mirror(aws, source.repo_url(SRC), target.repo_url(DST))
    run_worker(aws, mirror.id)
    after = store().get(mirror.id)
    assert after is not None and after.result == "partial" and after.update_status == "failed"
    assert after.last_error is not None and after.last_error.startswith("Error synchronizing LFS files:\n\n")
    assert "the target has no Git LFS server" in after.last_error
    assert after.lfs_objects == 0 and after.lfs_error and "1 objects were not mirrored" in after.lfs_error
    run = store().list_runs(mirror.id)[0]
    assert run.lfs_error == after.lfs_error and run.error == after.last_error
    assert g.refs(target.repo_path(DST)) == g.refs(source.repo_path(SRC))  # the refs were still pushed
    assert aws.queue_messages() == []  # partial: not retried
    dumped = json.dumps(all_items(aws.env["MIRRORS_TABLE"]) + all_items(aws.env["RUNS_TABLE"]), default=str)
    assert not any(canary in dumped for canary in CANARIES)


def test_separate_lfs_secret_is_the_one_sent_to_the_lfs_server(
    aws: AwsEnv, servers: tuple[GitHTTPServer, GitHTTPServer, LfsWork]
) -> None:
    source, target, work = servers
    work.commit({"a.bin": payload(5000, "a")}, "one")
    work.push("main")
    aws.put_secret(
        "gitmirror/lfs/wrong", json.dumps({"username": TARGET_USER, "token": "canary-LFS-wrong-77"})
    )
    mirror = add_mirror(aws, source.repo_url(SRC), target.repo_url(DST))
    store().update_settings(mirror.id, {"lfs_target_secret": "gitmirror/lfs/wrong"})
    run_worker(aws, mirror.id)
    after = store().get(mirror.id)
    assert after is not None and after.result == "failed"
    assert after.last_error and "LFS server" in after.last_error and "401" in after.last_error
    assert g.refs(target.repo_path(DST)) == {}  # nothing pushed before its LFS objects are there
    assert "canary-LFS-wrong-77" not in json.dumps(all_items(aws.env["MIRRORS_TABLE"]), default=str)

    aws.put_secret("gitmirror/lfs/right", json.dumps({"username": TARGET_USER, "token": TARGET_TOKEN}))
    store().update_settings(mirror.id, {"lfs_target_secret": "gitmirror/lfs/right"})
    run_worker(aws, mirror.id)
    fixed = store().get(mirror.id)
    assert fixed is not None and fixed.result == "success" and fixed.lfs_objects == 1


def test_mirror_without_lfs_copies_nothing(
    aws: AwsEnv, servers: tuple[GitHTTPServer, GitHTTPServer, LfsWork]
) -> None:
    source, target, work = servers
    work.commit({"a.bin": payload(5000, "a")}, "one")
    work.push("main")
    mirror = add_mirror(aws, source.repo_url(SRC), target.repo_url(DST))
    store().update_settings(mirror.id, {"lfs": False})
    run_worker(aws, mirror.id)
    after = store().get(mirror.id)
    assert after is not None and after.result == "success" and after.lfs_objects == 0
    assert stored_objects(target, DST) == {}
    assert g.refs(target.repo_path(DST)) == g.refs(source.repo_path(SRC))


def test_cli_mirrors_add_and_update_lfs_flags(aws: AwsEnv) -> None:
    for name in ("target", "webhook", "lfs"):  # the secrets the mirrors name must exist
        aws.put_secret(f"gitmirror/app/{name}", "x")
    added = ok_json(*add_args("with-lfs"))
    assert added["lfs"] is True and added["lfs_source_secret"] is None and added["lfs_error"] is None
    off = ok_json(*add_args("no-lfs", "--no-lfs", "--lfs-target-secret", "gitmirror/app/lfs"))
    assert off["lfs"] is False and off["lfs_target_secret"] == "gitmirror/app/lfs"
    assert store().get("no-lfs") is not None and store().get("no-lfs").lfs is False  # type: ignore[union-attr]
    assert ok_json("mirrors", "update", "no-lfs", "--lfs")["lfs"] is True
    assert ok_json("mirrors", "update", "with-lfs", "--no-lfs")["lfs"] is False
    assert store().get("with-lfs").lfs is False  # type: ignore[union-attr]
    # an LFS secret is checked like the others: it must exist
    missing = cli(*add_args("lfs-missing", "--lfs-source-secret", "gitmirror/app/absent"))
    assert missing.returncode == 2 and "--lfs-source-secret" in missing.stderr
    assert store().get("lfs-missing") is None


def test_api_lfs_field(aws: AwsEnv) -> None:
    from tests.integration.test_api import Api, create, rejected, spec

    for name in ("target", "webhook", "lfs-source"):  # POST /mirrors checks that named secrets exist
        aws.put_secret(f"gitmirror/acme/{name}", '{"username": "u", "token": "t-0123456789"}')
    api = Api()
    assert create(api, spec("default-lfs"))["lfs"] is True
    reply = create(
        api, spec("lfs-off", source_repo_id="2", lfs=False, lfs_source_secret="gitmirror/acme/lfs-source")
    )
    assert reply["lfs"] is False and reply["lfs_source_secret"] == "gitmirror/acme/lfs-source"
    assert reply["lfs_objects"] == 0 and reply["lfs_bytes"] == 0 and reply["lfs_error"] is None
    status, changed, _ = api.call("PUT", "/mirrors/lfs-off", {"lfs": True})
    assert status == 200 and changed["lfs"] is True
    assert store().get("lfs-off").lfs is True  # type: ignore[union-attr]
    rejected(api, aws, "PUT", "/mirrors/lfs-off", {"lfs": None}, says="lfs must be true or false")
    rejected(api, aws, "PUT", "/mirrors/lfs-off", {"lfs": "maybe"})
    rejected(api, aws, "PUT", "/mirrors/lfs-off", {"lfs_target_secret": "../x"}, says="secret names")


def test_objects_left_behind_are_copied_by_the_next_run(
    aws: AwsEnv, servers: tuple[GitHTTPServer, GitHTTPServer, LfsWork]
) -> None:
    """The target had no LFS server during one run (batch 404); the next run, once it has one, copies
    the old objects too, not only the new commits'."""
    source, target, work = servers
    old, new = payload(5000, "old"), payload(7000, "new")
    work.commit({"old.bin": old}, "old")
    work.push("main")
    mirror = add_mirror(aws, source.repo_url(SRC), target.repo_url(DST))
    target.fail_next(404, count=1, path_contains="/info/lfs/objects/batch")
    run_worker(aws, mirror.id)
    first = store().get(mirror.id)
    assert first is not None and first.result == "partial" and first.lfs_error
    assert stored_objects(target, DST) == {}

    work.commit({"new.bin": new}, "new")
    work.push("main")
    run_worker(aws, mirror.id)
    second = store().get(mirror.id)
    assert second is not None and second.result == "success", second.last_error
    assert (second.lfs_objects, second.lfs_bytes, second.lfs_error) == (2, len(old) + len(new), None)
    assert set(stored_objects(target, DST)) == {sha256(old), sha256(new)}
    assert store().list_runs(mirror.id)[0].transfer == "full"

    work.commit({"newer.bin": payload(100, "newer")}, "newer")
    work.push("main")
    run_worker(aws, mirror.id)
    third = store().list_runs(mirror.id)[0]
    assert third.lfs_objects == 1 and third.transfer != "full"  # back to incremental
