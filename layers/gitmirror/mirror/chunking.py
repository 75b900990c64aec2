"""Splitting what the target lacks into pushes under a size limit (pure: no I/O, no git).

A ref's history is sent oldest first along its first-parent chain: each push moves the ref to a later
commit of that chain (an ancestor of its final value), so every intermediate value is a real commit of
the source and no temporary ref is needed. The source computes each push's pack from the target's
tips (`have`s), so a push carries only that step's new objects, and sizes are learnt as pushes go
(`StepSizer`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

Parents = Callable[[bytes], "tuple[bytes, ...] | None"]  # None: the commit is not in the graph


def first_parent_chain(tip: bytes, parents: Parents, known: set[bytes]) -> list[bytes]:
    """`tip`'s first-parent chain down to (not including) the first commit the target has, oldest first."""
    chain: list[bytes] = []
    seen: set[bytes] = set()
    oid: bytes | None = tip
    while oid is not None and oid not in known and oid not in seen:
        found = parents(oid)
        if found is None:
            break  # not a commit of the graph (the graph's edge)
        chain.append(oid)
        seen.add(oid)
        oid = found[0] if found else None
    chain.reverse()
    return chain


def mark_known(tips: Iterable[bytes], parents: Parents, known: set[bytes]) -> None:
    """Add every commit reachable from `tips` to `known` (walks stop at commits already known)."""
    todo = [t for t in tips if t not in known]
    while todo:
        oid = todo.pop()
        if oid in known:
            continue
        found = parents(oid)
        if found is None:
            continue
        known.add(oid)
        todo.extend(p for p in found if p not in known)


def descendants_suffix(chain: list[bytes], descends: Callable[[bytes], bool]) -> list[bytes]:
    """The part of `chain` whose commits descend from the ref's current value (fast-forwards only).

    Along a first-parent chain, once a commit descends from it every later one does: a binary search."""
    low, high = 0, len(chain)
    while low < high:
        mid = (low + high) // 2
        if descends(chain[mid]):
            high = mid
        else:
            low = mid + 1
    return chain[low:]


@dataclass
class StepSizer:
    """How many chain commits the next push should take, from the bytes per commit just seen.

    A step that did not fit is retried with half of its commits; after a push that fit, the next step
    aims at `fill` of the budget at the rate of that push (a history's density drifts, so the latest
    rate is the best guess), growing at most `growth` times (twice: steps overlap, so one more step
    costs little, while a step that overflows costs a download of the budget on the run's path). It
    never asks for fewer than one commit.
    Before anything has fit, a ref's first step takes a quarter of its chain: the whole difference was
    already found too large for one push.
    """

    budget: int
    fill: float = 0.8
    growth: int = 2
    bytes_per_commit: float | None = None
    last: int = 0  # commits of the last step that fit

    def first(self, commits: int) -> int:
        if self.bytes_per_commit is None:
            return max(1, commits // 4)
        return self._at_rate(commits)

    def fitted(self, commits: int, size: int) -> None:
        self.bytes_per_commit = size / max(commits, 1)
        self.last = commits

    def after_fit(self, commits_left: int) -> int:
        return self._at_rate(commits_left)

    def after_overflow(self, tried: int) -> int:
        return max(1, tried // 2)

    def _at_rate(self, commits_left: int) -> int:
        rate = max(self.bytes_per_commit or 1.0, 1.0)
        aim = int(self.fill * self.budget / rate)
        if self.last:
            aim = min(aim, self.growth * self.last)
        return max(1, min(commits_left, aim))
