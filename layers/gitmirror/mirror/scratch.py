"""A run's scratch directory in /tmp, and the removal of those left by runs whose process died.

A worker killed mid-run (SIGKILL, out of memory, Lambda's hard timeout) never reaches its cleanup; the
next invocation in the same execution environment would find /tmp fuller by a whole fetched pack. Each
scratch directory holds an exclusive `flock` on a file inside it while its run lives: the kernel drops
it when the process dies, so a directory whose lock can be taken is left over and is removed.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

PREFIX = "gitmirror-run-"
LOCK_NAME = ".in-use"
# a directory younger than this may be between its creation and its lock
GRACE_SECONDS = 60.0


@contextmanager
def scratch_directory(parent: str | None = None) -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix=PREFIX, dir=parent) as workdir:
        fd = os.open(os.path.join(workdir, LOCK_NAME), os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield workdir
        finally:
            os.close(fd)


def _in_use(path: str) -> bool:
    try:
        fd = os.open(os.path.join(path, LOCK_NAME), os.O_RDWR)
    except FileNotFoundError:
        try:
            return time.time() - os.stat(path).st_mtime < GRACE_SECONDS
        except FileNotFoundError:
            return True  # already gone
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def remove_stale(parent: str | None = None) -> list[str]:
    """Remove the scratch directories no live run holds; returns their paths."""
    parent = parent or tempfile.gettempdir()
    removed = []
    try:
        entries = list(os.scandir(parent))
    except FileNotFoundError:
        return []
    for entry in entries:
        if entry.name.startswith(PREFIX) and entry.is_dir(follow_symlinks=False) and not _in_use(entry.path):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry.path)
    return removed
