"""The LFS pointer scan of an unindexed pack, in a child process that follows the download.

Walking a pack that has no index means inflating every entry to find where the next one starts (CPU
that a 100k-object pack needs for seconds). A child process does it while the pack downloads, so it
costs no time on the run's path and does not compete for the interpreter lock with the download: it
reads the pack through a copy of the file descriptor, waiting for bytes that have not arrived yet,
until its standard input closes (the download is over). It prints what it found as JSON: the pointers,
and the deltas it could not read without their bases (see `pointers.PackScan`).

    python -m gitmirror.mirror.lfs.follow FD
"""

from __future__ import annotations

import base64
import json
import os
import select
import subprocess
import sys
from typing import TYPE_CHECKING

from gitmirror.mirror.lfs.pointers import LfsPointer, PackScan, PendingDelta, scan

if TYPE_CHECKING:  # the child process imports only the pointer scan
    from gitmirror.mirror.transport import FetchedPack

# below this much downloaded the pack is scanned in-process after the download (a few tenths of a
# second at most: less than a child interpreter costs to start)
FOLLOW_FROM_BYTES = 16 * 1024 * 1024
_POLL_SECONDS = 0.005
_WAIT_SECONDS = 600.0


class PointerFollower:
    """The pointer scan of one FetchedPack: in a child process that starts once the download passes
    `FOLLOW_FROM_BYTES` (a child costs an interpreter's start-up, more than scanning a small pack), else
    in-process at the end. `result()` once the download finished; `stop()` always."""

    def __init__(self, fetched: FetchedPack, follow_from: int = FOLLOW_FROM_BYTES) -> None:
        self._fetched = fetched
        self._follow_from = follow_from
        self._proc: subprocess.Popen[bytes] | None = None
        self._tried = False
        self._result: PackScan | None = None
        fetched.on_growth = self._grown
        self._grown(0)

    def _grown(self, on_disk: int) -> None:
        if self._tried or on_disk < self._follow_from:
            return
        self._tried = True
        self._fetched.on_growth = None
        fd = self._fetched.file.fileno()
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "gitmirror.mirror.lfs.follow", str(fd)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(fd,),
            )
        except OSError:
            self._proc = None  # no child process here: scan in-process once the download is over

    def result(self) -> PackScan:
        """The scan of the complete pack. Raises ValueError when the pack cannot be read."""
        if self._result is None:
            self._result = self._scanned()
        return self._result

    def _scanned(self) -> PackScan:
        proc = self._proc
        if proc is None:
            return PackScan(set(), []) if self._fetched.empty else scan(self._fetched.read_at)
        try:  # communicate() closes the child's stdin first: the download is over
            out, err = proc.communicate(timeout=_WAIT_SECONDS)
        except subprocess.TimeoutExpired:
            self.stop()
            raise ValueError("the LFS pointer scan did not finish") from None
        if proc.returncode != 0:
            lines = err.decode("utf-8", "replace").strip().splitlines()
            raise ValueError(lines[-1] if lines else f"the LFS pointer scan exited {proc.returncode}")
        found = json.loads(out)
        return PackScan(
            {LfsPointer(str(oid), int(size)) for oid, size in found["pointers"]},
            [
                PendingDelta(
                    int(offset),
                    bytes.fromhex(base_id) if base_id else None,
                    None if base_offset is None else int(base_offset),
                    base64.b64decode(delta),
                )
                for offset, base_id, base_offset, delta in found["pending"]
            ],
        )

    def stop(self) -> None:
        self._fetched.on_growth = None
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        proc.kill()
        proc.communicate()


def _follow(fd: int) -> PackScan:
    over = False

    def read_at(offset: int, size: int) -> bytes:
        nonlocal over
        while True:
            on_disk = os.fstat(fd).st_size
            if over or on_disk >= offset + size:
                return os.pread(fd, max(0, min(size, on_disk - offset)), offset)
            # the parent writes nothing: readable means its end closed, the download is over
            if select.select([0], [], [], _POLL_SECONDS)[0]:
                over = not os.read(0, 1)

    try:
        return scan(read_at)
    except ValueError:
        if over and os.fstat(fd).st_size == 0:
            return PackScan(set(), [])  # nothing was fetched
        raise


def main(argv: list[str]) -> int:
    try:
        found = _follow(int(argv[1]))
    except Exception as exc:  # noqa: BLE001 - whatever a damaged pack makes the reader raise
        print(f"the fetched pack cannot be read: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    pending = [
        [p.offset, p.base_id.hex() if p.base_id else None, p.base_offset, base64.b64encode(p.delta).decode()]
        for p in found.pending
    ]
    json.dump({"pointers": sorted([p.oid, p.size] for p in found.pointers), "pending": pending}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
