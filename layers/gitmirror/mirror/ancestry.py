"""Ancestry answers for the planner: from the delta's commits (read from its pack), else a commit graph.

Generation numbers (1 + the longest parent chain) let a reachability walk stop as soon as it is below
the commit looked for, so each question costs a fraction of the history, and the numbers are computed
once per commit per run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import IO, Protocol

from dulwich.object_format import DEFAULT_OBJECT_FORMAT
from dulwich.objects import Commit, ObjectID, ShaFile, Tag
from dulwich.pack import OFS_DELTA, REF_DELTA, PackData, apply_delta

_COMMIT, _TAG = Commit.type_num, Tag.type_num


class ObjectLookup(Protocol):
    """What the graph reads: objects by hex id, KeyError when absent (an object store, or a dict)."""

    def __getitem__(self, sha: ObjectID, /) -> ShaFile: ...


def commits_in_pack(file: IO[bytes]) -> dict[ObjectID, ShaFile] | None:
    """The commits and tags of a pack by id, read in one pass without resolving trees or blobs.

    Indexing a pack resolves and hashes every object; ancestry needs only commits (and tags, to peel),
    so deltas are applied only along chains that end in one. None when a delta's base cannot be placed
    (a ref-delta onto a tree or blob, which this pass does not hash, or onto a later object): index the
    pack instead. ValueError when the pack is damaged.
    """
    data = PackData("fetched.pack", DEFAULT_OBJECT_FORMAT, file=file)
    damage: str | None = None
    try:
        found = _scan_commits(data)
    except Exception as exc:  # noqa: BLE001  (whatever a damaged pack makes the reader raise)
        damage = f"{type(exc).__name__}: {exc}"
        found = None
    # closed only now: the failure's traceback, which holds views into the mapping, is gone
    data.close()
    if damage is not None:
        raise ValueError(f"damaged pack ({damage})")
    return found


def _scan_commits(data: PackData) -> dict[ObjectID, ShaFile] | None:
    found: dict[ObjectID, ShaFile] = {}
    type_at: dict[int, int] = {}  # offset -> resolved type, for every object
    content_at: dict[int, list[bytes]] = {}  # offset -> content, commits and tags only
    offset_of: dict[bytes, int] = {}  # binary id -> offset, commits and tags only
    for entry in data.iter_unpacked():
        offset = entry.offset
        assert offset is not None
        kind = entry.pack_type_num
        if kind in (OFS_DELTA, REF_DELTA):
            if kind == OFS_DELTA:
                assert isinstance(entry.delta_base, int)
                base: int | None = offset - entry.delta_base
            else:
                assert isinstance(entry.delta_base, bytes)
                base = offset_of.get(entry.delta_base)
            if base is None or base not in type_at:
                return None  # a base not read (yet): only a full index can place it
            kind = type_at[base]
            if kind in (_COMMIT, _TAG):
                chunks = apply_delta(content_at[base], entry.decomp_chunks)
        else:
            chunks = entry.decomp_chunks
        type_at[offset] = kind
        if kind in (_COMMIT, _TAG):
            obj = ShaFile.from_raw_chunks(kind, chunks)
            found[obj.id] = obj
            content_at[offset] = chunks
            offset_of[obj.sha().digest()] = offset
    return found


class CommitGraph:
    """Implements planner.AncestryOracle over a dulwich object store (commits only are needed).

    `complete=False` is for a store holding only part of the history (the delta a source sent because
    the target lacked it): a walk that reaches the store's edge without finding the ancestor answers
    None (unknown) instead of False, and generation numbers are not used for pruning.
    """

    def __init__(self, store: ObjectLookup, *, complete: bool = True) -> None:
        self._store = store
        self.complete = complete
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
        if a is None and not self.complete:
            # The ancestor is usually on the target already, hence not in the delta: look for its id
            # among the delta's parents (an absent annotated tag never matches and escalates).
            a = ancestor.encode("ascii")
        d = self.peel(descendant)
        if a is None or d is None:
            return None
        if a == d:
            return True
        floor = self.generation(a) if self.complete else 0
        seen = {d}
        todo = [d]
        reached_edge = False
        while todo:
            oid = todo.pop()
            for parent in self._parents_of(oid) or ():
                if parent == a:
                    return True
                if parent in seen:
                    continue
                if self._parents_of(parent) is None:
                    reached_edge = True
                    continue
                seen.add(parent)
                if not self.complete or self.generation(parent) > floor:
                    todo.append(parent)
        return None if reached_edge and not self.complete else False

    def proves_ancestor(self, ancestor: str, descendant: str) -> bool:
        return self.is_ancestor(ancestor, descendant) is True


class LayeredOracle:
    """Ask the partial graph first; load the whole commit graph only when it cannot answer.

    Both are built on first use: a run that asks no ancestry question (a cold mirror) reads nothing.
    """

    def __init__(
        self,
        load_partial: Callable[[], CommitGraph],
        load_complete: Callable[[], CommitGraph],
        known_to_source: Callable[[], set[str] | None] = lambda: None,
    ) -> None:
        self._load_partial = load_partial
        self._load = load_complete
        self._known = known_to_source
        self.known: set[str] | None = None
        self._asked = False
        self.partial: CommitGraph | None = None
        self.complete: CommitGraph | None = None

    def source_lacks(self, oid: str) -> bool:
        """True when the source said it does not have `oid` (then it is in none of its histories).

        One negotiation round answers for every target tip at once, before any graph is fetched."""
        if not self._asked:
            self._asked = True
            self.known = self._known()
        return self.known is not None and oid not in self.known

    def is_ancestor(self, ancestor: str, descendant: str) -> bool | None:
        if self.partial is None:
            self.partial = self._load_partial()
        answer = self.partial.is_ancestor(ancestor, descendant)
        if answer is not None:
            return answer
        if self.source_lacks(ancestor):
            return False  # a commit the source does not have cannot be in its history
        if self.complete is None:
            self.complete = self._load()
        return self.complete.is_ancestor(ancestor, descendant)

    def proves_ancestor(self, ancestor: str, descendant: str) -> bool:
        """From the delta alone: a fast-forward's new commits are in it, down to the old tip."""
        if self.partial is None:
            self.partial = self._load_partial()
        return self.partial.is_ancestor(ancestor, descendant) is True
