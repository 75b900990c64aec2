"""A real Git LFS server (giftless, in its own process) mounted under a test git server's repositories.

`GitHTTPServer(..., lfs=True)` sends every request for `/<org>/<repo>.git/info/lfs/...` here and the
rest to `git http-backend`, so a repository's LFS endpoint is where the Git LFS specification puts it.
giftless needs an organization level in its routes: a repository at the server's top level
(`/<repo>.git`) is served as `/_/<repo>.git` (its action links then name that path, which is routed here
too). Objects are stored under `<storage>/<org>/<repo>/<oid>`.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

_HERE = Path(__file__).resolve().parent
REPO_ROOT = _HERE.parents[1]
FRONT_USER_HEADER = "X-Gitmirror-Lfs-User"
LFS_PATH = re.compile(r"^/(?:(?P<org>.+)/)?(?P<repo>[^/]+)\.git/info/lfs(?:/|$)")
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "te", "upgrade"}
_CHUNK = 256 * 1024


def lfs_python() -> Path:
    """The interpreter of the virtualenv giftless is installed in ($GITMIRROR_LFS_PYTHON or .venv-lfs)."""
    configured = os.environ.get("GITMIRROR_LFS_PYTHON")
    return Path(configured) if configured else REPO_ROOT / ".venv-lfs" / "bin" / "python"


@functools.cache
def ensure_lfs_environment() -> Path:
    """Make sure giftless' virtualenv and git-lfs exist (scripts/setup_lfs_venv.sh, idempotent; once
    per process)."""
    python = lfs_python()
    if os.environ.get("GITMIRROR_LFS_PYTHON") is None:
        subprocess.run(
            ["bash", str(REPO_ROOT / "scripts" / "setup_lfs_venv.sh")],
            check=True,
            env={**os.environ, "PYTHON": os.environ.get("PYTHON", sys.executable)},
        )
    if not python.exists():
        raise RuntimeError(f"no Python with giftless at {python}: run scripts/setup_lfs_venv.sh")
    return python


def lfs_target(path: str) -> str | None:
    """The path giftless serves for an LFS request path, or None when `path` is not one."""
    match = LFS_PATH.match(path)
    if match is None:
        return None
    return path if match.group("org") else "/_" + path


class LfsMount:
    """One giftless process (one app per process: giftless keeps its adapters in module globals)."""

    def __init__(self, storage: Path) -> None:
        self.storage = storage
        self._proc: subprocess.Popen[str] | None = None
        self.port = 0
        self._lock = threading.Lock()

    def start(self) -> LfsMount:
        python = ensure_lfs_environment()
        self.storage.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIFTLESS_")}
        self._proc = subprocess.Popen(
            [str(python), str(_HERE / "lfsserver.py"), str(self.storage)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline().strip()
        if not line.isdigit():
            self.stop()
            raise RuntimeError(f"the giftless LFS server did not start (said {line!r})")
        self.port = int(line)
        return self

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(OSError):
            if proc.stdin is not None:
                proc.stdin.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def object_path(self, org: str | None, repo: str, oid: str) -> Path:
        """Where giftless keeps an object of `/<org>/<repo>.git` (org None: a top-level repository)."""
        return self.storage / (org or "_") / repo / oid

    def forward(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        body: Iterator[bytes] | None,
        length: int | None,
        user: str | None,
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """Send one request on to giftless (body streamed); the caller relays and closes the response."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        for key, value in headers.items():
            if key.lower() in _HOP_BY_HOP or key.lower() == FRONT_USER_HEADER.lower():
                continue
            conn.putheader(key, value)
        if user is not None:
            conn.putheader(FRONT_USER_HEADER, user)
        chunked = body is not None and length is None
        if length is not None:
            conn.putheader("Content-Length", str(length))
        elif chunked:
            conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        for data in body or ():
            conn.send(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
        if chunked:
            conn.send(b"0\r\n\r\n")
        return conn, conn.getresponse()


def relay_headers(response: http.client.HTTPResponse) -> list[tuple[str, str]]:
    return [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP]


CHUNK = _CHUNK
