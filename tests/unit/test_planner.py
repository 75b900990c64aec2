"""Table tests of the mirror decision, without git: a tiny commit DAG stands in for the repository."""

from __future__ import annotations

import random

import pytest
from dulwich.refs import Ref, check_ref_format

from gitmirror.mirror.planner import (
    batch_ref_updates,
    compile_branch_matcher,
    divergent_refs,
    in_scope,
    is_mirrorable_ref,
    plan_ref_updates,
)
from gitmirror.values import Action, MirrorOptions, RefUpdate


def sha(name: str) -> str:
    return (name.encode().hex() + "0" * 40)[:40]


# a <- b <- c (main); b <- x (side); t1 is an annotated tag object peeling to b; t2 peels to x.
PARENTS = {sha("a"): [], sha("b"): [sha("a")], sha("c"): [sha("b")], sha("x"): [sha("b")]}
TAGS = {sha("t1"): sha("b"), sha("t2"): sha("x"), sha("t3"): sha("c")}


class DagOracle:
    def __init__(self, parents: dict[str, list[str]], tags: dict[str, str]) -> None:
        self.parents = parents
        self.tags = tags
        self.calls: list[tuple[str, str]] = []

    def peel(self, oid: str) -> str | None:
        oid = self.tags.get(oid, oid)
        return oid if oid in self.parents else None

    def is_ancestor(self, ancestor: str, descendant: str) -> bool | None:
        self.calls.append((ancestor, descendant))
        a, d = self.peel(ancestor), self.peel(descendant)
        if a is None or d is None:
            return None
        todo, seen = [d], set()
        while todo:
            cur = todo.pop()
            if cur == a:
                return True
            if cur not in seen:
                seen.add(cur)
                todo.extend(self.parents[cur])
        return False

    def proves_ancestor(self, ancestor: str, descendant: str) -> bool:
        return self.is_ancestor(ancestor, descendant) is True


ORACLE = DagOracle(PARENTS, TAGS)
KEEP = MirrorOptions(keep_divergent_refs=True)
FORCE = MirrorOptions()
MAIN = "refs/heads/main"


def plan(
    source: dict[str, str],
    target: dict[str, str],
    options: MirrorOptions = FORCE,
    default: str | None = MAIN,
) -> dict[str, tuple[Action, str | None, str | None]]:
    return {
        d.ref: (d.action, d.old, d.new) for d in plan_ref_updates(source, target, default, ORACLE, options)
    }


@pytest.mark.parametrize(
    ("source", "target", "options", "expected"),
    [
        # 2. missing on the target: created (branches and tags alike)
        ({MAIN: sha("c")}, {}, FORCE, {MAIN: (Action.CREATE, None, sha("c"))}),
        ({"refs/tags/v1": sha("t1")}, {}, KEEP, {"refs/tags/v1": (Action.CREATE, None, sha("t1"))}),
        # 3. same id: nothing
        ({MAIN: sha("c")}, {MAIN: sha("c")}, FORCE, {}),
        ({MAIN: sha("c")}, {MAIN: sha("c")}, KEEP, {}),
        # fast-forward: update, with or without keep
        ({MAIN: sha("c")}, {MAIN: sha("a")}, FORCE, {MAIN: (Action.UPDATE, sha("a"), sha("c"))}),
        ({MAIN: sha("c")}, {MAIN: sha("a")}, KEEP, {MAIN: (Action.UPDATE, sha("a"), sha("c"))}),
        # 4. divergent without keep: force update
        ({MAIN: sha("c")}, {MAIN: sha("x")}, FORCE, {MAIN: (Action.FORCE_UPDATE, sha("x"), sha("c"))}),
        # rewind without keep: force update (target ahead is not an ancestor of the source)
        ({MAIN: sha("a")}, {MAIN: sha("c")}, FORCE, {MAIN: (Action.FORCE_UPDATE, sha("c"), sha("a"))}),
        # 5. divergent with keep: skipped, reported
        ({MAIN: sha("c")}, {MAIN: sha("x")}, KEEP, {MAIN: (Action.SKIP_DIVERGENT, sha("x"), sha("c"))}),
        ({MAIN: sha("a")}, {MAIN: sha("c")}, KEEP, {MAIN: (Action.SKIP_DIVERGENT, sha("c"), sha("a"))}),
        # target id unknown to the source: divergent under keep, force without
        ({MAIN: sha("c")}, {MAIN: sha("zz")}, KEEP, {MAIN: (Action.SKIP_DIVERGENT, sha("zz"), sha("c"))}),
        ({MAIN: sha("c")}, {MAIN: sha("zz")}, FORCE, {MAIN: (Action.FORCE_UPDATE, sha("zz"), sha("c"))}),
        # annotated tags: compared as objects, ancestry on what they peel to
        (
            {"refs/tags/v1": sha("t3")},
            {"refs/tags/v1": sha("t1")},
            KEEP,
            {"refs/tags/v1": (Action.UPDATE, sha("t1"), sha("t3"))},
        ),
        (
            {"refs/tags/v1": sha("t3")},
            {"refs/tags/v1": sha("t2")},
            KEEP,
            {"refs/tags/v1": (Action.SKIP_DIVERGENT, sha("t2"), sha("t3"))},
        ),
        (
            {"refs/tags/v1": sha("t3")},
            {"refs/tags/v1": sha("t2")},
            FORCE,
            {"refs/tags/v1": (Action.FORCE_UPDATE, sha("t2"), sha("t3"))},
        ),
        # 6. only on the target, keep off: deleted when merged into the default branch...
        (
            {MAIN: sha("c")},
            {MAIN: sha("c"), "refs/heads/old": sha("b")},
            FORCE,
            {"refs/heads/old": (Action.DELETE, sha("b"), None)},
        ),
        (
            {MAIN: sha("c")},
            {MAIN: sha("c"), "refs/tags/gone": sha("t1")},
            FORCE,
            {"refs/tags/gone": (Action.DELETE, sha("t1"), None)},
        ),
        # ...kept when not merged, or unknown to the source
        ({MAIN: sha("c")}, {MAIN: sha("c"), "refs/heads/wip": sha("x")}, FORCE, {}),
        ({MAIN: sha("c")}, {MAIN: sha("c"), "refs/heads/wip": sha("zz")}, FORCE, {}),
        # 6. only on the target, keep on: never deleted
        ({MAIN: sha("c")}, {MAIN: sha("c"), "refs/heads/old": sha("b")}, KEEP, {}),
    ],
)
def test_semantics_table(
    source: dict[str, str],
    target: dict[str, str],
    options: MirrorOptions,
    expected: dict[str, tuple[Action, str | None, str | None]],
) -> None:
    assert plan(source, target, options) == expected


def test_nothing_deleted_without_a_default_branch() -> None:
    target = {MAIN: sha("c"), "refs/heads/old": sha("b")}
    assert plan({MAIN: sha("c")}, target, FORCE, default=None) == {}
    # a default branch named but absent from the source's refs counts as none
    assert plan({"refs/heads/dev": sha("c")}, {"refs/heads/old": sha("a")}, FORCE, default=MAIN) == {
        "refs/heads/dev": (Action.CREATE, None, sha("c"))
    }


def test_only_heads_and_tags_are_considered() -> None:
    source = {
        "HEAD": sha("c"),
        MAIN: sha("c"),
        "refs/pull/1/head": sha("x"),
        "refs/notes/commits": sha("x"),
        "refs/tags/v1^{}": sha("b"),
        "refs/remotes/origin/main": sha("a"),
    }
    target = {"refs/pull/9/head": sha("a"), "refs/merge-requests/1/head": sha("a"), "refs/notes/x": sha("b")}
    assert plan(source, target) == {MAIN: (Action.CREATE, None, sha("c"))}


def test_malformed_ref_names_are_ignored() -> None:
    assert not is_mirrorable_ref("refs/heads/bad..name")
    assert not is_mirrorable_ref("refs/heads/x.lock")
    assert is_mirrorable_ref("refs/heads/feature/a-b_c")
    assert plan({"refs/heads/a..b": sha("c")}, {}) == {}


@pytest.mark.parametrize(
    ("filters", "regex", "branch", "matches"),
    [
        (("main",), None, "main", True),
        (("main",), None, "main2", False),
        (("release/*",), None, "release/1.0", True),
        (("release/*",), None, "release/1.0/hotfix", True),  # '*' crosses '/'
        (("release/*",), None, "xrelease/1", False),  # whole name must match
        (("*-stable",), None, "v1-stable", True),
        (("feat.*",), None, "featX", False),  # '.' is literal in a filter
        (("a", "b"), None, "b", True),
        ((), r"release/\d+", "release/12", True),
        ((), r"release/\d+", "release/12x", False),  # full match
        ((), r"main|dev", "dev", True),
        (("main",), r"dev", "dev", True),  # filters and the regex are alternatives
    ],
)
def test_branch_filters(filters: tuple[str, ...], regex: str | None, branch: str, matches: bool) -> None:
    options = MirrorOptions(branch_filters=filters, branch_regex=regex)
    assert in_scope(f"refs/heads/{branch}", compile_branch_matcher(options)) is matches


def test_branch_filter_scopes_create_update_delete_but_never_tags() -> None:
    options = MirrorOptions(branch_filters=("main", "release/*"))
    source = {
        MAIN: sha("c"),
        "refs/heads/release/1": sha("b"),
        "refs/heads/feature": sha("x"),
        "refs/tags/v1": sha("t1"),
    }
    target = {
        "refs/heads/release/1": sha("a"),
        "refs/heads/feature": sha("a"),  # out of scope: not updated
        "refs/heads/release/old": sha("a"),  # in scope, merged: deleted
        "refs/heads/merged-but-filtered": sha("a"),  # out of scope: not deleted
    }
    assert plan(source, target, options) == {
        MAIN: (Action.CREATE, None, sha("c")),
        "refs/heads/release/1": (Action.UPDATE, sha("a"), sha("b")),
        "refs/heads/release/old": (Action.DELETE, sha("a"), None),
        "refs/tags/v1": (Action.CREATE, None, sha("t1")),
    }


def test_invalid_options_are_refused() -> None:
    with pytest.raises(ValueError, match="regex"):
        MirrorOptions(branch_regex="(unclosed")
    with pytest.raises(ValueError, match="filter"):
        MirrorOptions(branch_filters=("",))


def test_divergent_refs_sorted_and_complete() -> None:
    source = {f"refs/heads/b{i}": sha("c") for i in (3, 1, 2)}
    target = {f"refs/heads/b{i}": sha("x") for i in (3, 1, 2)}
    decisions = plan_ref_updates(source, target, None, ORACLE, KEEP)
    assert divergent_refs(decisions) == ["refs/heads/b1", "refs/heads/b2", "refs/heads/b3"]


def _u(ref: str, action: Action = Action.CREATE) -> RefUpdate:
    return RefUpdate(ref=ref, action=action, new=None if action == Action.DELETE else sha("c"))


def test_batches_default_branch_first_and_bounded() -> None:
    decisions = [_u(f"refs/heads/b{i:04d}") for i in range(2500)] + [_u(MAIN)]
    batches = batch_ref_updates(decisions, MAIN, batch_size=1000)
    assert [len(b) for b in batches] == [1000, 1000, 501]
    assert batches[0][0].ref == MAIN
    assert sorted(d.ref for b in batches for d in b) == sorted(d.ref for d in decisions)


def test_batches_put_conflicting_deletions_first_and_skip_divergent() -> None:
    decisions = [
        _u("refs/heads/a/b"),
        _u("refs/heads/a", Action.DELETE),
        _u("refs/heads/zzz", Action.DELETE),
        _u(MAIN),
        RefUpdate(ref="refs/heads/div", action=Action.SKIP_DIVERGENT, old=sha("x"), new=sha("c")),
    ]
    batches = batch_ref_updates(decisions, MAIN)
    assert [[d.ref for d in b] for b in batches] == [
        ["refs/heads/a"],
        [MAIN, "refs/heads/a/b", "refs/heads/zzz"],
    ]


def test_batch_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        batch_ref_updates([], None, batch_size=0)


class DeltaOnly(DagOracle):
    """An oracle whose full answer would cost a fetch: the planner must not ask it only to label."""

    def is_ancestor(self, ancestor: str, descendant: str) -> bool | None:
        raise AssertionError(f"asked to fetch for {ancestor} -> {descendant}")

    def proves_ancestor(self, ancestor: str, descendant: str) -> bool:
        return DagOracle.is_ancestor(self, ancestor, descendant) is True


def test_without_keep_divergent_refs_updates_are_labelled_from_what_is_at_hand() -> None:
    oracle = DeltaOnly(PARENTS, TAGS)
    decisions = plan_ref_updates(
        {MAIN: sha("c"), "refs/heads/side": sha("x"), "refs/tags/v": sha("t3")},
        {MAIN: sha("a"), "refs/heads/side": sha("c"), "refs/tags/v": sha("t1")},
        MAIN,
        oracle,
        FORCE,
    )
    assert {d.ref: d.action for d in decisions} == {
        MAIN: Action.UPDATE,
        "refs/heads/side": Action.FORCE_UPDATE,
        "refs/tags/v": Action.UPDATE,
    }


def test_ref_name_check_agrees_with_git_check_ref_format_rules() -> None:
    names = [
        "refs/heads/main",
        "refs/heads/a/b",
        "refs/tags/v1.0",
        "refs/heads/.hidden",
        "refs/heads/a..b",
        "refs/heads/a.lock",
        "refs/heads/a.lock/b",
        "refs/heads/x.locked",
        "refs/heads/a/",
        "refs/heads/a.",
        "refs/heads//a",
        "refs/heads/a@{1}",
        "refs/heads/@",
        "refs/heads/a b",
        "refs/heads/a~1",
        "refs/heads/a^",
        "refs/heads/a:b",
        "refs/heads/a?",
        "refs/heads/a*",
        "refs/heads/a[",
        "refs/heads/a\\\\b",
        "refs/heads/\\x7f",
        "refs/heads/tab\\there",
        "refs/tags/v1^{}",
        "refs/heads/ünïcode",
        "refs/heads/a/.b",
    ]
    rng = random.Random(13)
    alphabet = "ab./@{}~^:?*[\\\\ \\x01\\x7fé-_lock"
    names += [
        "refs/heads/" + "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 8))) for _ in range(3000)
    ]
    for name in names:
        expected = check_ref_format(Ref(name.encode("utf-8", "surrogateescape")))
        assert is_mirrorable_ref(name) is expected, name
