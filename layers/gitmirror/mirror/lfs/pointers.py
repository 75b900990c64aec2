"""Git LFS pointer files, found in the pack a run sends without inflating its large objects for it.

A pointer is a small blob (git-lfs never writes one over 1 KB) that starts with the spec's version line
and names the object by sha256 and size. Each pack entry's header gives the inflated size before the
data, so only entries of at most 1 KB are inflated and read; larger ones are jumped over with the
pack's index, or else inflated through a fixed 64 KiB window only to find where they end (never held
in memory).
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
    """Reads a pack forward through one window (1 MiB): small entries cost no system call each."""

    def __init__(self, read_at: ReadAt, size: int = _BUFFER) -> None:
        self._read_at = read_at
        self._size = size
        self._start = 0
        self._data = b""

    def view(self, pos: int, length: int) -> memoryview:
        """At least `length` bytes from `pos` (fewer only at the end of the pack)."""
        end = pos + length
        if pos < self._start or end > self._start + len(self._data):
            self._start = pos
            self._data = self._read_at(pos, max(self._size, length))
        offset = pos - self._start
        return memoryview(self._data)[offset : offset + length]


def _inflate(reader: _Buffered, pos: int, size: int, keep: int) -> tuple[bytes, int]:
    """Inflate the zlib stream at `pos` (`size` bytes once inflated), keeping at most `keep` bytes of its
    output. Returns what was kept and the offset just past the stream. Memory stays within one window
    whatever the size.

    zlib copies the input it was given past the end of the stream (`unused_data`): the first slice is
    about as long as the stream can be (deflate grows incompressible data by a few bytes per block), so
    a small object does not cost a copy of a whole window."""
    inflater = zlib.decompressobj()
    kept = bytearray()
    data: bytes | memoryview = reader.view(pos, min(_WINDOW, size + size // 1000 + 64))
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


def _header(window: memoryview) -> tuple[int, int, int]:
    """(type, size, length of the header) of the entry whose header `window` starts with."""
    byte = window[0]
    kind, size, shift, pos = (byte >> 4) & 7, byte & 15, 4, 1
    while byte & 0x80:
        byte = window[pos]
        size |= (byte & 0x7F) << shift
        shift += 7
        pos += 1
    return kind, size, pos


def _base_distance(window: memoryview, pos: int) -> tuple[int, int]:
    """An offset-delta's distance back to its base (git's offset encoding), and the position after it."""
    byte = window[pos]
    distance = byte & 0x7F
    while byte & 0x80:
        pos += 1
        byte = window[pos]
        distance = ((distance + 1) << 7) | (byte & 0x7F)
    return distance, pos + 1


def scan_pack(read_at: ReadAt, entry_offsets: Iterable[int] | None = None) -> set[LfsPointer]:
    """The pointers of one pack. With `entry_offsets` (from the pack's index) large entries are jumped
    over; without, the entries are walked in order (a large one is inflated to find its end, through
    one window, its content never kept).

    Only blobs of at most 1 KB are read. A pointer stored as a delta is found when its base is a pointer
    too (git deltifies a pointer against a similar one: against anything else the delta would be larger
    than the pointer); those bases are kept, by offset and by id, while the pack is read.
    """
    reader = _Buffered(read_at)
    head = bytes(reader.view(0, 12))
    if len(head) != 12 or head[:4] != b"PACK":
        raise ValueError("not a pack file")
    count = int.from_bytes(head[8:12], "big")
    found: set[LfsPointer] = set()
    by_offset: dict[int, bytes] = {}  # pointer contents by entry offset and by binary id: delta bases
    by_id: dict[bytes, bytes] = {}
    offsets = iter(sorted(entry_offsets)) if entry_offsets is not None else None
    pos = 12
    for _ in range(count):
        if offsets is not None:
            pos = next(offsets)
        entry = pos
        window = reader.view(entry, _HEADER_MAX)
        kind, size, at = _header(window)
        base: bytes | None = None
        if kind == OFS_DELTA:
            distance, at = _base_distance(window, at)
            base = by_offset.get(entry - distance)
        elif kind == REF_DELTA:
            base = by_id.get(bytes(window[at : at + 20]))
            at += 20
        if kind == _BLOB and size <= POINTER_MAX_SIZE:
            content, pos = _inflate(reader, entry + at, size, size)
        elif base is not None and size <= 2 * POINTER_MAX_SIZE:
            delta, pos = _inflate(reader, entry + at, size, size)
            content = b"".join(apply_delta(base, delta))
        else:
            if offsets is None:
                _, pos = _inflate(reader, entry + at, size, 0)
            continue
        pointer = parse_pointer(content)
        if pointer is not None:
            found.add(pointer)
            by_offset[entry] = content
            by_id[hashlib.sha1(b"blob %d\0%s" % (len(content), content), usedforsecurity=False).digest()] = (
                content
            )
    return found
