"""`gitmirror local up` as a user runs it in a terminal: a subprocess whose output is read as it comes."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

GITMIRROR = str(Path(sys.executable).with_name("gitmirror"))
READY = "gitmirror local up: ready"
_WORKDIR = re.compile(r"^gitmirror local stack is up in (\S+) ")


class LocalUp:
    def __init__(self, tmp_path: Path, *, sample: str = "generated") -> None:
        self.tmp_path = tmp_path
        env = dict(os.environ, TMPDIR=str(tmp_path), PYTHONUNBUFFERED="1")
        env.pop("POWERTOOLS_LOG_LEVEL", None)  # local up chooses INFO itself
        self.proc = subprocess.Popen(
            [GITMIRROR, "local", "up", "--port", "0", "--sample", sample],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, needle: str, timeout: float = 90.0, start: int = 0) -> int:
        """Index of the first line from `start` on containing `needle`; fails after `timeout`."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for index in range(start, len(self.lines)):
                    if needle in self.lines[index]:
                        return index
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(f"{needle!r} never printed:\n" + "\n".join(self.lines[-60:]))
                self._changed.wait(min(left, 0.5))

    @property
    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    @property
    def workdir(self) -> Path:
        for line in self.lines:
            match = _WORKDIR.match(line)
            if match:
                return Path(match.group(1))
        raise AssertionError("no working directory printed")

    def exports(self) -> dict[str, str]:
        """The `export K=V` lines of the banner, as a shell would set them."""
        env = {}
        for line in self.lines[: self.wait_for(READY)]:
            if line.startswith("  export "):
                key, _, value = line.removeprefix("  export ").partition("=")
                env[key] = shlex.split(value)[0] if value else ""
        return env

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return code
