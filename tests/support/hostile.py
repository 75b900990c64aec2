"""Small loopback smart-HTTP servers that answer git with scripted bytes: malformed, flooding, dripping.

Each answer is bytes or a callable returning an iterator of chunks (sent as they come, so an answer
can stall or drip). HTTP/1.0 without Content-Length: the body ends when the connection closes, so a
truncated answer is simply a shorter one.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from dulwich.protocol import pkt_line

Answer = bytes | Callable[[], Iterable[bytes]]
FLUSH = b"0000"
DELIM = b"0001"


def pkts(*lines: bytes) -> bytes:
    return b"".join(pkt_line(line) for line in lines)


def v2_advertisement(*capabilities: bytes) -> bytes:
    caps = capabilities or (b"agent=git/2.39.0", b"ls-refs", b"fetch=shallow", b"object-format=sha1")
    return (
        pkts(b"# service=git-upload-pack\n")
        + FLUSH
        + pkts(b"version 2\n", *(c + b"\n" for c in caps))
        + FLUSH
    )


def ls_refs(*refs: tuple[bytes, bytes], head: bytes | None = b"refs/heads/main") -> bytes:
    lines = []
    if head is not None and refs:
        sha = dict((name, oid) for oid, name in refs).get(head, refs[0][0])
        lines.append(sha + b" HEAD symref-target:" + head + b"\n")
    lines.extend(oid + b" " + name + b"\n" for oid, name in refs)
    return pkts(*lines) + FLUSH


def sideband(channel: int, data: bytes, chunk: int = 65515) -> bytes:
    return b"".join(pkt_line(bytes([channel]) + data[i : i + chunk]) for i in range(0, len(data), chunk))


def fetch_response(pack: bytes, *, extra: bytes = b"") -> bytes:
    """A protocol-v2 fetch answer: the packfile section, the pack on side-band channel 1."""
    return pkts(b"packfile\n") + extra + sideband(1, pack) + FLUSH


def one_commit_pack(tmp: Path) -> tuple[bytes, bytes]:
    """A real pack holding one commit (and its empty tree), made by git: (commit id, pack bytes)."""
    repo = tmp / "pack-source.git"
    subprocess.run(["git", "init", "-q", "--bare", str(repo)], check=True)
    env_git = ["git", f"--git-dir={repo}", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    tree = subprocess.run([*env_git, "mktree"], input=b"", capture_output=True, check=True).stdout.strip()
    commit = subprocess.run(
        [*env_git, "commit-tree", "-m", "one", tree.decode()], capture_output=True, check=True
    ).stdout.strip()
    pack = subprocess.run(
        [*env_git, "pack-objects", "--stdout", "-q"],
        input=commit + b"\n" + tree + b"\n",
        capture_output=True,
        check=True,
    ).stdout
    return commit, pack


class HostileGitServer:
    """Answers `info/refs`, `ls-refs` and `fetch` of any repository path with the scripted answers."""

    def __init__(
        self,
        advertisement: Answer,
        ls_refs: Answer = FLUSH,
        fetch: Answer = FLUSH,
        *,
        content_type: str = "application/x-git-upload-pack-advertisement",
    ) -> None:
        self.answers = {"advertisement": advertisement, "ls-refs": ls_refs, "fetch": fetch}
        self.content_type = content_type
        self.requests: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, format: str, *args: Any) -> None:
                return None

            def do_GET(self) -> None:
                owner.requests.append("advertisement")
                self._answer("advertisement", owner.content_type)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                kind = "ls-refs" if b"command=ls-refs" in body else "fetch"
                owner.requests.append(kind)
                self._answer(kind, "application/x-git-upload-pack-result")

            def _answer(self, kind: str, content_type: str) -> None:
                answer = owner.answers[kind]
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.end_headers()
                chunks = [answer] if isinstance(answer, bytes) else answer()
                try:
                    for chunk in chunks:
                        self.wfile.write(chunk)
                        self.wfile.flush()
                except OSError:
                    pass  # the client gave up (a deadline): nothing more to send

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> HostileGitServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/repo.git"


def drip(data: bytes, every: float, stop: threading.Event | None = None) -> Callable[[], Iterator[bytes]]:
    """An answer that sends `data` one byte every `every` seconds."""

    def chunks() -> Iterator[bytes]:
        for i in range(len(data)):
            if stop is not None and stop.is_set():
                return
            yield data[i : i + 1]
            time.sleep(every)

    return chunks
