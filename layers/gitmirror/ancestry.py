"""Ancestry answers for the planner, from the commits fetched into the run's object store.

Generation numbers (1 + the longest parent chain) let a reachability walk stop as soon as it is below
the commit looked for, so each question costs a fraction of the history, and the numbers are computed
once per commit per run.
"""

from __future__ import annotations

from dulwich.object_store import BaseObjectStore
from dulwich.objects import Commit, ObjectID, Tag


class CommitGraph:
    """Implements planner.AncestryOracle over a dulwich object store (commits only are needed)."""

    def __init__(self, store: BaseObjectStore) -> None:
        self._store = store
        self._parents: dict[bytes, tuple[bytes, ...]] = {}
        self._generation: dict[bytes, int] = {}

    def peel(self, sha: str) -> bytes | None:
        """The commit an id peels to, or None when the object (or what it points to) is unknown."""
        oid = sha.encode("ascii")
        for _ in range(64):  # tags of tags; a loop this deep is not a real repository
            try:
                obj = self._store[ObjectID(oid)]
            except KeyError:
                return None
            if isinstance(obj, Tag):
                oid = obj.object[1]
                continue
            return oid if isinstance(obj, Commit) else None
        return None

    def _parents_of(self, oid: bytes) -> tuple[bytes, ...] | None:
        cached = self._parents.get(oid)
        if cached is not None:
            return cached
        try:
            obj = self._store[ObjectID(oid)]
        except KeyError:
            return None
        if not isinstance(obj, Commit):
            return None
        parents = tuple(obj.parents)
        self._parents[oid] = parents
        return parents

    def generation(self, oid: bytes) -> int:
        """Generation number; commits whose parents are missing (shallow edge) count as roots."""
        if oid in self._generation:
            return self._generation[oid]
        stack = [oid]
        while stack:
            top = stack[-1]
            if top in self._generation:
                stack.pop()
                continue
            parents = [p for p in (self._parents_of(top) or ()) if self._parents_of(p) is not None]
            pending = [p for p in parents if p not in self._generation]
            if pending:
                stack.extend(pending)
                continue
            self._generation[top] = 1 + max((self._generation[p] for p in parents), default=0)
            stack.pop()
        return self._generation[oid]

    def is_ancestor(self, ancestor: str, descendant: str) -> bool | None:
        a = self.peel(ancestor)
        d = self.peel(descendant)
        if a is None or d is None:
            return None
        if a == d:
            return True
        floor = self.generation(a)
        seen = {d}
        todo = [d]
        while todo:
            oid = todo.pop()
            for parent in self._parents_of(oid) or ():
                if parent == a:
                    return True
                if parent in seen or self._parents_of(parent) is None:
                    continue
                seen.add(parent)
                if self.generation(parent) > floor:
                    todo.append(parent)
        return False
