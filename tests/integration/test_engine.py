"""The engine against real git servers (git http-backend over loopback HTTP with Basic auth)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gitmirror.mirror.credentials import StaticCredentials
from gitmirror.mirror.engine import sync_mirror
from gitmirror.mirror.transport import Remote
from gitmirror.mirror.urls import parse_remote
from gitmirror.values import Action, MirrorOptions, RunStatus, SyncResult
from gitmirror_dev import samples
from tests.conftest import CANARIES, SOURCE_TOKEN, SOURCE_USER, TARGET_TOKEN, TARGET_USER, GitServers
from tests.support import gitrepo as g

MAIN = "refs/heads/main"
MODE = {"value": "incremental"}


@pytest.fixture(autouse=True, params=["incremental", "full"])
def transfer_mode(request: pytest.FixtureRequest) -> str:
    """Every engine test runs on the pass-through (incremental) path and on the full path."""
    MODE["value"] = request.param
    return str(request.param)


def run_sync(
    servers: GitServers,
    options: MirrorOptions | None = None,
    *,
    target_token: str = TARGET_TOKEN,
    batch_size: int = 1000,
) -> SyncResult:
    source = Remote(parse_remote(servers.source_url), StaticCredentials(SOURCE_USER, SOURCE_TOKEN))
    target = Remote(parse_remote(servers.target_url), StaticCredentials(TARGET_USER, target_token))
    result = sync_mirror(source, target, options, batch_size=batch_size, mode=MODE["value"])
    text = result.to_json()
    for canary in (*CANARIES, target_token):
        assert canary not in text
    return result


def actions(result: SyncResult) -> dict[str, Action]:
    return {r.ref: r.action for r in result.refs}


def mirrored(servers: GitServers) -> dict[str, str]:
    return {
        k: v for k, v in g.refs(servers.target_path).items() if k.startswith(("refs/heads/", "refs/tags/"))
    }


def source_refs(servers: GitServers) -> dict[str, str]:
    return g.refs(servers.source_path)


def seed(servers: GitServers) -> dict[str, str]:
    """main (3 commits), feature, a lightweight and an annotated tag."""
    src = servers.source_path
    g.commit(src, MAIN, {"README": "one"})
    base = g.commit(src, MAIN, {"README": "two"})
    g.commit(src, MAIN, {"a.txt": "three"})
    g.commit(src, "refs/heads/feature", {"f.txt": "feature"}, parents=[base])
    g.tag(src, "v1.0", base)
    g.tag(src, "v2.0", MAIN, annotated=True, message="release 2")
    return source_refs(servers)


def test_empty_target_gets_all_branches_and_tags(git_servers: GitServers, isolated_tmpdir: Path) -> None:
    expected = seed(git_servers)
    result = run_sync(git_servers)
    assert result.status == RunStatus.SUCCESS, result.error
    assert result.error is None and result.divergent_refs == []
    assert actions(result) == dict.fromkeys(expected, Action.CREATE)
    assert mirrored(git_servers) == expected
    assert g.git(git_servers.target_path, "cat-file", "-t", "refs/tags/v2.0") == "tag"
    g.git(git_servers.target_path, "fsck", "--full")
    assert g.head(git_servers.target_path) == MAIN
    assert list(isolated_tmpdir.iterdir()) == []  # the scratch repository is gone


def test_second_sync_is_a_noop_without_push_or_fetch(git_servers: GitServers, isolated_tmpdir: Path) -> None:
    seed(git_servers)
    assert run_sync(git_servers).status == RunStatus.SUCCESS
    git_servers.source.clear_requests()
    git_servers.target.clear_requests()
    result = run_sync(git_servers)
    assert result.status == RunStatus.SUCCESS
    assert result.refs == []
    assert git_servers.target.rpc_requests("git-receive-pack") == []
    assert list(isolated_tmpdir.iterdir()) == []
    if MODE["value"] == "full":
        # the run after one that left LFS objects behind reads the whole history's pointers even when
        # the refs are equal (nothing else: no push, no ref changed)
        assert result.stats.transfer == "full"
        assert len(git_servers.source.rpc_requests("git-upload-pack")) == 2  # ls-refs, the history
        return
    # two ref advertisements (protocol v2's ls-refs is one small POST), no pack
    assert result.stats.transfer == "none"
    assert len(git_servers.source.rpc_requests("git-upload-pack")) <= 1
    assert all(r.response_bytes < 2048 for r in git_servers.source.requests)


def test_fast_forward_and_force_overwrite_without_keep(git_servers: GitServers) -> None:
    seed(git_servers)
    run_sync(git_servers)
    src = git_servers.source_path
    old_main = g.rev_parse(src, MAIN)
    new_main = g.commit(src, MAIN, {"b.txt": "ff"})
    # rewrite feature: the target's feature is no ancestor of the new one
    old_feature = g.rev_parse(src, "refs/heads/feature")
    rewritten = g.commit(src, "refs/heads/feature", {"g.txt": "rewritten"}, parents=[old_main])
    result = run_sync(git_servers)
    assert result.status == RunStatus.SUCCESS
    assert actions(result) == {MAIN: Action.UPDATE, "refs/heads/feature": Action.FORCE_UPDATE}
    by_ref = {r.ref: r for r in result.refs}
    assert (by_ref[MAIN].old, by_ref[MAIN].new) == (old_main, new_main)
    assert (by_ref["refs/heads/feature"].old, by_ref["refs/heads/feature"].new) == (old_feature, rewritten)
    assert mirrored(git_servers) == source_refs(git_servers)


def test_keep_divergent_skips_rewritten_branch_and_applies_fast_forwards(git_servers: GitServers) -> None:
    seed(git_servers)
    run_sync(git_servers)
    src, dst = git_servers.source_path, git_servers.target_path
    # a commit made directly on the target's feature branch
    target_only = g.commit(dst, "refs/heads/feature", {"local.txt": "target-only work"})
    g.commit(src, "refs/heads/feature", {"upstream.txt": "upstream work"})
    new_main = g.commit(src, MAIN, {"b.txt": "ff"})
    result = run_sync(git_servers, MirrorOptions(keep_divergent_refs=True))
    assert result.status == RunStatus.PARTIAL
    assert result.divergent_refs == ["refs/heads/feature"]
    assert actions(result) == {MAIN: Action.UPDATE, "refs/heads/feature": Action.SKIP_DIVERGENT}
    assert g.rev_parse(dst, "refs/heads/feature") == target_only
    assert g.rev_parse(dst, MAIN) == new_main
    # without keep the same state is overwritten
    result = run_sync(git_servers)
    assert result.status == RunStatus.SUCCESS
    assert actions(result) == {"refs/heads/feature": Action.FORCE_UPDATE}
    assert mirrored(git_servers) == source_refs(git_servers)


def test_remote_only_refs_deleted_only_when_merged(git_servers: GitServers) -> None:
    seed(git_servers)
    run_sync(git_servers)
    dst = git_servers.target_path
    merged = g.rev_parse(git_servers.source_path, "refs/heads/main~1")
    assert merged
    g.set_ref(dst, "refs/heads/merged", merged)
    g.tag(dst, "merged-tag", merged)
    unmerged = g.commit(dst, "refs/heads/unmerged", {"x": "only on target"}, parents=[merged])
    # the feature branch is not in main; deleting it upstream must not delete it downstream
    g.delete_ref(git_servers.source_path, "refs/heads/feature")
    result = run_sync(git_servers)
    assert result.status == RunStatus.SUCCESS
    assert actions(result) == {"refs/heads/merged": Action.DELETE, "refs/tags/merged-tag": Action.DELETE}
    remaining = mirrored(git_servers)
    assert remaining["refs/heads/unmerged"] == unmerged
    assert "refs/heads/feature" in remaining and "refs/heads/merged" not in remaining
    # with keep-divergent nothing is ever deleted
    g.set_ref(dst, "refs/heads/merged", merged)
    result = run_sync(git_servers, MirrorOptions(keep_divergent_refs=True))
    assert "refs/heads/merged" not in actions(result)
    assert "refs/heads/merged" in mirrored(git_servers)


def test_nothing_deleted_when_source_has_no_default_branch(git_servers: GitServers) -> None:
    src, dst = git_servers.source_path, git_servers.target_path
    c = g.commit(src, "refs/heads/dev", {"a": "1"})
    g.set_ref(dst, "refs/heads/stale", c) if g.has_object(dst, c) else None
    run_sync(git_servers)  # source HEAD -> refs/heads/main, which does not exist
    g.set_ref(dst, "refs/heads/stale", c)
    result = run_sync(git_servers)
    assert result.status == RunStatus.SUCCESS
    assert actions(result) == {}
    assert "refs/heads/stale" in mirrored(git_servers)


def test_tags_changed_overwritten_and_divergent_tag_kept_with_keep(git_servers: GitServers) -> None:
    seed(git_servers)
    run_sync(git_servers)
    src, dst = git_servers.source_path, git_servers.target_path
    side = g.commit(
        src, "refs/heads/side", {"s": "side"}, parents=[g.rev_parse(src, "refs/heads/main~2") or ""]
    )
    # v2.0 re-tagged upstream on a commit that is not a descendant of the old one
    g.tag(src, "v2.0", side, annotated=True, message="moved")
    kept = run_sync(git_servers, MirrorOptions(keep_divergent_refs=True))
    assert kept.status == RunStatus.PARTIAL
    assert kept.divergent_refs == ["refs/tags/v2.0"]
    assert g.rev_parse(dst, "refs/tags/v2.0") != g.rev_parse(src, "refs/tags/v2.0")
    forced = run_sync(git_servers)
    assert actions(forced) == {"refs/tags/v2.0": Action.FORCE_UPDATE}
    assert mirrored(git_servers) == source_refs(git_servers)


def test_branch_filter_and_regex(git_servers: GitServers) -> None:
    src = git_servers.source_path
    c = g.commit(src, MAIN, {"a": "1"})
    for name in ("release/1.0", "release/2.0/hotfix", "feature/x", "dev"):
        g.set_ref(src, f"refs/heads/{name}", c)
    g.tag(src, "v1", c)
    result = run_sync(git_servers, MirrorOptions(branch_filters=("main", "release/*")))
    assert set(mirrored(git_servers)) == {
        MAIN,
        "refs/heads/release/1.0",
        "refs/heads/release/2.0/hotfix",
        "refs/tags/v1",
    }
    assert result.status == RunStatus.SUCCESS
    result = run_sync(git_servers, MirrorOptions(branch_regex=r"dev|feature/.+"))
    assert {"refs/heads/dev", "refs/heads/feature/x"} <= set(mirrored(git_servers))
    assert set(actions(result)) == {"refs/heads/dev", "refs/heads/feature/x"}


def test_directory_file_conflict_in_one_sync(git_servers: GitServers) -> None:
    src, dst = git_servers.source_path, git_servers.target_path
    c = g.commit(src, MAIN, {"a": "1"})
    g.set_ref(src, "refs/heads/a", c)
    run_sync(git_servers)
    g.delete_ref(src, "refs/heads/a")
    g.set_ref(src, "refs/heads/a/b", c)
    result = run_sync(git_servers)
    assert result.status == RunStatus.SUCCESS, result
    assert actions(result) == {"refs/heads/a": Action.DELETE, "refs/heads/a/b": Action.CREATE}
    assert mirrored(git_servers) == source_refs(git_servers)
    assert g.rev_parse(dst, "refs/heads/a/b") == c


def test_hidden_namespaces_untouched_on_both_sides(git_servers: GitServers) -> None:
    src, dst = git_servers.source_path, git_servers.target_path
    c = g.commit(src, MAIN, {"a": "1"})
    g.set_ref(src, "refs/pull/1/head", c)
    g.set_ref(src, "refs/notes/commits", c)
    run_sync(git_servers)
    other = g.commit(dst, "refs/merge-requests/7/head", {"m": "r"}, parents=[c])
    g.set_ref(dst, "refs/pull/9/head", other)
    g.set_ref(dst, "refs/notes/commits", other)
    g.commit(src, MAIN, {"b": "2"})
    result = run_sync(git_servers)
    assert result.status == RunStatus.SUCCESS
    refs = g.refs(dst)
    assert "refs/pull/1/head" not in refs
    assert refs["refs/pull/9/head"] == other
    assert refs["refs/notes/commits"] == other
    assert refs["refs/merge-requests/7/head"] == other


def test_three_hundred_refs_in_small_batches(git_servers: GitServers) -> None:
    src = git_servers.source_path
    c = g.commit(src, MAIN, {"a": "1"})
    lines = "".join(f"create refs/heads/b{i:03d} {c}\n" for i in range(200))
    lines += "".join(f"create refs/tags/t{i:03d} {c}\n" for i in range(120))
    g.git(src, "update-ref", "--stdin", input=lines)
    result = run_sync(git_servers, batch_size=128)
    assert result.status == RunStatus.SUCCESS
    assert len(result.refs) == 321
    assert result.stats.pushes == 3
    assert mirrored(git_servers) == source_refs(git_servers)


def test_pre_receive_hook_rejecting_one_branch_is_partial(git_servers: GitServers) -> None:
    seed(git_servers)
    git_servers.target.install_hook(
        "dst.git",
        "pre-receive",
        "#!/bin/sh\nwhile read old new ref; do\n"
        '  if [ "$ref" = refs/heads/feature ]; then echo "feature is protected by policy" >&2; exit 1; fi\n'
        "done\nexit 0\n",
    )
    result = run_sync(git_servers)
    assert result.status == RunStatus.PARTIAL
    rejected = [r for r in result.refs if r.action == Action.REJECTED]
    assert [r.ref for r in rejected] == ["refs/heads/feature"]
    assert rejected[0].error and "pre-receive hook declined" in rejected[0].error
    assert "feature is protected by policy" in rejected[0].error
    refs = mirrored(git_servers)
    assert "refs/heads/feature" not in refs
    assert {MAIN, "refs/tags/v1.0", "refs/tags/v2.0"} <= set(refs)


def test_update_hook_rejection_is_per_ref(git_servers: GitServers) -> None:
    seed(git_servers)
    git_servers.target.install_hook(
        "dst.git",
        "update",
        '#!/bin/sh\n[ "$1" = refs/tags/v1.0 ] && { echo "tags are immutable" >&2; exit 1; }\nexit 0\n',
    )
    result = run_sync(git_servers)
    assert result.status == RunStatus.PARTIAL
    assert {r.ref for r in result.refs if r.action == Action.REJECTED} == {"refs/tags/v1.0"}
    assert result.stats.pushes == 1
    assert "refs/tags/v1.0" not in mirrored(git_servers)


def test_wrong_token_fails_and_changes_nothing(git_servers: GitServers) -> None:
    seed(git_servers)
    result = run_sync(git_servers, target_token="canary-WRONG-1234567")
    assert result.status == RunStatus.FAILED
    assert result.error and "401" in result.error and "authentication failed" in result.error
    assert mirrored(git_servers) == {}


def _sync_urls(source_url: str, target_url: str) -> SyncResult:
    return sync_mirror(
        Remote(parse_remote(source_url), StaticCredentials(SOURCE_USER, SOURCE_TOKEN)),
        Remote(parse_remote(target_url), StaticCredentials(TARGET_USER, TARGET_TOKEN)),
        mode=MODE["value"],
    )


def test_unreachable_missing_and_non_git_urls_give_clear_errors(git_servers: GitServers) -> None:
    seed(git_servers)
    unreachable = _sync_urls("http://127.0.0.1:9/nothing.git", git_servers.target_url)
    assert unreachable.status == RunStatus.FAILED
    assert unreachable.error and "cannot connect" in unreachable.error
    missing = _sync_urls(git_servers.source.repo_url("absent.git"), git_servers.target_url)
    assert missing.status == RunStatus.FAILED
    assert missing.error and "not found" in missing.error
    not_git = _sync_urls(git_servers.source.url + "/not-git", git_servers.target_url)
    assert not_git.status == RunStatus.FAILED
    assert not_git.error and "not a git repository" in not_git.error
    assert mirrored(git_servers) == {}


def test_server_errors_are_transient_and_next_sync_converges(git_servers: GitServers) -> None:
    seed(git_servers)
    git_servers.target.fail_next(502, count=10, path_contains="git-receive-pack")
    result = run_sync(git_servers)
    assert result.status == RunStatus.FAILED
    assert result.error and "502" in result.error
    git_servers.target.clear_failures()
    assert run_sync(git_servers).status == RunStatus.SUCCESS
    assert mirrored(git_servers) == source_refs(git_servers)


@pytest.mark.slow
def test_mirror_httpx_bundle_into_empty_target(git_servers: GitServers, isolated_tmpdir: Path) -> None:
    bundle = samples.find_bundle("httpx.bundle")
    if bundle is None:
        pytest.skip("no httpx.bundle (an optional benchmark repository: see bench/README.md)")
    src = git_servers.source_path
    g.git(src, "fetch", "-q", str(bundle), "refs/heads/*:refs/heads/*", "refs/tags/*:refs/tags/*")
    g.set_head(src, "master")
    result = run_sync(git_servers)
    assert result.status == RunStatus.SUCCESS, result.error
    expected = source_refs(git_servers)
    assert len(expected) == 111
    assert mirrored(git_servers) == expected
    assert len(result.refs) == 111
    assert result.stats.bytes_received > 8_000_000 and result.stats.bytes_sent > 8_000_000
    assert list(isolated_tmpdir.iterdir()) == []
    g.git(git_servers.target_path, "fsck", "--connectivity-only")
    assert os.environ.get("TMPDIR") == str(isolated_tmpdir)


def test_non_fast_forward_refused_by_target_is_reported(git_servers: GitServers) -> None:
    seed(git_servers)
    run_sync(git_servers)
    g.git(git_servers.target_path, "config", "receive.denyNonFastForwards", "true")
    src = git_servers.source_path
    g.commit(
        src, "refs/heads/feature", {"r": "rewritten"}, parents=[g.rev_parse(src, "refs/heads/main~2") or ""]
    )
    g.commit(src, MAIN, {"n": "next"})
    result = run_sync(git_servers)
    assert result.status == RunStatus.PARTIAL
    by_ref = {r.ref: r for r in result.refs}
    assert by_ref["refs/heads/feature"].action == Action.REJECTED
    assert "non-fast-forward" in str(by_ref["refs/heads/feature"].error)
    assert by_ref[MAIN].action == Action.UPDATE
    assert g.rev_parse(git_servers.target_path, MAIN) == g.rev_parse(src, MAIN)


class _MovedBeforePush(Remote):
    """A target on which someone else moves a ref after the sync listed it and before it pushes."""

    def __init__(self, servers: GitServers, ref: str, sha: str) -> None:
        super().__init__(parse_remote(servers.target_url), StaticCredentials(TARGET_USER, TARGET_TOKEN))
        self._move: tuple[Path, str, str] | None = (servers.target_path, ref, sha)

    def push(self, *args: object, **kwargs: object) -> object:  # type: ignore[override]
        if self._move is not None:
            g.set_ref(*self._move)
            self._move = None
        return super().push(*args, **kwargs)  # type: ignore[arg-type]


def test_ref_moved_on_the_target_during_the_sync_is_not_overwritten(git_servers: GitServers) -> None:
    """Like `git push --force-with-lease`: the planned old value is the lease."""
    seed(git_servers)
    run_sync(git_servers)
    src, dst = git_servers.source_path, git_servers.target_path
    new_main = g.commit(src, MAIN, {"upstream.txt": "upstream\n"})
    new_feature = g.commit(src, "refs/heads/feature", {"f2.txt": "more\n"})
    theirs = g.commit(
        dst, None, {"theirs.txt": "pushed to the target meanwhile\n"}, parents=[g.rev_parse(dst, MAIN) or ""]
    )
    source = Remote(parse_remote(git_servers.source_url), StaticCredentials(SOURCE_USER, SOURCE_TOKEN))
    result = sync_mirror(source, _MovedBeforePush(git_servers, MAIN, theirs), mode=MODE["value"])
    assert result.status == RunStatus.PARTIAL
    by_ref = {r.ref: r for r in result.refs}
    assert by_ref[MAIN].action == Action.REJECTED and "stale info" in (by_ref[MAIN].error or "")
    assert by_ref["refs/heads/feature"].action == Action.UPDATE
    assert g.rev_parse(dst, MAIN) == theirs  # the concurrent push survives
    assert g.rev_parse(dst, "refs/heads/feature") == new_feature
    assert new_main != theirs


def test_ref_created_on_the_target_during_the_sync_is_not_overwritten(git_servers: GitServers) -> None:
    """A branch the plan creates appears on the target before the push: receive-pack refuses the
    creation ("reference already exists"), reported as the same stale lease."""
    seed(git_servers)
    run_sync(git_servers)
    src, dst = git_servers.source_path, git_servers.target_path
    g.commit(src, "refs/heads/new", {"n.txt": "upstream\n"})
    g.commit(src, MAIN, {"m.txt": "upstream\n"})
    theirs = g.commit(dst, None, {"t.txt": "theirs\n"}, parents=[g.rev_parse(dst, MAIN) or ""])
    source = Remote(parse_remote(git_servers.source_url), StaticCredentials(SOURCE_USER, SOURCE_TOKEN))
    result = sync_mirror(source, _MovedBeforePush(git_servers, "refs/heads/new", theirs), mode=MODE["value"])
    assert result.status == RunStatus.PARTIAL
    by_ref = {r.ref: r for r in result.refs}
    assert by_ref["refs/heads/new"].action == Action.REJECTED
    assert "stale info" in (by_ref["refs/heads/new"].error or "")
    assert by_ref["refs/heads/new"].reason_code == "stale_info"
    assert by_ref[MAIN].action == Action.UPDATE
    assert g.rev_parse(dst, "refs/heads/new") == theirs
