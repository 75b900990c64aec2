"""Symbolic refs are ignored on both sides (Gitaly lists the target with `ls-remote --symref`).

A pushed update or deletion of a symbolic ref writes its referent, so a target symref must never be
planned against, and a source symref must never be created on the target as a copy.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gitmirror.mirror.credentials import StaticCredentials
from gitmirror.mirror.engine import sync_mirror
from gitmirror.mirror.transport import Remote
from gitmirror.mirror.urls import parse_remote
from gitmirror.values import Action, MirrorOptions, RunStatus, SyncResult
from tests.conftest import SOURCE_TOKEN, SOURCE_USER, TARGET_TOKEN, TARGET_USER, GitServers
from tests.support import gitrepo as g

MAIN = "refs/heads/main"
CURRENT = "refs/heads/current"


def sync(servers: GitServers, mode: str, options: MirrorOptions | None = None) -> SyncResult:
    return sync_mirror(
        Remote(parse_remote(servers.source_url), StaticCredentials(SOURCE_USER, SOURCE_TOKEN)),
        Remote(parse_remote(servers.target_url), StaticCredentials(TARGET_USER, TARGET_TOKEN)),
        options,
        mode=mode,
    )


def symref(repo: Path, name: str) -> str | None:
    proc = g.run_git(f"--git-dir={repo}", "symbolic-ref", "-q", name, check=False)
    return proc.stdout.decode().strip() if proc.returncode == 0 else None


def seed_both(servers: GitServers, mode: str) -> None:
    src = servers.source_path
    g.commit(src, MAIN, {"a.txt": "a\n"})
    g.commit(src, MAIN, {"b.txt": "b\n"})
    g.set_head(src, "main")
    assert sync(servers, mode).status == RunStatus.SUCCESS


@pytest.mark.parametrize("mode", ["incremental", "full"])
@pytest.mark.parametrize("keep", [False, True])
def test_target_symref_to_main_does_not_delete_main(git_servers: GitServers, mode: str, keep: bool) -> None:
    seed_both(git_servers, mode)
    dst = git_servers.target_path
    g.git(dst, "symbolic-ref", CURRENT, MAIN)
    new_main = g.commit(git_servers.source_path, MAIN, {"c.txt": "c\n"})

    result = sync(git_servers, mode, MirrorOptions(keep_divergent_refs=keep))

    assert result.status == RunStatus.SUCCESS, result.error
    assert {r.ref: r.action for r in result.refs} == {MAIN: Action.UPDATE}
    assert result.divergent_refs == []
    assert g.rev_parse(dst, MAIN) == new_main
    assert symref(dst, CURRENT) == MAIN
    again = sync(git_servers, mode)
    assert again.status == RunStatus.SUCCESS and again.refs == []
    assert g.rev_parse(dst, MAIN) == new_main


@pytest.mark.parametrize("mode", ["incremental", "full"])
def test_source_symrefs_are_never_created_on_the_target(git_servers: GitServers, mode: str) -> None:
    src, dst = git_servers.source_path, git_servers.target_path
    g.commit(src, MAIN, {"a.txt": "a\n"})
    g.set_head(src, "main")
    g.tag(src, "v2", MAIN, annotated=True, message="release 2")
    g.git(src, "symbolic-ref", CURRENT, MAIN)
    g.git(src, "symbolic-ref", "refs/tags/latest", "refs/tags/v2")

    result = sync(git_servers, mode)

    assert result.status == RunStatus.SUCCESS, result.error
    assert {r.ref: r.action for r in result.refs} == {MAIN: Action.CREATE, "refs/tags/v2": Action.CREATE}
    assert set(g.refs(dst)) == {MAIN, "refs/tags/v2"}
    g.commit(src, MAIN, {"b.txt": "b\n"})
    moved = sync(git_servers, mode)
    assert {r.ref: r.action for r in moved.refs} == {MAIN: Action.UPDATE}
    assert set(g.refs(dst)) == {MAIN, "refs/tags/v2"}


@pytest.mark.parametrize("mode", ["incremental", "full"])
def test_target_symref_to_a_branch_that_must_be_deleted(git_servers: GitServers, mode: str) -> None:
    src, dst = git_servers.source_path, git_servers.target_path
    seed_both(git_servers, mode)
    merged = g.rev_parse(dst, MAIN)
    assert merged is not None
    g.set_ref(dst, "refs/heads/old", merged)  # merged into the source's default branch
    g.git(dst, "symbolic-ref", CURRENT, "refs/heads/old")

    result = sync(git_servers, mode)

    assert result.status == RunStatus.SUCCESS, result.error
    assert {r.ref: r.action for r in result.refs} == {"refs/heads/old": Action.DELETE}
    assert g.rev_parse(dst, "refs/heads/old") is None
    assert g.rev_parse(dst, MAIN) == g.rev_parse(src, MAIN)
    assert symref(dst, CURRENT) == "refs/heads/old"  # never pushed: left as it was, now dangling


def test_local_repositories_ignore_symrefs_too(tmp_path: Path) -> None:
    src, dst = g.init_bare(tmp_path / "src.git"), g.init_bare(tmp_path / "dst.git")
    g.commit(src, MAIN, {"a.txt": "a\n"})
    g.git(src, "symbolic-ref", CURRENT, MAIN)
    first = sync_mirror(Remote(parse_remote(str(src))), Remote(parse_remote(str(dst))))
    assert first.status == RunStatus.SUCCESS, first.error
    assert set(g.refs(dst)) == {MAIN}
    g.git(dst, "symbolic-ref", CURRENT, MAIN)
    g.commit(src, MAIN, {"b.txt": "b\n"})
    g.git(src, "symbolic-ref", "--delete", CURRENT)
    second = sync_mirror(Remote(parse_remote(str(src))), Remote(parse_remote(str(dst))))
    assert {r.ref: r.action for r in second.refs} == {MAIN: Action.UPDATE}
    assert g.rev_parse(dst, MAIN) == g.rev_parse(src, MAIN)
    assert symref(dst, CURRENT) == MAIN
