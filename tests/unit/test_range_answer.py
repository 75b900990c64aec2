"""The range answer: from the commits a source sends for `want D` + `have A`, whether A is below D.

The stores here hold what such a fetch brings: every commit reachable from D and not from A.
"""

from __future__ import annotations

from dulwich.objects import Commit, ShaFile, Tag, Tree

from gitmirror.mirror.ancestry import CommitGraph, range_answer

TREE = Tree().id


def _commit(parents: list[bytes], n: int) -> Commit:
    c = Commit()
    c.tree = TREE
    c.parents = parents
    c.author = c.committer = b"T <t@example.invalid>"
    c.author_time = c.commit_time = 1_600_000_000 + n
    c.author_timezone = c.commit_timezone = 0
    c.message = b"c%d\n" % n
    return c


def _history() -> dict[str, Commit]:
    """root - a - b - m (merge of b and side) - d ; side forks from a; fork is a lone side line."""
    root = _commit([], 0)
    a = _commit([root.id], 1)
    b = _commit([a.id], 2)
    side = _commit([a.id], 3)
    m = _commit([b.id, side.id], 4)
    d = _commit([m.id], 5)
    fork = _commit([a.id], 6)
    return {k: v for k, v in locals().items() if isinstance(v, Commit)}


def _reachable(commits: dict[str, Commit], tip: str) -> set[bytes]:
    by_id = {c.id: c for c in commits.values()}
    seen, todo = set(), [commits[tip].id]
    while todo:
        oid = todo.pop()
        if oid not in seen:
            seen.add(oid)
            todo.extend(by_id[oid].parents)
    return seen


def _range(commits: dict[str, Commit], want: str, have: str | None) -> CommitGraph:
    """What the source sends: reachable from `want`, not from `have` (all of it when it lacks `have`)."""
    excluded = _reachable(commits, have) if have in commits else set()
    store: dict[bytes, ShaFile] = {
        c.id: c for c in commits.values() if c.id in _reachable(commits, want) - excluded
    }
    return CommitGraph(store, complete=False)


def test_merged_through_a_merge_commits_second_parent() -> None:
    h = _history()
    side, d = h["side"].id.decode(), h["d"].id.decode()
    assert range_answer(_range(h, "d", "side"), side, d) is True


def test_on_the_first_parent_line() -> None:
    h = _history()
    assert range_answer(_range(h, "d", "a"), h["a"].id.decode(), h["d"].id.decode()) is True


def test_not_merged_a_fork_of_its_own() -> None:
    h = _history()
    assert range_answer(_range(h, "d", "fork"), h["fork"].id.decode(), h["d"].id.decode()) is False


def test_ahead_of_the_descendant_nothing_comes() -> None:
    h = _history()
    graph = _range(h, "b", "d")  # b is within d's history: an empty pack
    assert range_answer(graph, h["d"].id.decode(), h["b"].id.decode()) is False


def test_the_same_commit_and_a_tag_naming_it() -> None:
    h = _history()
    d = h["d"].id.decode()
    assert range_answer(_range(h, "d", "d"), d, d) is True
    tag = Tag()
    tag.object = (Commit, h["d"].id)
    tag.name = b"v1"
    tag.tagger = b"T <t@example.invalid>"
    tag.tag_time, tag.tag_timezone = 1_600_000_100, 0
    tag.message = b"v1\n"
    store: dict[bytes, ShaFile] = {tag.id: tag}  # the tag came, its commit is the have
    assert range_answer(CommitGraph(store, complete=False), d, tag.id.decode()) is True


def test_a_have_the_source_lacks_brings_the_whole_history_and_a_no() -> None:
    h = _history()
    unknown = "1" * 40
    assert range_answer(_range(h, "d", None), unknown, h["d"].id.decode()) is False
