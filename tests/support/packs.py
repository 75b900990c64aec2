"""Pack files as stored: which entry types they hold (deltas by offset or by id included)."""

from __future__ import annotations

from pathlib import Path

from dulwich.object_format import DEFAULT_OBJECT_FORMAT
from dulwich.pack import PackData


def entry_kinds(path: Path) -> set[int]:
    with PackData(str(path), DEFAULT_OBJECT_FORMAT) as data:
        return {entry.pack_type_num for entry in data.iter_unpacked()}
