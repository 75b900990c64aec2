"""Ancestry answers for the planner: from the delta's commits (read from its pack), else a commit graph.

Generation numbers (1 + the longest parent chain) let a reachability walk stop as soon as it is below
the commit looked for, so each question costs a fraction of the history, and the numbers are computed
once per commit per run.
"""

from __future__ import annotations

import bisect
import hashlib
import os
import zlib
from array import array
from collections.abc import Callable, Iterator, Mapping
from typing import IO, Protocol

from dulwich.objects import Blob, Commit, ObjectID, ShaFile, Tag, Tree
from dulwich.pack import OFS_DELTA, REF_DELTA, apply_delta

_COMMIT, _TAG = Commit.type_num, Tag.type_num
_TYPE_NAMES = {cls.type_num: cls.type_name for cls in (Commit, Tree, Blob, Tag)}
_BLOCK = 256 * 1024  # reads and inflated pieces: what a blob costs in memory, whatever its size
# A commit or tag larger than this is taken for damage (git's own are kilobytes).
MAX_KEPT_OBJECT = 64 * 1024 * 1024


class ObjectLookup(Protocol):
    """What the graph reads: objects by hex id, KeyError when absent (an object store, or a dict)."""

    def __getitem__(self, sha: ObjectID, /) -> ShaFile: ...


def commits_in_pack(file: IO[bytes]) -> PackCommits:
    """The commits and tags of a pack by id, read in one pass; nothing else is kept.

    Indexing a pack resolves and hashes every object, holding each whole in memory (a 1 GiB blob
    takes 1 GiB). Ancestry needs only commits (and tags, to peel): every other object is inflated in
    bounded pieces only to find where it ends, and deltas are applied only along chains that start
    at a commit or a tag. A delta whose base is not placed (a ref-delta onto a tree or blob, which is
    not hashed, or onto a later object) is skipped: were it a commit, the partial graph would not
    know it and answer "unknown" there, never a wrong answer. ValueError when the pack is damaged.
    """
    try:
        return _scan_commits(_PackReader(file))
    except ValueError:
        raise
    except (zlib.error, IndexError, KeyError, OverflowError, AssertionError) as exc:
        raise ValueError(f"damaged pack ({type(exc).__name__}: {exc})") from None


class PackCommits(Mapping[ObjectID, ShaFile]):
    """Commits and tags by hex id, kept as their raw bytes and parsed when asked for."""

    def __init__(self) -> None:
        self._raw: dict[bytes, tuple[int, bytes]] = {}

    def add(self, kind: int, raw: bytes) -> bytes:
        oid = hashlib.sha1(_object_header(kind, len(raw)) + raw, usedforsecurity=False).hexdigest().encode()
        self._raw[oid] = (kind, raw)
        return oid

    def __getitem__(self, oid: ObjectID, /) -> ShaFile:
        kind, raw = self._raw[oid]
        return ShaFile.from_raw_string(kind, raw, sha=oid)

    def commit_parents(self, oid: bytes) -> tuple[bytes, ...] | None:
        """A commit's parent ids read straight from its header lines (`tree`, then one `parent` line
        each: the canonical form), without parsing the whole commit; None when `oid` is not a commit
        here. A commit of another shape is parsed by dulwich."""
        entry = self._raw.get(oid)
        if entry is None or entry[0] != _COMMIT:
            return None
        raw = entry[1]
        if not raw.startswith(b"tree "):
            commit = ShaFile.from_raw_string(_COMMIT, raw, sha=ObjectID(oid))
            assert isinstance(commit, Commit)
            return tuple(commit.parents)
        parents: list[bytes] = []
        pos = raw.find(b"\n") + 1
        while raw.startswith(b"parent ", pos):
            end = raw.find(b"\n", pos)
            if end < 0:
                break
            parents.append(raw[pos + 7 : end])
            pos = end + 1
        return tuple(parents)

    def __iter__(self) -> Iterator[ObjectID]:
        return iter(ObjectID(oid) for oid in self._raw)

    def __len__(self) -> int:
        return len(self._raw)


def _object_header(kind: int, size: int) -> bytes:
    return b"%s %d\0" % (_TYPE_NAMES[kind], size)


class _PackReader:
    """Sequential reads of a pack file in bounded blocks (positional: the writer's offset is left alone)."""

    def __init__(self, file: IO[bytes]) -> None:
        self._fd = file.fileno()
        self._file_offset = 0  # where `_buf` starts in the file
        self._buf = memoryview(b"")
        self._pos = 0

    @property
    def offset(self) -> int:
        return self._file_offset + self._pos

    def _fill(self) -> memoryview:
        if self._pos >= len(self._buf):
            self._file_offset += len(self._buf)
            self._buf = memoryview(os.pread(self._fd, _BLOCK, self._file_offset))
            self._pos = 0
            if not self._buf:
                raise ValueError("damaged pack (truncated)")
        return self._buf[self._pos :]

    def read(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            view = self._fill()[: n - len(out)]
            out += view
            self._pos += len(view)
        return bytes(out)

    def byte(self) -> int:
        value = self._fill()[0]
        self._pos += 1
        return value

    def inflate(self, size: int, *, keep: bool) -> bytes:
        """One zlib stream of `size` bytes inflated; the output is kept only when `keep` (else it is
        produced in bounded pieces and dropped, to find where the stream ends)."""
        if keep and size > MAX_KEPT_OBJECT:
            raise ValueError(f"damaged pack (a commit or tag of {size:,} bytes)")
        stream = zlib.decompressobj()
        out = bytearray()
        produced = 0
        while not stream.eof:
            view = self._fill()
            piece = stream.decompress(view, _BLOCK)
            # at the end of the stream, what follows it is in unused_data (unconsumed_tail may say
            # the same bytes again); before, unconsumed_tail is what the output limit left unread
            self._pos += len(view) - len(stream.unused_data if stream.eof else stream.unconsumed_tail)
            produced += len(piece)
            if produced > size:
                raise ValueError("damaged pack (an object larger than its header says)")
            if keep:
                out += piece
        if produced != size:
            raise ValueError("damaged pack (an object smaller than its header says)")
        return bytes(out)


def _scan_commits(reader: _PackReader) -> PackCommits:
    header = reader.read(12)
    if header[:4] != b"PACK":
        raise ValueError("damaged pack (no PACK header)")
    count = int.from_bytes(header[8:12], "big")
    found = PackCommits()
    offsets = array("Q")  # every object's offset, ascending ...
    kinds = array("B")  # ... and its resolved type (0: not placed)
    content_at: dict[int, bytes] = {}  # offset -> raw content, commits and tags only
    offset_of: dict[bytes, int] = {}  # binary id -> offset, commits and tags only
    for _ in range(count):
        offset = reader.offset
        byte = reader.byte()
        kind, size, shift = (byte >> 4) & 7, byte & 15, 4
        while byte & 0x80:
            byte = reader.byte()
            size |= (byte & 0x7F) << shift
            shift += 7
        base: int | None = None
        if kind == OFS_DELTA:
            byte = reader.byte()
            distance = byte & 0x7F
            while byte & 0x80:
                byte = reader.byte()
                distance = ((distance + 1) << 7) | (byte & 0x7F)
            base = offset - distance
        elif kind == REF_DELTA:
            base = offset_of.get(reader.read(20))
        if kind in (OFS_DELTA, REF_DELTA):
            resolved = _kind_at(offsets, kinds, base) if base is not None else 0
            wanted = resolved in (_COMMIT, _TAG)
            delta = reader.inflate(size, keep=wanted)
            if wanted:
                assert base is not None
                raw = b"".join(apply_delta(content_at[base], delta))
            kind = resolved
        else:
            wanted = kind in (_COMMIT, _TAG)
            raw = reader.inflate(size, keep=wanted)
        offsets.append(offset)
        kinds.append(kind)
        if wanted:
            oid = found.add(kind, raw)
            content_at[offset] = raw
            offset_of[bytes.fromhex(oid.decode())] = offset
    return found


def _kind_at(offsets: array[int], kinds: array[int], offset: int) -> int:
    i = bisect.bisect_left(offsets, offset)
    if i == len(offsets) or offsets[i] != offset:
        raise ValueError("damaged pack (a delta base that is not an object)")
    return kinds[i]


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
            obj = self._object(oid)
            if isinstance(obj, Tag):
                oid = obj.object[1]
                continue
            return oid if isinstance(obj, Commit) else None
        return None

    def named_object(self, sha: str) -> bytes:
        """The id `sha` names once the tags the store holds are followed (it may be absent itself)."""
        oid = sha.encode("ascii")
        for _ in range(64):
            obj = self._object(oid)
            if not isinstance(obj, Tag):
                return oid
            oid = obj.object[1]
        return oid

    def _object(self, oid: bytes) -> ShaFile | None:
        """The store's object of that id, or None."""
        try:
            return self._store[ObjectID(oid)]
        except KeyError:
            return None

    def _parents_of(self, oid: bytes) -> tuple[bytes, ...] | None:
        cached = self._parents.get(oid)
        if cached is not None:
            return cached
        if isinstance(self._store, PackCommits):
            parents = self._store.commit_parents(oid)
        else:
            obj = self._object(oid)
            parents = tuple(obj.parents) if isinstance(obj, Commit) else None
        if parents is not None:
            self._parents[oid] = parents
        return parents

    def parents(self, oid: bytes) -> tuple[bytes, ...] | None:
        """A commit's parents (hex ids), or None when `oid` is not a commit of this store."""
        return self._parents_of(oid)

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


# Ancestry questions answered by a fetch of just the commits between the two tips, per run; past them
# the whole commit graph is fetched once (cheaper than many ranges when a run asks many questions).
MAX_RANGE_FETCHES = 4


def range_answer(graph: CommitGraph, ancestor: str, descendant: str) -> bool:
    """Whether commit `ancestor` is reachable from `descendant`, from `graph` = the commits a source sent
    for `want descendant` + `have ancestor`: everything reachable from `descendant` and not from
    `ancestor`. Exact: if `ancestor` is reachable, every commit on the path down to it (itself aside) is
    not reachable from it, so one of them lists it as a parent. A source that lacks `ancestor` ignores
    the have and sends the whole history, where it is not found either."""
    named = graph.named_object(descendant)
    if named == ancestor.encode("ascii"):
        return True
    if graph.peel(descendant) is None:
        # the commit `descendant` names did not come: it is within `ancestor`'s history, not above it
        return False
    return graph.is_ancestor(ancestor, descendant) is True


class LayeredOracle:
    """Ask the partial graph first; then fetch the commits between the two tips (a few questions per
    run); load the whole commit graph only past those.

    All are built on first use: a run that asks no ancestry question (a cold mirror) reads nothing.
    """

    def __init__(
        self,
        load_partial: Callable[[], CommitGraph],
        load_complete: Callable[[], CommitGraph],
        known_to_source: Callable[[], set[str] | None] = lambda: None,
        target_peeled: Mapping[str, str] | None = None,
        load_range: Callable[[str, str], CommitGraph] | None = None,
    ) -> None:
        # annotated tag id -> the commit it peels to, from the target's listing: labels an updated
        # tag whose old tag object the delta does not hold, and names the commit a range is fetched
        # down to (a target-only tag the source lacks is still kept, as in Gitaly: source_lacks)
        self._target_peeled = target_peeled or {}
        self._load_partial = load_partial
        self._load = load_complete
        self._known = known_to_source
        self._load_range = load_range
        self.ranges = 0  # range fetches made
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
        if self.complete is None and self._load_range is not None and self.ranges < MAX_RANGE_FETCHES:
            self.ranges += 1
            commit = self._target_peeled.get(ancestor, ancestor)
            return range_answer(self._load_range(commit, descendant), commit, descendant)
        if self.complete is None:
            self.complete = self._load()
        return self.complete.is_ancestor(ancestor, descendant)

    def proves_ancestor(self, ancestor: str, descendant: str) -> bool:
        """From the delta alone: a fast-forward's new commits are in it, down to the old tip."""
        if self.partial is None:
            self.partial = self._load_partial()
        ancestor = self._target_peeled.get(ancestor, ancestor)
        return self.partial.is_ancestor(ancestor, descendant) is True
