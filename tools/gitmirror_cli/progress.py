"""`gitmirror sync`'s progress line on a terminal: phase, MiB and MiB/s received and sent, pushes, LFS
objects copied.

The engine reports phases and pushes (`SyncProgress`); the bytes are read from the remotes' live
transfer counters, redrawn a few times a second on one line of stderr, and erased when the run ends,
so the summary on stdout stands alone.
"""

from __future__ import annotations

import collections
import os
import threading
import time
from collections.abc import Sequence
from typing import TextIO

from gitmirror.mirror.transport import Remote
from gitmirror.values import SyncProgress

MIB = 1024 * 1024
REDRAW_SECONDS = 0.2
RATE_WINDOW_SECONDS = 2.0
_CLEAR = "\r\x1b[K"


def progress_line(progress: SyncProgress, received: int, sent: int, rates: tuple[float, float]) -> str:
    line = (
        f"{progress.phase}: received {received / MIB:.1f} MiB ({rates[0] / MIB:.1f} MiB/s), "
        f"sent {sent / MIB:.1f} MiB ({rates[1] / MIB:.1f} MiB/s)"
    )
    if progress.pushes_planned:
        line += f", pushes {progress.pushes_done}/{progress.pushes_planned}"
    if progress.lfs_objects:
        line += f", LFS objects {progress.lfs_objects}"
    return line


class ProgressDisplay:
    """A `progress` callback for `sync_mirror` that keeps one status line on a terminal up to date."""

    def __init__(self, stream: TextIO, remotes: Sequence[Remote]) -> None:
        self._stream = stream
        self._remotes = tuple(remotes)
        self._progress = SyncProgress("starting")
        self._samples: collections.deque[tuple[float, int, int]] = collections.deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="gitmirror-progress", daemon=True)
        self._ticker.start()

    def __call__(self, progress: SyncProgress) -> None:
        with self._lock:
            self._progress = progress
        self._draw()

    def close(self) -> None:
        self._stop.set()
        self._ticker.join(timeout=2)
        with self._lock:
            self._write(_CLEAR)

    def _tick(self) -> None:
        while not self._stop.wait(REDRAW_SECONDS):
            self._draw()

    def _totals(self) -> tuple[int, int]:
        return (
            sum(r.stats.bytes_received for r in self._remotes),
            sum(r.stats.bytes_sent for r in self._remotes),
        )

    def _rates(self, now: float, received: int, sent: int) -> tuple[float, float]:
        self._samples.append((now, received, sent))
        while len(self._samples) > 2 and now - self._samples[0][0] > RATE_WINDOW_SECONDS:
            self._samples.popleft()
        then, received_then, sent_then = self._samples[0]
        elapsed = now - then
        if elapsed <= 0:
            return 0.0, 0.0
        return (received - received_then) / elapsed, (sent - sent_then) / elapsed

    def _draw(self) -> None:
        with self._lock:
            received, sent = self._totals()
            rates = self._rates(time.monotonic(), received, sent)
            line = progress_line(self._progress, received, sent, rates)
            self._write(_CLEAR + line[: self._width() - 1])

    def _width(self) -> int:
        try:
            return os.get_terminal_size(self._stream.fileno()).columns or 80
        except (OSError, ValueError):
            return 80

    def _write(self, text: str) -> None:
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError):  # the terminal went away: the run goes on without a display
            self._stop.set()
