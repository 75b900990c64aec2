"""Table tests of splitting history into pushes, and of the size/seconds syntax (pure, no git)."""

from __future__ import annotations

from typing import Any

import pytest

from gitmirror.errors import UsageError
from gitmirror.mirror.chunking import StepSizer, descendants_suffix, first_parent_chain, mark_known
from gitmirror.mirror.limits import (
    GIB,
    command_bytes,
    default_max_push_bytes,
    format_size,
    human_size,
    parse_seconds,
    parse_size,
)

# a <- b <- c <- m (merge of c and y) <- d;  b <- x <- y (side branch)
PARENTS: dict[bytes, tuple[bytes, ...]] = {
    b"a": (),
    b"b": (b"a",),
    b"c": (b"b",),
    b"x": (b"b",),
    b"y": (b"x",),
    b"m": (b"c", b"y"),
    b"d": (b"m",),
}


def parents(oid: bytes) -> tuple[bytes, ...] | None:
    return PARENTS.get(oid)


@pytest.mark.parametrize(
    ("tip", "known", "chain"),
    [
        (b"d", set(), [b"a", b"b", b"c", b"m", b"d"]),  # first parents only: x, y are not values
        (b"d", {b"b"}, [b"c", b"m", b"d"]),
        (b"d", {b"d"}, []),
        (b"y", {b"a"}, [b"b", b"x", b"y"]),
        (b"zz", set(), []),  # not in the graph
    ],
)
def test_first_parent_chain(tip: bytes, known: set[bytes], chain: list[bytes]) -> None:
    assert first_parent_chain(tip, parents, known) == chain


@pytest.mark.parametrize(
    ("tips", "before", "after"),
    [
        ([b"m"], set(), {b"a", b"b", b"c", b"x", b"y", b"m"}),
        ([b"y"], {b"b"}, {b"b", b"x", b"y"}),  # stops at what is known
        ([b"zz"], set(), set()),
    ],
)
def test_mark_known(tips: list[bytes], before: set[bytes], after: set[bytes]) -> None:
    known = set(before)
    mark_known(tips, parents, known)
    assert known == after


def test_descendants_suffix_is_the_fast_forward_part() -> None:
    chain = [b"a", b"b", b"c", b"m", b"d"]
    reach = {b"m": {b"y", b"x"}, b"d": {b"y", b"x"}}
    # the ref is at y (a side commit): only m and d descend from it
    assert descendants_suffix(chain, lambda c: b"y" in reach.get(c, set())) == [b"m", b"d"]
    assert descendants_suffix(chain, lambda c: True) == chain
    assert descendants_suffix(chain, lambda c: False) == []


@pytest.mark.parametrize(
    "steps",
    [
        # (event, argument, the next step's size)
        [("first", 100, 25), ("first", 3, 1)],  # nothing fit yet: a quarter of the chain
        [("overflow", 100, 50), ("overflow", 50, 25), ("overflow", 1, 1)],
        # 10 commits took 400 bytes of a 1000-byte budget: aim at 80% -> 20 commits, at most what is left
        [("fit", (10, 400), None), ("after_fit", 50, 20), ("after_fit", 5, 5), ("first", 50, 20)],
        # the latest rate counts: 40/commit, then 160/commit -> 5 commits, but at most 2 x the last step (1)
        [("fit", (10, 400), None), ("fit", (1, 160), None), ("after_fit", 50, 2)],
        [("fit", (10, 400), None), ("fit", (3, 480), None), ("after_fit", 50, 5)],
        # growth is capped: 2 commits took 10 bytes -> at most 2 x 2 commits next
        [("fit", (2, 10), None), ("after_fit", 500, 4)],
        # a commit larger than the budget still gives one commit per step
        [("fit", (1, 5000), None), ("after_fit", 50, 1), ("first", 9, 1)],
    ],
)
def test_step_sizer(steps: list[tuple[str, Any, int | None]]) -> None:
    sizer = StepSizer(budget=1000)
    for event, arg, want in steps:
        if event == "first":
            assert sizer.first(arg) == want
        elif event == "overflow":
            assert sizer.after_overflow(arg) == want
        elif event == "fit":
            commits, size = arg
            sizer.fitted(commits, size)
        else:
            assert sizer.after_fit(arg) == want


@pytest.mark.parametrize(
    ("text", "value"),
    [("1", 1), ("1000", 1000), ("15M", 15 * 1024**2), ("15m", 15 * 1024**2), ("2K", 2048), ("2G", 2 * GIB)],
)
def test_parse_size(text: str, value: int) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["12Q", "0", "0M", "-1", "", "1.5M", "M", "1 K B", "1KB"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(UsageError):
        parse_size(text)


@pytest.mark.parametrize(("text", "value"), [("2", 2.0), ("0.5", 0.5), ("900", 900.0)])
def test_parse_seconds(text: str, value: float) -> None:
    assert parse_seconds(text) == value


@pytest.mark.parametrize("text", ["-1", "0", "0.0", "abc", "", "1e3", "inf", "nan"])
def test_parse_seconds_rejects(text: str) -> None:
    with pytest.raises(UsageError):
        parse_seconds(text)


@pytest.mark.parametrize(
    ("value", "text"), [(15 * 1024**2, "15M"), (2048, "2K"), (1000, "1000"), (GIB, "1G")]
)
def test_format_size(value: int, text: str) -> None:
    assert format_size(value) == text


def test_human_size_names_the_bytes() -> None:
    assert human_size(200_606) == "195.9 KiB (200,606 bytes)"
    assert human_size(12) == "12 bytes"


@pytest.mark.parametrize(
    ("host", "limit"),
    [
        ("github.com", 2 * GIB - 64 * 1024**2),
        ("GitHub.com", 2 * GIB - 64 * 1024**2),
        ("gitlab.com", None),
        (None, None),
    ],
)
def test_default_limits(host: str | None, limit: int | None) -> None:
    assert default_max_push_bytes(host) == limit


def test_command_bytes_grow_with_the_refs() -> None:
    assert command_bytes(["refs/heads/a"]) < command_bytes(["refs/heads/a", "refs/heads/b"])
    assert command_bytes([]) > 0
