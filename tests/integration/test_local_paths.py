"""Between two local repositories git pushes from one to the other; the mirror's rules still hold."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from gitmirror.mirror.engine import sync_mirror
from gitmirror.mirror.transport import Remote
from gitmirror.mirror.urls import parse_remote
from gitmirror.values import Action, MirrorOptions, RunStatus, SyncResult
from tests.support import gitrepo as g

MAIN = "refs/heads/main"


def sync(src: Path, dst: Path, options: MirrorOptions | None = None) -> SyncResult:
    return sync_mirror(Remote(parse_remote(str(src))), Remote(parse_remote(str(dst))), options)


@pytest.fixture
def repos(tmp_path: Path) -> tuple[Path, Path]:
    src, dst = g.init_bare(tmp_path / "src.git"), g.init_bare(tmp_path / "dst.git")
    base = g.commit(src, MAIN, {"a": "1\n"})
    g.commit(src, MAIN, {"a": "2\n"})
    g.commit(src, "refs/heads/feature", {"f": "1\n"}, parents=[base])
    g.tag(src, "v1", MAIN, annotated=True, message="release\n")
    g.set_head(src, "main")
    return src, dst


def test_local_mirror_then_the_gitlab_rules(repos: tuple[Path, Path]) -> None:
    src, dst = repos
    first = sync(src, dst)
    assert first.status == RunStatus.SUCCESS and first.stats.transfer == "local"
    assert g.refs(dst) == g.refs(src)
    g.git(dst, "fsck", "--full")

    base = g.rev_parse(src, "refs/heads/feature^") or ""
    g.commit(src, MAIN, {"a": "3\n"})  # fast-forward
    g.commit(src, "refs/heads/feature", {"f": "rewritten\n"}, parents=[base])  # forced
    merged = g.rev_parse(src, f"{MAIN}~1") or ""
    g.set_ref(dst, "refs/heads/merged", merged)  # target-only, merged into main: deleted
    g.set_ref(dst, "refs/heads/own", g.commit(dst, None, {"o": "own\n"}, parents=[merged]))  # kept

    kept = sync(src, dst, MirrorOptions(keep_divergent_refs=True))
    assert {r.ref: r.action for r in kept.refs} == {
        MAIN: Action.UPDATE,
        "refs/heads/feature": Action.SKIP_DIVERGENT,
    }
    assert kept.status == RunStatus.PARTIAL and kept.divergent_refs == ["refs/heads/feature"]

    forced = sync(src, dst)
    assert {r.ref: r.action for r in forced.refs} == {
        "refs/heads/feature": Action.FORCE_UPDATE,
        "refs/heads/merged": Action.DELETE,
    }
    assert g.rev_parse(dst, "refs/heads/feature") == g.rev_parse(src, "refs/heads/feature")
    assert g.rev_parse(dst, "refs/heads/merged") is None and g.rev_parse(dst, "refs/heads/own") is not None
    assert sync(src, dst).refs == []


def test_a_target_hook_rejection_is_reported_per_ref(repos: tuple[Path, Path]) -> None:
    src, dst = repos
    assert sync(src, dst).status == RunStatus.SUCCESS
    hook = dst / "hooks" / "pre-receive"
    hook.write_text(
        "#!/bin/sh\nwhile read old new ref; do\n"
        '  case "$ref" in refs/heads/protected) echo "protected branch hook declined $ref"; exit 1;; esac\n'
        "done\n"
    )
    hook.chmod(hook.stat().st_mode | stat.S_IEXEC)
    g.commit(src, "refs/heads/protected", {"p": "1\n"})
    g.commit(src, MAIN, {"a": "4\n"})
    result = sync(src, dst)
    rejected = {r.ref: r.error for r in result.refs if r.action == Action.REJECTED}
    assert result.status == RunStatus.PARTIAL and set(rejected) == {"refs/heads/protected"}
    assert rejected["refs/heads/protected"] and "hook declined" in rejected["refs/heads/protected"]
    assert g.rev_parse(dst, MAIN) == g.rev_parse(src, MAIN)  # isolated: the rest went through


def test_a_ref_changed_on_the_target_during_the_sync_is_not_overwritten(repos: tuple[Path, Path]) -> None:
    src, dst = repos
    assert sync(src, dst).status == RunStatus.SUCCESS
    g.commit(src, MAIN, {"a": "5\n"})
    listed = Remote(parse_remote(str(dst)))
    original = listed.list_refs
    concurrent = g.commit(dst, None, {"c": "concurrent\n"}, parents=[g.rev_parse(dst, MAIN) or ""])

    def list_then_change() -> object:
        listing = original()
        g.set_ref(dst, MAIN, concurrent)  # someone pushes right after the target was listed
        return listing

    listed.list_refs = list_then_change  # type: ignore[method-assign]
    result = sync_mirror(Remote(parse_remote(str(src))), listed)
    [ref] = result.refs
    assert ref.action == Action.REJECTED and ref.error and "stale info" in ref.error
    assert g.rev_parse(dst, MAIN) == concurrent


def test_a_dry_run_between_local_repositories_pushes_nothing(repos: tuple[Path, Path]) -> None:
    src, dst = repos
    plan = sync_mirror(Remote(parse_remote(str(src))), Remote(parse_remote(str(dst))), dry_run=True)
    assert plan.status == RunStatus.SUCCESS and plan.stats.pushes == 0
    assert {r.ref for r in plan.refs} == set(g.refs(src)) and g.refs(dst) == {}


def test_thousands_of_refs_between_local_repositories(tmp_path: Path) -> None:
    """Several pushes of 1,000 refs (git receive-pack told each ref's old value), then a few updates."""
    src, dst = g.init_bare(tmp_path / "src.git"), g.init_bare(tmp_path / "dst.git")
    tip = g.commit(src, MAIN, {"a": "1\n"})
    names = [f"refs/heads/b-{i:04}" for i in range(2500)]
    g.run_git(
        "--git-dir", str(src), "update-ref", "--stdin", input="".join(f"create {n} {tip}\n" for n in names)
    )
    first = sync(src, dst)
    assert first.status == RunStatus.SUCCESS and first.stats.pushes == 3
    assert g.refs(dst) == g.refs(src)
    moved = names[::250]
    new = g.commit(src, None, {"b": "2\n"}, parents=[tip])
    g.run_git(
        "--git-dir", str(src), "update-ref", "--stdin", input="".join(f"update {n} {new}\n" for n in moved)
    )
    g.delete_ref(src, names[1])
    second = sync(src, dst)
    assert second.status == RunStatus.SUCCESS
    assert {r.ref: r.action for r in second.refs} == {
        **dict.fromkeys(moved, Action.UPDATE),
        names[1]: Action.DELETE,  # merged into main (it points at main's tip)
    }
    assert g.refs(dst) == g.refs(src)
    g.git(dst, "fsck", "--full")
