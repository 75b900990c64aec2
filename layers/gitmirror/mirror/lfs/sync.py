"""One run's Git LFS work: the pointers in what it sends, and the copy of the objects they name, after
deciding which remotes can have LFS at all; summed up as `LfsStats`."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

from dulwich.pack import Pack
from dulwich.repo import Repo

from gitmirror.mirror.credentials import is_codecommit
from gitmirror.mirror.lfs.batch import LfsServer
from gitmirror.mirror.lfs.copy import LfsCopier
from gitmirror.mirror.lfs.pointers import LfsPointer, PackScan, ReadAt, scan, scan_pack
from gitmirror.mirror.transport import FetchedPack, Remote
from gitmirror.values import LfsStats


def _file_reader(path: str) -> tuple[ReadAt, Callable[[], None]]:
    fd = os.open(path, os.O_RDONLY)
    return (lambda offset, size: os.pread(fd, size, offset)), (lambda: os.close(fd))


def _pack_pointers(pack: Pack) -> set[LfsPointer]:
    read_at, close = _file_reader(pack._data_path)
    try:
        return scan_pack(read_at, (offset for _sha, offset, _crc in pack.index.iterentries()))
    finally:
        close()


def pointers_in_store(repo: Repo) -> set[LfsPointer]:
    """Every pointer in a scratch repository's packs (a full fetch: everything the push may send)."""
    found: set[LfsPointer] = set()
    for pack in repo.object_store.packs:
        found |= _pack_pointers(pack)
    return found


def pointers_in_fetched(fetched: FetchedPack) -> PackScan:
    """The pointers in the pack a source sent for this run (the pack passed on to the target)."""
    if fetched.empty:
        return PackScan(set(), [])
    if fetched.indexed:
        return PackScan(pointers_in_store(fetched.repo), [])
    return scan(fetched.read_at)


def copy_lfs_objects(
    source: Remote,
    target: Remote,
    pointers: Iterable[LfsPointer],
    *,
    check_time: Callable[[str], None] = lambda _what: None,
) -> LfsStats:
    """Copy to the target every object of `pointers` it lacks. Raises TransientError or AuthError when
    the copy should be retried before the refs are pushed; anything permanent is `LfsStats.error`."""
    wanted = sorted(set(pointers))
    if not wanted:
        return LfsStats()
    count = len(wanted)
    if is_codecommit(target.url):
        return LfsStats(error=f"AWS CodeCommit has no Git LFS; {count} objects were not mirrored")
    if source.url.is_local or target.url.is_local:
        return LfsStats(
            error=f"Git LFS objects are mirrored between http(s) repositories only; {count} objects were not mirrored"
        )
    copier = LfsCopier(
        LfsServer(source.url, source.lfs_credentials, policy=source.policy),
        LfsServer(target.url, target.lfs_credentials, policy=target.policy),
        check_time=check_time,
    )
    report = copier.copy(wanted)
    return LfsStats(objects=report.objects, bytes=report.bytes, error=report.error())
