"""The lifecycle of the pack a source sent: downloaded to disk, indexed only when read, sent on, discarded."""

from __future__ import annotations

import os
from collections.abc import Iterator

from dulwich.repo import Repo

from gitmirror.errors import ProtocolFailure

_RAW_CHUNK = 1024 * 1024


class FetchedPack:
    """The pack a source sent for this run, on disk in the scratch repository's pack directory.

    It is indexed (deltas resolved, objects readable) only when something must be read from it, for
    example an ancestry question; a cold mirror sends it on without ever indexing it.
    """

    def __init__(self, repo: Repo) -> None:
        self.repo = repo
        self.file, self._commit, self._abort = repo.object_store.add_pack()
        self.indexed = False
        self.size = 0
        self._indexed_path: str | None = None

    def finish(self) -> None:
        """Called once the download is complete."""
        self.file.flush()
        self.size = self.file.tell()

    @property
    def empty(self) -> bool:
        return self.size == 0

    def chunks(self, size: int = _RAW_CHUNK) -> Iterator[bytes]:
        """The pack's bytes as downloaded (positional reads: the writer's file offset is left alone)."""
        if self._indexed_path is not None:
            with open(self._indexed_path, "rb") as pack:
                while block := pack.read(size):
                    yield block
            return
        fd, offset = self.file.fileno(), 0
        while offset < self.size:
            block = os.pread(fd, min(size, self.size - offset), offset)
            if not block:
                raise ProtocolFailure("the fetched pack is shorter than what was downloaded")
            offset += len(block)
            yield block

    def index(self) -> Repo:
        if not self.indexed:
            self.indexed = True
            pack = self._commit()
            self._indexed_path = getattr(pack, "_data_path", None) if pack is not None else None
        return self.repo

    def discard(self) -> None:
        if not self.indexed:
            self.indexed = True
            self._abort()
