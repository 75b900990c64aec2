"""Git LFS pointer files, found in the pack a run sends without inflating its large objects for it.

A pointer is a small blob (git-lfs never writes one over 1 KB) that starts with the spec's version line
and names the object by sha256 and size. Each pack entry's header gives the inflated size before the
data, so only entries of at most 1 KB are inflated and read; larger ones are jumped over with the
pack's index, or else inflated through a fixed 64 KiB window only to find where they end (never held
in memory).

A thin pack (deltas onto objects only the target has) can hold a pointer as a delta onto an older
pointer the pack leaves out. Without its base such a delta cannot be read, only ruled out: by its sizes
(a pointer is 126 to 1,024 bytes, and so is the pointer it was deltified against) and by the bytes it
inserts (a pointer is ASCII). The rest are reported as pending, with the ids of the bases they need:
small blobs, fetched by id afterwards.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from dulwich.objects import Blob
from dulwich.pack import OFS_DELTA, REF_DELTA, apply_delta

# git-lfs: "pointer files must be < 1024 bytes"; blobs above this are never pointers
POINTER_MAX_SIZE = 1024
_VERSIONS = (b"version https://git-lfs.github.com/spec/v1\n", b"version https://hawser.git-scm.com/spec/v1\n")
_OID = re.compile(r"sha256:([0-9a-f]{64})")
_WINDOW = 64 * 1024
_BUFFER = 1024 * 1024
_HEADER_MAX = 32  # type/size varint + an offset-delta's base varint; a ref-delta adds the base id
_BLOB = Blob.type_num
# the shortest pointer: the version line, "oid sha256:" and 64 hex digits, "size 0"
POINTER_MIN_SIZE = len(_VERSIONS[0]) + len("oid sha256:\n") + 64 + len("size 0\n")
_NOT_ASCII = re.compile(rb"[\x80-\xff]")

ReadAt = Callable[[int, int], bytes]  # (offset, length) -> at most that many bytes of the pack


@dataclass(frozen=True, order=True)
class LfsPointer:
    """One LFS object as a pointer names it: sha256 (hex) and size in bytes."""

    oid: str
    size: int


def parse_pointer(data: bytes) -> LfsPointer | None:
    """The object a pointer file names, or None when `data` is not a valid pointer."""
    if len(data) > POINTER_MAX_SIZE or not data.startswith(_VERSIONS):
        return None
    try:
        lines = data.decode("ascii").split("\n")
    except UnicodeDecodeError:
        return None
    fields: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        key, sep, value = line.partition(" ")
        if not sep or key in fields:
            return None
        fields[key] = value
    oid = _OID.fullmatch(fields.get("oid", ""))
    size = fields.get("size", "")
    if oid is None or not size.isdigit():
        return None
    return LfsPointer(oid.group(1), int(size))


class _Buffered:
    """Reads a pack forward through one window (1 MiB): small entries cost no system call each.

    `data` is the window and `start` its offset in the pack; `at_end` is set once a read came back
    short, which `read_at` does only at the end of the pack."""

    def __init__(self, read_at: ReadAt, size: int = _BUFFER) -> None:
        self._read_at = read_at
        self._size = size
        self.start = 0
        self.data = b""
        self.at_end = False

    def view(self, pos: int, length: int) -> memoryview:
        """At least `length` bytes from `pos` (fewer only at the end of the pack)."""
        self.fill(pos, length)
        offset = pos - self.start
        return memoryview(self.data)[offset : offset + length]

    def fill(self, pos: int, length: int) -> None:
        """Make the window hold `length` bytes from `pos`, or all the pack has from there."""
        if pos < self.start or (pos + length > self.start + len(self.data) and not self.at_end):
            want = max(self._size, length)
            self.start = pos
            self.data = self._read_at(pos, want)
            self.at_end = len(self.data) < want


def _inflate(reader: _Buffered, pos: int, size: int, keep: int) -> tuple[bytes, int]:
    """Inflate the zlib stream at `pos` (`size` bytes once inflated), keeping at most `keep` bytes of its
    output. Returns what was kept and the offset just past the stream. Memory stays within one window
    whatever the size.

    zlib copies the input it was given past the end of the stream (`unused_data`): the first slice is
    about as long as the stream can be (deflate grows incompressible data by a few bytes per block), so
    a small object does not cost a copy of a whole window. A stream that ends inside the window is
    inflated in one call (most of a pack's entries are small: this is the scan's inner loop)."""
    inflater = zlib.decompressobj()
    length = min(_WINDOW, size + size // 1000 + 64)
    rel = pos - reader.start
    if rel >= 0 and rel + length <= len(reader.data):
        out = inflater.decompress(reader.data[rel : rel + length], _WINDOW)
        if inflater.eof:
            return out[:keep], pos + length - len(inflater.unused_data)
        inflater = zlib.decompressobj()
    kept = bytearray()
    data: bytes | memoryview = reader.view(pos, length)
    while True:
        if not data:
            data = reader.view(pos, _WINDOW)
            if not data:
                raise ValueError("the pack ends inside an object")
        out = inflater.decompress(data, _WINDOW)
        if len(kept) < keep:
            kept += out[: keep - len(kept)]
        if inflater.eof:  # (unconsumed_tail may still hold what is also unused_data then)
            return bytes(kept), pos + len(data) - len(inflater.unused_data)
        pos += len(data) - len(inflater.unconsumed_tail)
        data = inflater.unconsumed_tail


def _base_distance(window: bytes, pos: int) -> tuple[int, int]:
    """An offset-delta's distance back to its base (git's offset encoding), and the position after it."""
    byte = window[pos]
    distance = byte & 0x7F
    while byte & 0x80:
        pos += 1
        byte = window[pos]
        distance = ((distance + 1) << 7) | (byte & 0x7F)
    return distance, pos + 1


@dataclass(frozen=True)
class PendingDelta:
    """A delta of at most 1 KB onto a base the pack does not hold (or onto another pending delta) whose
    literal bytes could make a new LFS pointer: read once the base is at hand."""

    offset: int
    base_id: bytes | None  # binary id of a base outside the pack (a ref-delta)
    base_offset: int | None  # or the pack offset of a pending entry it is a delta onto
    delta: bytes


@dataclass
class PackScan:
    """What a pack's scan found: the pointers it could read, and the deltas it could not read alone."""

    pointers: set[LfsPointer]
    pending: list[PendingDelta]

    @property
    def base_ids(self) -> set[bytes]:
        return {p.base_id for p in self.pending if p.base_id is not None}

    def resolve(self, bases: dict[bytes, bytes]) -> set[LfsPointer]:
        """Every pointer, the pending deltas read onto `bases` (binary id -> content)."""
        found = set(self.pointers)
        contents: dict[int, bytes] = {}
        for entry in self.pending:
            base = (
                bases.get(entry.base_id)
                if entry.base_id is not None
                else contents.get(entry.base_offset or 0)
            )
            if base is None:
                continue
            content = b"".join(apply_delta(base, entry.delta))
            contents[entry.offset] = content
            pointer = parse_pointer(content)
            if pointer is not None:
                found.add(pointer)
        return found


def _delta_size(delta: bytes, pos: int) -> tuple[int, int]:
    """One of a delta's two leading sizes (little-endian base-128) and the position after it."""
    size = shift = 0
    while True:
        if pos >= len(delta):
            raise ValueError("a delta ends in its size header")
        byte = delta[pos]
        pos += 1
        size |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return size, pos


def _literals(delta: bytes) -> bytes:
    """The bytes a git delta inserts as they are (not copied from its base), runs joined by NUL."""
    _, pos = _delta_size(delta, 0)
    _, pos = _delta_size(delta, pos)
    runs: list[bytes] = []
    while pos < len(delta):
        op = delta[pos]
        pos += 1
        if op & 0x80:  # copy: offset and size bytes follow, one per bit set
            pos += bin(op & 0x7F).count("1")
        elif op:
            runs.append(delta[pos : pos + op])
            pos += op
    return b"\0".join(runs)


def _could_be_pointer(delta: bytes) -> bool:
    """Whether a delta, read onto a base that is a pointer, could make a pointer."""
    base_size, pos = _delta_size(delta, 0)
    size, _ = _delta_size(delta, pos)
    return (
        POINTER_MIN_SIZE <= base_size <= POINTER_MAX_SIZE
        and POINTER_MIN_SIZE <= size <= POINTER_MAX_SIZE
        and _NOT_ASCII.search(_literals(delta)) is None
    )


def scan_pack(read_at: ReadAt, entry_offsets: Iterable[int] | None = None) -> set[LfsPointer]:
    """The pointers of one pack that is not thin (every delta's base in it): see `scan`."""
    return scan(read_at, entry_offsets).pointers


def scan(read_at: ReadAt, entry_offsets: Iterable[int] | None = None) -> PackScan:
    """The pointers of one pack. With `entry_offsets` (from the pack's index) large entries are jumped
    over; without, the entries are walked in order (a large one is inflated to find its end, through
    one window, its content never kept).

    Only blobs of at most 1 KB are read. A pointer stored as a delta is found when its base is a pointer
    too (git deltifies a pointer against a similar one: against anything else the delta would be larger
    than the pointer); those bases are kept, by offset and by id, while the pack is read. A delta onto
    a base the pack lacks is pending when it could make a pointer (see the module's docstring).
    """
    reader = _Buffered(read_at)
    head = bytes(reader.view(0, 12))
    if len(head) != 12 or head[:4] != b"PACK":
        raise ValueError("not a pack file")
    count = int.from_bytes(head[8:12], "big")
    found: set[LfsPointer] = set()
    pending: list[PendingDelta] = []
    pending_at: set[int] = set()
    by_offset: dict[int, bytes] = {}  # pointer contents by entry offset and by binary id: delta bases
    by_id: dict[bytes, bytes] = {}
    offsets = iter(sorted(entry_offsets)) if entry_offsets is not None else None
    walk = offsets is None
    decompressobj = zlib.decompressobj
    window, start = reader.data, reader.start
    pos = 12
    for _ in range(count):
        if offsets is not None:
            pos = next(offsets)
        entry = pos
        rel = entry - start
        if rel < 0 or (rel + _HEADER_MAX > len(window) and not reader.at_end):
            reader.fill(entry, _HEADER_MAX)
            window, start = reader.data, reader.start
            rel = entry - start
        byte = window[rel]  # the entry's header: type and inflated size (git's varint)
        kind, size, shift, at = (byte >> 4) & 7, byte & 15, 4, rel + 1
        while byte & 0x80:
            byte = window[at]
            size |= (byte & 0x7F) << shift
            shift += 7
            at += 1
        if kind < OFS_DELTA and (kind != _BLOB or size > POINTER_MAX_SIZE):
            # neither a pointer nor a delta that could make one: only where it ends matters, and this
            # is most of a pack's entries (commits, trees, larger blobs): `_inflate` inlined
            if walk:
                length = size + size // 1000 + 64
                if length <= _WINDOW and at + length <= len(window):
                    inflater = decompressobj()
                    inflater.decompress(window[at : at + length], _WINDOW)
                    if inflater.eof:
                        pos = start + at + length - len(inflater.unused_data)
                        continue
                _, pos = _inflate(reader, start + at, size, 0)
                window, start = reader.data, reader.start
            continue
        base: bytes | None = None
        base_id: bytes | None = None
        base_offset: int | None = None
        if kind == OFS_DELTA:
            distance, at = _base_distance(window, at)
            base_offset = entry - distance
            base = by_offset.get(base_offset)
        elif kind == REF_DELTA:
            base_id = window[at : at + 20]
            base = by_id.get(base_id)
            at += 20
        data_at = start + at
        if kind == _BLOB:
            content, pos = _inflate(reader, data_at, size, size)
        elif size <= 2 * POINTER_MAX_SIZE:
            delta, pos = _inflate(reader, data_at, size, size)
            window, start = reader.data, reader.start
            if base is None:
                outside = kind == REF_DELTA and base_id not in by_id
                if (outside or base_offset in pending_at) and _could_be_pointer(delta):
                    pending.append(
                        PendingDelta(
                            entry, base_id if outside else None, None if outside else base_offset, delta
                        )
                    )
                    pending_at.add(entry)
                continue
            content = b"".join(apply_delta(base, delta))
        else:
            if walk:
                _, pos = _inflate(reader, data_at, size, 0)
                window, start = reader.data, reader.start
            continue
        window, start = reader.data, reader.start
        pointer = parse_pointer(content)
        if pointer is not None:
            found.add(pointer)
            by_offset[entry] = content
            by_id[hashlib.sha1(b"blob %d\0%s" % (len(content), content), usedforsecurity=False).digest()] = (
                content
            )
    return PackScan(found, pending)
