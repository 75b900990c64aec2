"""Pack files as stored: which entry types they hold (deltas by offset or by id included), and packs
written entry by entry, as git writes them (for deltas git itself would not make)."""

from __future__ import annotations

import hashlib
import zlib
from pathlib import Path

from dulwich.object_format import DEFAULT_OBJECT_FORMAT
from dulwich.pack import PackData


def entry_kinds(path: Path) -> set[int]:
    with PackData(str(path), DEFAULT_OBJECT_FORMAT) as data:
        return {entry.pack_type_num for entry in data.iter_unpacked()}


def pack_entry(kind: int, data: bytes, base: bytes | int | None = None) -> bytes:
    """One pack entry as git writes it: type and size, the base (an id, or the distance back), zlib."""
    size = len(data)
    header = bytearray([(kind << 4) | (size & 15)])
    size >>= 4
    while size:
        header[-1] |= 0x80
        header.append(size & 0x7F)
        size >>= 7
    if isinstance(base, bytes):
        header += base
    elif isinstance(base, int):
        encoded = bytearray([base & 0x7F])
        base >>= 7
        while base:
            base -= 1
            encoded.insert(0, 0x80 | (base & 0x7F))
            base >>= 7
        header += encoded
    return bytes(header) + zlib.compress(data)


def pack_of(entries: list[tuple[int, bytes, bytes | int | None]]) -> bytes:
    """A pack of (type, data, base): base is an outside object's id, or an earlier entry's index."""
    body, at = bytearray(), {}  # entry index -> offset
    for index, (kind, data, base) in enumerate(entries):
        offset = 12 + len(body)
        at[index] = offset
        body += pack_entry(kind, data, offset - at[base] if isinstance(base, int) else base)
    head = b"PACK" + (2).to_bytes(4, "big") + len(entries).to_bytes(4, "big")
    return head + bytes(body) + hashlib.sha1(head + bytes(body)).digest()
