"""The pass-through path moves only the delta; ancestry without blobs when the source allows filters."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from dulwich.pack import OFS_DELTA, REF_DELTA

from gitmirror.mirror.credentials import StaticCredentials
from gitmirror.mirror.engine import sync_mirror
from gitmirror.mirror.transport import Remote
from gitmirror.mirror.urls import parse_remote
from gitmirror.values import Action, MirrorOptions, RunStatus, SyncResult
from gitmirror_dev.gitserver import GitHTTPServer
from tests.conftest import SOURCE_TOKEN, SOURCE_USER, TARGET_TOKEN, TARGET_USER
from tests.support import gitrepo as g
from tests.support.packs import entry_kinds

MAIN = "refs/heads/main"
BIG = 3 * 1024 * 1024


def sync(
    source: GitHTTPServer,
    target: GitHTTPServer,
    mode: str = "incremental",
    options: MirrorOptions | None = None,
    batch_size: int = 1000,
) -> SyncResult:
    return sync_mirror(
        Remote(parse_remote(source.repo_url("src.git")), StaticCredentials(SOURCE_USER, SOURCE_TOKEN)),
        Remote(parse_remote(target.repo_url("dst.git")), StaticCredentials(TARGET_USER, TARGET_TOKEN)),
        options,
        mode=mode,
        batch_size=batch_size,
    )


def servers(tmp_path: Path, allow_filter: bool) -> tuple[GitHTTPServer, GitHTTPServer]:
    config = {"uploadpack.allowFilter": "true"} if allow_filter else {}
    source = GitHTTPServer(tmp_path / "s", SOURCE_USER, SOURCE_TOKEN, extra_config=config).start()
    target = GitHTTPServer(tmp_path / "t", TARGET_USER, TARGET_TOKEN).start()
    source.create_bare("src.git")
    target.create_bare("dst.git")
    return source, target


def big_history(repo: Path) -> str:
    base = g.commit(repo, MAIN, {"blob.bin": os.urandom(BIG)})
    for i in range(5):
        g.commit(repo, MAIN, {f"f{i}.txt": f"{i}\n"})
    return base


def test_incremental_sync_fetches_and_pushes_only_the_delta(tmp_path: Path) -> None:
    source, target = servers(tmp_path, allow_filter=True)
    try:
        src = source.repo_path("src.git")
        big_history(src)
        cold = sync(source, target)
        assert cold.status == RunStatus.SUCCESS and cold.stats.bytes_received > BIG
        g.commit(src, MAIN, {"small.txt": "a small change\n"})
        g.tag(src, "v2", MAIN, annotated=True)
        result = sync(source, target)
        assert result.status == RunStatus.SUCCESS
        assert result.stats.transfer == "incremental"
        assert {r.ref: r.action for r in result.refs} == {MAIN: Action.UPDATE, "refs/tags/v2": Action.CREATE}
        assert result.stats.bytes_received < 64 * 1024  # not the 3 MiB blob again
        assert result.stats.bytes_sent < 64 * 1024
        assert g.refs(target.repo_path("dst.git")) == g.refs(src)
        g.git(target.repo_path("dst.git"), "fsck", "--connectivity-only")
        # the full path downloads everything again for the same kind of change
        g.commit(src, MAIN, {"small2.txt": "another\n"})
        full = sync(source, target, mode="full")
        assert full.status == RunStatus.SUCCESS and full.stats.bytes_received > BIG
    finally:
        source.stop()
        target.stop()


def _merged_remote_only_branch(source: GitHTTPServer, target: GitHTTPServer) -> None:
    src, dst = source.repo_path("src.git"), target.repo_path("dst.git")
    base = big_history(src)
    assert sync(source, target).status == RunStatus.SUCCESS
    g.set_ref(dst, "refs/heads/old-release", base)  # merged into main long ago, gone upstream
    g.commit(src, MAIN, {"new.txt": "new\n"})


@pytest.mark.parametrize("allow_filter", [True, False])
def test_ancestry_question_answered_from_the_commit_graph(tmp_path: Path, allow_filter: bool) -> None:
    """A merged branch only on the target: deleting it needs history the delta lacks, the commits between
    it and main. With partial clone support those come as commits only; without it with their trees and
    blobs, still only the range (the 3 MiB blob below the branch never comes)."""
    source, target = servers(tmp_path, allow_filter=allow_filter)
    try:
        _merged_remote_only_branch(source, target)
        result = sync(source, target)
        assert result.status == RunStatus.SUCCESS
        assert {r.ref: r.action for r in result.refs} == {
            MAIN: Action.UPDATE,
            "refs/heads/old-release": Action.DELETE,
        }
        assert result.stats.transfer == "incremental+graph"
        assert result.stats.bytes_received < 256 * 1024
    finally:
        source.stop()
        target.stop()


def test_later_batches_reuse_delivered_objects_and_resend_when_the_target_dropped_them(
    tmp_path: Path,
) -> None:
    source, target = servers(tmp_path, allow_filter=True)
    try:
        src = source.repo_path("src.git")
        for i in range(4):  # four unrelated histories: each batch needs its own objects
            g.commit(src, f"refs/heads/b{i}", {f"f{i}.bin": os.urandom(20_000)}, parents=[])
        g.set_head(src, "b0")

        def sync_batches() -> SyncResult:
            return sync_mirror(
                Remote(
                    parse_remote(source.repo_url("src.git")), StaticCredentials(SOURCE_USER, SOURCE_TOKEN)
                ),
                Remote(
                    parse_remote(target.repo_url("dst.git")), StaticCredentials(TARGET_USER, TARGET_TOKEN)
                ),
                batch_size=1,
            )

        # a target that keeps only reachable objects after every push (as if it garbage-collected)
        target.install_hook(
            "dst.git", "post-receive", "#!/bin/sh\ngit repack -a -d -q && exec git prune --expire=now\n"
        )
        result = sync(source, target, batch_size=1)
        assert result.status == RunStatus.SUCCESS, result.error
        assert g.refs(target.repo_path("dst.git")) == g.refs(src)
        assert result.stats.pushes == 7  # 4 batches; 3 re-sent after "missing necessary objects"
        g.git(target.repo_path("dst.git"), "fsck", "--connectivity-only")
    finally:
        source.stop()
        target.stop()


def test_later_batches_send_no_objects_again(tmp_path: Path) -> None:
    source, target = servers(tmp_path, allow_filter=True)
    try:
        src = source.repo_path("src.git")
        for i in range(4):
            g.commit(src, f"refs/heads/b{i}", {f"f{i}.bin": os.urandom(200_000)}, parents=[])
        g.set_head(src, "b0")
        result = sync(source, target, batch_size=1)
        assert result.status == RunStatus.SUCCESS and result.stats.pushes == 4
        assert g.refs(target.repo_path("dst.git")) == g.refs(src)
        assert result.stats.bytes_sent < 1.2 * 800_000  # the pack went once, not four times
    finally:
        source.stop()
        target.stop()


@pytest.mark.parametrize("keep", [False, True])
def test_target_only_commits_are_settled_by_negotiation_not_by_a_graph_fetch(
    tmp_path: Path, keep: bool
) -> None:
    source, target = servers(tmp_path, allow_filter=True)
    try:
        src, dst = source.repo_path("src.git"), target.repo_path("dst.git")
        big_history(src)
        g.commit(src, "refs/heads/topic", {"t.txt": "topic\n"})
        assert sync(source, target).status == RunStatus.SUCCESS
        g.commit(dst, "refs/heads/topic", {"only-on-target.txt": "x\n"})  # unknown to the source
        g.commit(src, "refs/heads/topic", {"upstream.txt": "y\n"})
        result = sync(source, target, options=MirrorOptions(keep_divergent_refs=keep))
        expected = Action.SKIP_DIVERGENT if keep else Action.FORCE_UPDATE
        assert {r.ref: r.action for r in result.refs} == {"refs/heads/topic": expected}
        assert result.stats.transfer == "incremental"  # no commit-graph fetch was needed
        assert result.stats.bytes_received < 64 * 1024
    finally:
        source.stop()
        target.stop()


def test_request_budget_of_an_incremental_sync_and_of_a_noop(tmp_path: Path) -> None:
    """Source: one advertisement, one ls-refs, one fetch (+ the negotiation round, sent alongside the
    fetch). Target: receive-pack's advertisement to list, again to push, and the push."""
    source, target = servers(tmp_path, allow_filter=True)
    try:
        src = source.repo_path("src.git")
        big_history(src)
        assert sync(source, target).status == RunStatus.SUCCESS
        g.commit(src, MAIN, {"next.txt": "next\n"})
        source.clear_requests()
        target.clear_requests()
        result = sync(source, target)
        assert result.status == RunStatus.SUCCESS and result.stats.transfer == "incremental"
        assert [r.method for r in source.requests].count("GET") == 1
        assert 2 <= len(source.rpc_requests("git-upload-pack")) <= 3
        assert [(r.method, r.service) for r in target.requests] == [
            ("GET", "git-upload-pack"),
            ("POST", "git-upload-pack"),
            ("GET", "git-receive-pack"),
            ("POST", "git-receive-pack"),
        ]
        source.clear_requests()
        target.clear_requests()
        noop = sync(source, target)
        assert noop.status == RunStatus.SUCCESS and noop.refs == []
        assert [(r.method, r.service) for r in source.requests] == [
            ("GET", "git-upload-pack"),
            ("POST", "git-upload-pack"),
        ]
        assert [(r.method, r.service) for r in target.requests] == [
            ("GET", "git-upload-pack"),
            ("POST", "git-upload-pack"),
        ]
    finally:
        source.stop()
        target.stop()


def test_the_first_push_round_trip_is_made_while_the_pack_downloads(tmp_path: Path) -> None:
    """receive-pack's advertisement (the push's first request) is read while the source is still
    preparing and sending the pack (its pack-objects held 0.6 s by a hook), not after: into an empty
    target and into one with content. The requests are the same ones, and a second push in the same
    run (batches of one ref) reuses what the first left."""
    config = {"uploadpack.allowFilter": "true", "uploadpack.packObjectsHook": "sleep 0.6;"}
    source = GitHTTPServer(tmp_path / "s", SOURCE_USER, SOURCE_TOKEN, extra_config=config).start()
    target = GitHTTPServer(tmp_path / "t", TARGET_USER, TARGET_TOKEN).start()
    try:
        src = source.create_bare("src.git")
        dst = target.create_bare("dst.git")
        g.commit(src, MAIN, {"a.txt": "a\n"})
        g.commit(src, "refs/heads/other", {"b.txt": "b\n"}, parents=[])
        assert sync(source, target).status == RunStatus.SUCCESS
        fetch = source.rpc_requests("git-upload-pack")[-1]
        (advertisement,) = target.requests_matching(method="GET", service="git-receive-pack")
        assert advertisement.ended < fetch.ended
        g.commit(src, MAIN, {"a.txt": "a2\n"})
        g.commit(src, "refs/heads/other", {"b.txt": "b2\n"})
        source.clear_requests()
        target.clear_requests()
        result = sync(source, target, batch_size=1)
        assert result.status == RunStatus.SUCCESS and g.refs(dst) == g.refs(src)
        fetch = source.rpc_requests("git-upload-pack")[-1]
        assert fetch.ended - fetch.started >= 0.6
        advertisement = target.requests_matching(method="GET", service="git-receive-pack")
        assert len(advertisement) == 1
        assert advertisement[0].ended < fetch.ended
        assert [(r.method, r.service) for r in target.requests] == [
            ("GET", "git-upload-pack"),
            ("POST", "git-upload-pack"),
            ("GET", "git-receive-pack"),
            ("POST", "git-receive-pack"),
            ("POST", "git-receive-pack"),
        ]
    finally:
        source.stop()
        target.stop()


@pytest.mark.parametrize("target_takes_ofs_delta", [True, False])
def test_passed_through_pack_uses_offset_deltas_only_when_the_target_advertises_them(
    tmp_path: Path, target_takes_ofs_delta: bool
) -> None:
    source = GitHTTPServer(tmp_path / "s", SOURCE_USER, SOURCE_TOKEN).start()
    config = {"receive.unpackLimit": "1"}  # keep received packs as they came
    if not target_takes_ofs_delta:
        config["repack.useDeltaBaseOffset"] = "false"  # receive-pack then does not advertise ofs-delta
    target = GitHTTPServer(tmp_path / "t", TARGET_USER, TARGET_TOKEN, extra_config=config).start()
    try:
        src = source.create_bare("src.git")
        dst = target.create_bare("dst.git")
        boilerplate = "".join(f"line {i} of a file that changes a little every commit\n" for i in range(200))
        g.commit(src, MAIN, {"big.txt": boilerplate})
        assert sync(source, target).status == RunStatus.SUCCESS
        before = set((dst / "objects" / "pack").glob("*.pack"))
        for i in range(5):
            g.commit(
                src,
                MAIN,
                {"big.txt": boilerplate + f"revision {i}\n"},
                message=f"revision {i}\n" + boilerplate,
            )
        result = sync(source, target)
        assert result.status == RunStatus.SUCCESS
        assert {r.ref: r.action for r in result.refs} == {MAIN: Action.UPDATE}
        assert g.refs(dst) == g.refs(src)
        g.git(dst, "fsck", "--full")
        new_packs = set((dst / "objects" / "pack").glob("*.pack")) - before
        assert len(new_packs) == 1
        kinds = entry_kinds(new_packs.pop())
        assert (OFS_DELTA in kinds) is target_takes_ofs_delta
        # thin with LFS on (the default) too: the first new revision is a ref-delta onto the blob the
        # target has (a target without offset deltas gets the delta re-packed with ref-deltas only)
        assert REF_DELTA in kinds
    finally:
        source.stop()
        target.stop()


@pytest.mark.parametrize("keep", [False, True])
def test_source_without_protocol_v2(tmp_path: Path, keep: bool) -> None:
    """A source that answers in protocol v0 only: no ls-refs, no negotiation round, no filters. The
    delta still moves alone; what it cannot place is settled by a full fetch for the commit graph."""
    source = GitHTTPServer(tmp_path / "s", SOURCE_USER, SOURCE_TOKEN, protocol_v2=False).start()
    target = GitHTTPServer(tmp_path / "t", TARGET_USER, TARGET_TOKEN).start()
    try:
        src, dst = source.create_bare("src.git"), target.create_bare("dst.git")
        big_history(src)
        g.commit(src, "refs/heads/topic", {"t.txt": "topic\n"})
        g.set_ref(src, "refs/heads/merged", g.git(src, "rev-parse", "refs/heads/main~1"))
        assert sync(source, target).status == RunStatus.SUCCESS
        assert g.refs(dst) == g.refs(src)
        assert not [r for r in source.requests if r.method == "POST" and r.request_bytes < 200]  # no ls-refs
        # next: a fast-forward, a branch rewritten on the target, a merged branch gone from the source
        g.commit(src, MAIN, {"next.txt": "next\n"})
        g.commit(dst, "refs/heads/topic", {"only-on-target.txt": "x\n"})
        g.delete_ref(src, "refs/heads/merged")
        result = sync(source, target, options=MirrorOptions(keep_divergent_refs=keep))
        expected = {MAIN: Action.UPDATE}
        expected["refs/heads/topic"] = Action.SKIP_DIVERGENT if keep else Action.FORCE_UPDATE
        if not keep:
            expected["refs/heads/merged"] = Action.DELETE  # merged into main: safe to delete
        assert {r.ref: r.action for r in result.refs} == expected
        # The delta came alone and places the topic question itself (the topic is a one-commit root
        # branch, all in the delta). Whether `merged` is merged is beyond the delta; without v2 there
        # is neither a negotiation round nor a filter: a full fetch for the graph, as reported.
        assert result.stats.transfer == ("incremental" if keep else "incremental+graph")
        if not keep:
            assert g.refs(dst) == g.refs(src)
        g.git(dst, "fsck", "--connectivity-only")
    finally:
        source.stop()
        target.stop()


@pytest.mark.parametrize("keep", [False, True])
def test_labelling_a_forced_update_costs_no_fetch(tmp_path: Path, keep: bool) -> None:
    """keep-divergent-refs off: a ref that moves is labelled from the delta (`update` when it proves a
    fast-forward, else `force_update`); no negotiation round and no commit-graph fetch to find out.
    On, the same question decides whether the ref moves, so it is asked until answered."""
    source, target = servers(tmp_path, allow_filter=True)
    try:
        src = source.repo_path("src.git")
        c1 = g.commit(src, MAIN, {"a.txt": "1\n"})
        g.commit(src, MAIN, {"a.txt": "2\n"})
        g.set_ref(src, "refs/heads/topic", g.commit(src, MAIN, {"a.txt": "3\n"}))
        assert sync(source, target).status == RunStatus.SUCCESS
        g.commit(src, MAIN, {"a.txt": "4\n"})  # fast-forward
        # topic is reset onto a side line: its old tip is in the source's history, but not below it
        g.commit(src, "refs/heads/topic", {"b.txt": "side\n"}, parents=[c1])
        source.clear_requests()
        result = sync(source, target, options=MirrorOptions(keep_divergent_refs=keep))
        labels = {r.ref: r.action for r in result.refs}
        if keep:
            assert labels == {MAIN: Action.UPDATE, "refs/heads/topic": Action.SKIP_DIVERGENT}
            assert result.stats.transfer == "incremental+graph"
            assert len(source.rpc_requests("git-upload-pack")) > 2
        else:
            assert labels == {MAIN: Action.UPDATE, "refs/heads/topic": Action.FORCE_UPDATE}
            assert g.refs(target.repo_path("dst.git")) == g.refs(src)
            assert result.stats.transfer == "incremental"
            assert len(source.rpc_requests("git-upload-pack")) == 2  # ls-refs and the one fetch
    finally:
        source.stop()
        target.stop()


def test_a_moved_annotated_tag_is_labelled_from_the_target_listings_peeled_value(tmp_path: Path) -> None:
    """The old tag object is on the target, not in the delta: its peeled value from `ls-refs peel`
    shows the move is a fast-forward, with no fetch to find out."""
    source, target = servers(tmp_path, allow_filter=True)
    try:
        src = source.repo_path("src.git")
        g.commit(src, MAIN, {"a.txt": "1\n"})
        g.tag(src, "v1", MAIN, annotated=True, message="first\n")
        assert sync(source, target).status == RunStatus.SUCCESS
        g.commit(src, MAIN, {"a.txt": "2\n"})
        g.delete_ref(src, "refs/tags/v1")
        g.tag(src, "v1", MAIN, annotated=True, message="moved\n")
        source.clear_requests()
        result = sync(source, target)
        assert {r.ref: r.action for r in result.refs} == {MAIN: Action.UPDATE, "refs/tags/v1": Action.UPDATE}
        assert result.stats.transfer == "incremental"
        assert len(source.rpc_requests("git-upload-pack")) == 2
        assert g.refs(target.repo_path("dst.git")) == g.refs(src)
    finally:
        source.stop()
        target.stop()


@pytest.mark.parametrize("target_takes_ofs_delta", [True, False])
def test_incremental_pack_is_thin_the_target_completes_it(
    tmp_path: Path, target_takes_ofs_delta: bool
) -> None:
    """Without LFS: a small change to a large file, the source sends a delta onto the blob the target
    has, not the blob again, and the target completes the thin pack itself. A target without offset
    deltas gets the delta fetched again whole and re-packed (the 192 KiB again, correct)."""
    source = GitHTTPServer(tmp_path / "s", SOURCE_USER, SOURCE_TOKEN).start()
    config = {} if target_takes_ofs_delta else {"repack.useDeltaBaseOffset": "false"}
    target = GitHTTPServer(tmp_path / "t", TARGET_USER, TARGET_TOKEN, extra_config=config).start()
    no_lfs = MirrorOptions(lfs=False)
    try:
        src, dst = source.create_bare("src.git"), target.create_bare("dst.git")
        big = os.urandom(96 * 1024).hex()  # 192 KiB that does not compress
        g.commit(src, MAIN, {"big.txt": big})
        assert sync(source, target, options=no_lfs).status == RunStatus.SUCCESS
        g.commit(src, MAIN, {"big.txt": big + "one more line\n"})
        source.clear_requests()
        target.clear_requests()
        result = sync(source, target, options=no_lfs)
        assert result.status == RunStatus.SUCCESS
        assert g.refs(dst) == g.refs(src)
        g.git(dst, "fsck", "--full")
        fetches = len(source.rpc_requests("git-upload-pack"))
        if target_takes_ofs_delta:
            # the 192 KiB blob is neither fetched nor pushed again: only a delta onto it
            assert source.bytes_sent("git-upload-pack") < 32 * 1024
            assert target.bytes_received("git-receive-pack") < 32 * 1024
            assert fetches == 2  # ls-refs, the fetch
        else:
            assert fetches == 3  # ls-refs, the thin fetch, the whole one
    finally:
        source.stop()
        target.stop()
