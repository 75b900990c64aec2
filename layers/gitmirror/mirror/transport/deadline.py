"""The run's wall-clock deadline, enforced inside every network read.

urllib3's read timeout bounds one wait for bytes, not a transfer: a server sending one byte every few
seconds never trips it. So every socket a run opens is registered here, and at the deadline a timer
shuts them all down: whatever read or write is blocked returns at once, and the operation fails. The
transport then reports `TimedOut`, not the broken connection it caused.
"""

from __future__ import annotations

import socket
import threading
import time
import weakref
from typing import Any

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from gitmirror.errors import TimedOut


class Deadline:
    """A point in time (monotonic) after which no network read of the run may go on."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.expired = False
        self._lock = threading.Lock()
        self._sockets: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        self._timer = threading.Timer(max(0.0, seconds), self._expire)
        self._timer.daemon = True
        self._timer.start()
        self._pool_classes: dict[str, type[HTTPConnectionPool]] | None = None

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def passed(self) -> bool:
        return self.expired or self.remaining() <= 0

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            if not self.expired:
                self._sockets.add(sock)
                return
        _shut(sock)

    def check(self, where: str) -> None:
        if self.passed():
            raise self.error(where)

    def error(self, where: str) -> TimedOut:
        return TimedOut(
            f"timed out: the run's deadline ({self.seconds:.0f} s) passed while talking to {where}"
        )

    def cancel(self) -> None:
        self._timer.cancel()

    def __enter__(self) -> Deadline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()  # the run is over: its timer thread ends now

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
            self._sockets.clear()
        for sock in sockets:
            _shut(sock)

    def pool_classes(self) -> dict[str, type[HTTPConnectionPool]]:
        """urllib3 pool classes (PoolManager.pool_classes_by_scheme) whose connections are watched."""
        if self._pool_classes is None:
            self._pool_classes = self._watched_pool_classes()
        return self._pool_classes

    def _watched_pool_classes(self) -> dict[str, type[HTTPConnectionPool]]:
        deadline = self

        class Watched:
            def _new_conn(self) -> socket.socket:
                sock: socket.socket = super()._new_conn()  # type: ignore[misc]
                deadline.watch(sock)
                return sock

        class WatchedHTTPConnection(Watched, HTTPConnection):
            pass

        class WatchedHTTPSConnection(Watched, HTTPSConnection):
            pass

        class WatchedHTTPPool(HTTPConnectionPool):
            ConnectionCls = WatchedHTTPConnection

        class WatchedHTTPSPool(HTTPSConnectionPool):
            ConnectionCls = WatchedHTTPSConnection

        return {"http": WatchedHTTPPool, "https": WatchedHTTPSPool}


def _shut(sock: Any) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed
