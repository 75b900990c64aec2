"""The lifecycle of the pack a source sent: downloaded to disk, indexed only when read, sent on, discarded."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterator

from dulwich.repo import Repo

from gitmirror.errors import MirrorError, ProtocolFailure, TransientError

_TRAILER = 20  # a SHA-1 pack ends with the SHA-1 of everything before it

_RAW_CHUNK = 1024 * 1024
_POLL_SECONDS = 0.005  # how often a stream looks for newly downloaded bytes


class PackOverLimit(MirrorError):
    """The pack being downloaded grew past the size it was allowed (the download stops)."""

    kind = "pack_over_limit"

    def __init__(self, received: int, limit: int) -> None:
        super().__init__(f"the pack grew past {limit:,} bytes ({received:,} received)")
        self.received = received
        self.limit = limit


class FetchedPack:
    """The pack a source sent for this run, on disk in the scratch repository's pack directory.

    It is indexed (deltas resolved, objects readable) only when something must be read from it, for
    example an ancestry question; a cold mirror sends it on without ever indexing it.
    """

    def __init__(
        self, repo: Repo, limit: int | None = None, *, measure_beyond: bool = False, thin: bool = False
    ) -> None:
        """`limit`: the most bytes kept. Past it the download stops with PackOverLimit, or, with
        `measure_beyond`, goes on without storing anything, only to learn the pack's size."""
        self.repo = repo
        self.limit = limit
        self.measure_beyond = measure_beyond
        self.received = 0
        self.over_limit = False
        # thin: deltas may have bases the source left out because the target has them (haves); such a
        # pack is complete only on the target, so it is passed through and never indexed here
        self.thin = thin
        self.file, self._commit, self._abort = repo.object_store.add_pack()
        self.indexed = False
        self.size = 0
        self._indexed_path: str | None = None
        self._checksum = hashlib.sha1(usedforsecurity=False)
        self._tail = b""  # the last bytes written: the trailer, once the download is complete
        self.on_disk = 0
        # hears how many bytes are on disk after each write (the LFS pointer scan follows the download)
        self.on_growth: Callable[[int], None] | None = None

    def write(self, data: bytes) -> None:
        """Append downloaded bytes, hashing them on the way (a pass-through pack is never indexed, so
        this is what tells a complete pack from a truncated one). They go to disk at once (unbuffered),
        so a process following the download sees every byte that arrived."""
        self.received += len(data)
        if self.limit is not None and self.received > self.limit:
            if not self.measure_beyond:
                raise PackOverLimit(self.received, self.limit)
            self.over_limit = True
        if self.over_limit:
            return
        self.file.write(data)
        self.file.flush()
        self.on_disk += len(data)
        if self.on_growth is not None:
            self.on_growth(self.on_disk)
        joined = self._tail + data
        self._checksum.update(joined[:-_TRAILER])
        self._tail = joined[-_TRAILER:]

    def finish(self) -> None:
        """Called once the download is complete: the pack must be whole, or nothing is pushed."""
        self.file.flush()
        self.size = self.file.tell()
        if self.over_limit:
            self.size = self.received  # measured only: never sent, discarded by the caller
            return
        if self.size == 0:
            return
        header = os.pread(self.file.fileno(), 12, 0)
        if not header.startswith(b"PACK") or header[4:8] not in (b"\0\0\0\2", b"\0\0\0\3"):
            raise ProtocolFailure("the source sent something that is not a git pack")
        if self.size < 12 + _TRAILER or self._checksum.digest() != self._tail:
            raise TransientError(
                f"the source sent a truncated or damaged pack ({self.size:,} bytes, checksum mismatch)"
            )

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

    def read_at(self, offset: int, size: int) -> bytes:
        """Up to `size` bytes of the pack from `offset` (positional: the writer's offset is left alone)."""
        if self._indexed_path is not None:
            with open(self._indexed_path, "rb") as pack:
                pack.seek(offset)
                return pack.read(size)
        return os.pread(self.file.fileno(), max(0, min(size, self.size - offset)), offset)

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


class StreamStopped(MirrorError):
    """A push that streamed the pack while it downloaded was stopped before the pack's last bytes, so the
    target kept nothing (its index-pack sees a truncated pack and updates no ref)."""

    kind = "stream_stopped"


class PackStream:
    """A FetchedPack read while it downloads, for a push that runs alongside the download: what has
    arrived is sent at once, except the pack's last 20 bytes (its checksum), held back until `release()`
    (the download is complete and checked, and nothing else must come first) or `stop()`.

    Without its checksum the target cannot take the pack: stopping leaves the target as it was."""

    empty = False
    thin = False

    def __init__(self, fetched: FetchedPack, start_at: int = 64 * 1024) -> None:
        self.fetched = fetched
        self.repo = fetched.repo
        self.start_at = start_at
        self._released = threading.Event()
        self._stopped: str | None = None
        self._wake = threading.Event()
        # its own descriptor: the download's may be closed (a failed download discards the file) while
        # the push still reads
        self._fd = os.dup(fetched.file.fileno())

    def __enter__(self) -> PackStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop("the run ended")
        os.close(self._fd)

    @property
    def size(self) -> int:
        return self.fetched.size

    def release(self) -> None:
        self._released.set()
        self._wake.set()

    def stop(self, why: str) -> None:
        if not self._released.is_set():
            self._stopped = why
            self._wake.set()

    def wait_for_data(self) -> bool:
        """Block until the first bytes of the pack are here (a push that stalls before its pack starts can
        be timed out by the target); False if stopped before."""
        while self._stopped is None and not self._released.is_set() and self.fetched.on_disk < self.start_at:
            self._wake.wait(_POLL_SECONDS)
        return self._stopped is None

    def chunks(self, size: int = _RAW_CHUNK) -> Iterator[bytes]:
        fd, offset = self._fd, 0
        while True:
            if self._stopped is not None:
                raise StreamStopped(self._stopped)
            done = self._released.is_set()
            end = self.fetched.size if done else self.fetched.on_disk - _TRAILER
            if offset < end:
                block = os.pread(fd, min(size, end - offset), offset)
                if not block:
                    raise ProtocolFailure("the fetched pack is shorter than what was downloaded")
                offset += len(block)
                yield block
            elif done:
                return
            else:
                self._wake.wait(_POLL_SECONDS)

    def index(self) -> Repo:
        raise StreamStopped("the target takes no offset deltas: the pack is re-packed after the download")
