"""Byte accounting for one remote's transfers."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass
class TransferStats:
    """Bytes on the wire for one remote; requests may run in two threads at once (fetch, negotiation)."""

    bytes_received: int = 0
    bytes_sent: int = 0
    upload_pack_capabilities: set[bytes] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def sent(self, n: int) -> None:
        with self._lock:
            self.bytes_sent += n

    def received(self, n: int) -> None:
        with self._lock:
            self.bytes_received += n
