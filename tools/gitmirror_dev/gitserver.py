"""A real git smart-HTTP server for tests, the demo and the local stack: stdlib HTTP in front of ``git http-backend``.

Usage::

    with serve_git(tmp_path / "srv", username="u", password="p") as server:
        server.create_bare("src.git")
        url = server.repo_url("src.git")  # http://127.0.0.1:PORT/src.git

Routing: a request whose first path segment ends in ``.git`` or names an existing directory
under ``root`` goes to ``git http-backend`` (which answers 404 for unknown repositories);
anything else (``/``, ``/not-git``...) gets a plain HTML 200 page, so clients can be tested
against "a URL that is not a git server".

Every request is recorded in ``server.requests`` (a list of :class:`RecordedRequest`, appended
when the request arrives and completed before the last response byte is written, so once a
client has finished the record is final).

Test hooks, all settable at any time:

* ``fail_next(status, count=1, path_contains=None)`` answers the next ``count`` requests whose
  target (``path?query``) contains ``path_contains`` with ``status`` instead of running git.
  Authentication is checked first, so a client's anonymous 401 probe does not consume a rule.
* ``stall_seconds`` sleeps before answering every request whose target contains
  ``stall_path_contains`` (all requests when None).
* ``lfs=True`` mounts a real Git LFS server (giftless, see ``lfsmount``) under every repository's
  ``<repo>.git/info/lfs/``: Basic auth as for git; action links carry giftless' own tokens. Its
  requests are recorded with kind ``"lfs"``; ``fail_next`` applies to them too.

* ``close_mid_response_after_bytes`` drops the connection after that many response *body*
  bytes of every git response whose target contains ``close_mid_response_path_contains``
  (all when None).  Use ``"/git-upload-pack"`` to cut only the fetch POST and not the
  ``info/refs?service=git-upload-pack`` advertisement.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any, cast
from urllib.parse import unquote, urlsplit

from gitmirror_dev.lfsmount import CHUNK as LFS_CHUNK
from gitmirror_dev.lfsmount import LfsMount, lfs_target, relay_headers

_CHUNK = 64 * 1024

NOT_GIT_HTML = (
    b"<!DOCTYPE html>\n<html><head><title>Not git</title></head>"
    b"<body><p>Hello, this is not a git repository.</p></body></html>\n"
)


def _http_backend_path() -> str:
    exec_path = subprocess.run(
        ["git", "--exec-path"], capture_output=True, check=True, text=True
    ).stdout.strip()
    return os.path.join(exec_path, "git-http-backend")


@dataclass
class RecordedRequest:
    """One HTTP request as seen by the server.

    ``request_bytes`` counts request body bytes read off the wire after de-chunking (still
    gzip-compressed if the client compressed); ``response_bytes`` counts response body bytes
    written (excluding chunk framing).  ``kind`` is one of ``"git"``, ``"unauthorized"``,
    ``"injected"`` (fail_next), ``"html"``.  ``aborted`` is True when the connection was
    dropped on purpose (close_mid_response) or the client went away.
    """

    method: str
    path: str
    query: str
    headers: dict[str, str]
    user: str | None = None
    status: int | None = None
    kind: str = ""
    request_bytes: int = 0
    response_bytes: int = 0
    aborted: bool = False
    stderr: str = ""
    #: the first ``GitHTTPServer.record_body_bytes`` bytes of the request body (tests read the
    #: protocol lines a client sent: wants, haves, filters, ref updates)
    body: bytes = b""
    #: all fields are final; set just before the last response byte is written
    done: bool = False
    #: time.monotonic() when the request line arrived, and when the answer was complete (``done``)
    started: float = field(default_factory=time.monotonic)
    ended: float = 0.0

    def finish(self) -> None:
        self.ended = time.monotonic()
        self.done = True

    @property
    def target(self) -> str:
        return f"{self.path}?{self.query}" if self.query else self.path

    @property
    def service(self) -> str | None:
        """``git-upload-pack`` / ``git-receive-pack`` for smart-protocol requests, else None."""
        for svc in ("git-upload-pack", "git-receive-pack"):
            if self.path.endswith("/" + svc) or f"service={svc}" in self.query:
                return svc
        return None

    @property
    def is_rpc(self) -> bool:
        """True for the POST .../git-upload-pack or .../git-receive-pack requests."""
        return self.method == "POST" and self.service is not None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass
class _FailRule:
    status: int
    remaining: int
    path_contains: str | None


@dataclass
class _Feed:
    nbytes: int = 0
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)
    proc: subprocess.Popen[bytes] | None = None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, owner: GitHTTPServer) -> None:
        self.owner = owner
        self.connections: set[socket.socket] = set()
        self.conn_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.conn_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.conn_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Drop every open client connection (idle keep-alive ones included)."""
        with self.conn_lock:
            conns = list(self.connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # clients resetting (idle keep-alive) connections is normal; report anything else
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


class _ClientGone(Exception):
    pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "gitmirror-test-git/1.0"
    timeout = 120
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    # -- request plumbing -------------------------------------------------------------

    def _handle(self) -> None:
        owner = self.server.owner
        split = urlsplit(self.path)
        rec = RecordedRequest(
            method=self.command,
            path=unquote(split.path),
            query=split.query,
            headers={k.lower(): v for k, v in self.headers.items()},
        )
        owner._record(rec)
        try:
            self._dispatch(owner, rec)
        except (_ClientGone, OSError, ValueError):
            rec.aborted = True
            self.close_connection = True
        finally:
            rec.finish()

    def _body_chunks(self) -> Iterator[bytes]:
        """Yield the request body, de-chunked; Content-Length bodies are read exactly."""
        te = self.headers.get("Transfer-Encoding", "")
        if "chunked" in te.lower():
            while True:
                line = self.rfile.readline(1024)
                if not line:
                    raise _ClientGone("EOF in chunk size")
                size = int(line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while True:  # trailers until the empty line
                        trailer = self.rfile.readline(8192)
                        if trailer in (b"\r\n", b"\n", b""):
                            return
                remaining = size
                while remaining:
                    data = self.rfile.read(min(remaining, _CHUNK))
                    if not data:
                        raise _ClientGone("EOF in chunk")
                    remaining -= len(data)
                    yield data
                if self.rfile.readline(1024) not in (b"\r\n", b"\n"):
                    raise ValueError("malformed chunk terminator")
        else:
            remaining = int(self.headers.get("Content-Length") or 0)
            while remaining > 0:
                data = self.rfile.read(min(remaining, _CHUNK))
                if not data:
                    raise _ClientGone("EOF in body")
                remaining -= len(data)
                yield data

    def _drain(self, rec: RecordedRequest) -> None:
        for data in self._body_chunks():
            rec.request_bytes += len(data)

    def _send_simple(
        self,
        rec: RecordedRequest,
        status: int,
        body: bytes,
        content_type: str = "text/plain; charset=utf-8",
        extra: dict[str, str] | None = None,
        *,
        drain: bool = True,
    ) -> None:
        if drain:
            self._drain(rec)
        rec.status = status
        rec.response_bytes = len(body)
        rec.finish()  # final before the client can see the end of the response
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _dispatch(self, owner: GitHTTPServer, rec: RecordedRequest) -> None:
        target = rec.target
        if owner.stall_seconds and _matches(owner.stall_path_contains, target):
            time.sleep(owner.stall_seconds)

        if owner.is_api_path(rec.method, rec.path):
            body = b"".join(self._body_chunks())
            rec.request_bytes = len(body)
            rec.kind = "api"
            api_status, reply = owner.api_request(rec, body)
            payload = json.dumps(reply).encode()
            self._send_simple(rec, api_status, payload, content_type="application/json", drain=False)
            return

        lfs_path = lfs_target(rec.path) if owner.lfs is not None else None
        if lfs_path is not None:
            self._proxy_lfs(owner, rec, lfs_path)
            return

        ok, user = owner._check_auth(self.headers.get("Authorization"))
        rec.user = user
        if not ok:
            rec.kind = "unauthorized"
            self._send_simple(
                rec, 401, b"Authentication required\n", extra={"WWW-Authenticate": 'Basic realm="git"'}
            )
            return

        status = owner._take_failure(target)
        if status is not None:
            rec.kind = "injected"
            extra = {"WWW-Authenticate": 'Basic realm="git"'} if status == 401 else None
            self._send_simple(rec, status, f"injected failure {status}\n".encode(), extra=extra)
            return

        if not owner._is_git_path(rec.path):
            rec.kind = "html"
            self._send_simple(rec, 200, NOT_GIT_HTML, content_type="text/html; charset=utf-8")
            return

        rec.kind = "git"
        self._run_backend(owner, rec)

    # -- LFS -------------------------------------------------------------------------

    def _proxy_lfs(self, owner: GitHTTPServer, rec: RecordedRequest, lfs_path: str) -> None:
        assert owner.lfs is not None
        authorization = self.headers.get("Authorization") or ""
        # action links authenticate themselves (giftless' JWT in a Bearer header or ?jwt=): giftless checks
        preauthorized = authorization[:7].lower() == "bearer " or "jwt=" in rec.query
        user: str | None = None
        if not preauthorized:
            ok, user = owner._check_auth(authorization or None)
            rec.user = user
            if not ok:
                rec.kind = "unauthorized"
                challenge = {"WWW-Authenticate": 'Basic realm="git"', "LFS-Authenticate": 'Basic realm="git"'}
                self._send_simple(rec, 401, b"Authentication required\n", extra=challenge)
                return
            user = user or "anonymous"
        status = owner._take_failure(rec.target)
        if status is not None:
            rec.kind = "injected"
            self._send_simple(rec, status, f"injected failure {status}\n".encode())
            return
        rec.kind = "lfs"
        headers = {
            k: v for k, v in self.headers.items() if not (user is not None and k.lower() == "authorization")
        }
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        length = None if chunked else int(self.headers.get("Content-Length") or 0)

        def body() -> Iterator[bytes]:
            for data in self._body_chunks():
                rec.request_bytes += len(data)
                yield data

        target = f"{lfs_path}?{rec.query}" if rec.query else lfs_path
        conn, response = owner.lfs.forward(self.command, target, headers, body(), length, user)
        try:
            rec.status = response.status
            self.send_response(response.status, response.reason)
            for key, value in relay_headers(response):
                self.send_header(key, value)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            while data := response.read1(LFS_CHUNK):
                rec.response_bytes += len(data)
                self._write(b"%x\r\n%s\r\n" % (len(data), data))
            rec.finish()
            self._write(b"0\r\n\r\n")
        finally:
            response.close()
            conn.close()

    # -- CGI -------------------------------------------------------------------------

    def _feed_stdin(self, stdin: IO[bytes], rec: RecordedRequest, feed: _Feed) -> None:
        broken = False
        owner = self.server.owner
        cut = owner.close_mid_request_after_bytes
        if cut is not None and not _matches(owner.close_mid_request_path_contains, rec.target):
            cut = None
        try:
            for data in self._body_chunks():
                feed.nbytes += len(data)
                rec.request_bytes = feed.nbytes
                if len(rec.body) < owner.record_body_bytes:
                    rec.body += data[: owner.record_body_bytes - len(rec.body)]
                if cut is not None and feed.nbytes >= cut:
                    # The connection drops mid-upload: git never sees a complete request.
                    rec.aborted = True
                    if feed.proc is not None:
                        feed.proc.kill()
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    raise _ClientGone("upload cut on purpose")
                if broken:
                    continue  # http-backend stopped reading; keep draining the socket
                try:
                    stdin.write(data)
                except (BrokenPipeError, ValueError):
                    broken = True
        except (OSError, ValueError, _ClientGone) as exc:
            feed.error = exc
        finally:
            with contextlib.suppress(OSError, ValueError):
                stdin.close()
            feed.done.set()

    def _run_backend(self, owner: GitHTTPServer, rec: RecordedRequest) -> None:
        env = owner._backend_env()
        env["REQUEST_METHOD"] = self.command
        env["PATH_INFO"] = rec.path
        env["QUERY_STRING"] = rec.query
        env["REMOTE_ADDR"] = self.client_address[0]
        env["SERVER_PROTOCOL"] = "HTTP/1.1"
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        if content_type := self.headers.get("Content-Type"):
            env["CONTENT_TYPE"] = content_type
        if not chunked and (length := self.headers.get("Content-Length")) is not None:
            env["CONTENT_LENGTH"] = length
        if rec.user:
            env["REMOTE_USER"] = rec.user
        if owner.protocol_v2 and (protocol := self.headers.get("Git-Protocol")):
            env["GIT_PROTOCOL"] = protocol
        if encoding := self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = encoding

        proc = subprocess.Popen(
            [owner.http_backend],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=str(owner.root),
        )
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        owner._track(proc, True)
        feed = _Feed(proc=proc)
        stderr_buf: list[bytes] = []
        feeder = threading.Thread(target=self._feed_stdin, args=(proc.stdin, rec, feed), daemon=True)
        stderr = proc.stderr
        err_reader = threading.Thread(target=lambda: stderr_buf.append(stderr.read()), daemon=True)
        feeder.start()
        err_reader.start()
        try:
            self._relay_response(owner, rec, proc, feeder, err_reader, stderr_buf)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            owner._track(proc, False)
            feeder.join(timeout=10)
            err_reader.join(timeout=10)
            for stream in (proc.stdout, proc.stderr):
                with contextlib.suppress(OSError):
                    stream.close()
            if feed.error is not None or feeder.is_alive():
                self.close_connection = True

    def _relay_response(
        self,
        owner: GitHTTPServer,
        rec: RecordedRequest,
        proc: subprocess.Popen[bytes],
        feeder: threading.Thread,
        err_reader: threading.Thread,
        stderr_buf: list[bytes],
    ) -> None:
        stdout = cast(io.BufferedReader, proc.stdout)
        status = 200
        reason: str | None = None
        headers: list[tuple[str, str]] = []
        saw_header_end = False
        while True:
            line = stdout.readline(65536)
            if not line:
                break
            text = line.decode("latin-1").rstrip("\r\n")
            if not text:
                saw_header_end = True
                break
            key, _, value = text.partition(":")
            value = value.strip()
            if key.lower() == "status":
                code, _, reason_text = value.partition(" ")
                status, reason = int(code), (reason_text or None)
            elif key.lower() not in ("content-length", "transfer-encoding", "connection"):
                headers.append((key, value))

        if not saw_header_end:
            proc.wait()
            feeder.join(timeout=10)
            err_reader.join(timeout=10)
            rec.stderr = b"".join(stderr_buf).decode("utf-8", "replace")
            rec.kind = "git"
            self._send_simple_after_feed(rec, 502, f"http-backend failed:\n{rec.stderr}".encode())
            return

        rec.status = status
        self.send_response(status, reason)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        limit = owner.close_mid_response_after_bytes
        if limit is not None and not _matches(owner.close_mid_response_path_contains, rec.target):
            limit = None
        while True:
            data = stdout.read1(_CHUNK)
            if not data:
                break
            if limit is not None and rec.response_bytes + len(data) >= limit:
                data = data[: limit - rec.response_bytes]
                rec.response_bytes += len(data)
                rec.aborted = True
                rec.finish()
                if data:
                    self._write(b"%x\r\n%s\r\n" % (len(data), data))
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                proc.kill()
                return
            rec.response_bytes += len(data)
            self._write(b"%x\r\n%s\r\n" % (len(data), data))

        proc.wait()
        feeder.join(timeout=30)
        err_reader.join(timeout=10)
        rec.stderr = b"".join(stderr_buf).decode("utf-8", "replace")
        rec.finish()  # final before the client can see the end of the response
        self._write(b"0\r\n\r\n")

    def _send_simple_after_feed(self, rec: RecordedRequest, status: int, body: bytes) -> None:
        rec.status = status
        rec.response_bytes = len(body)
        rec.finish()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self._write(body)

    def _write(self, data: bytes) -> None:
        try:
            self.wfile.write(data)
        except OSError as exc:
            raise _ClientGone(str(exc)) from exc


def _matches(needle: str | None, target: str) -> bool:
    return needle is None or needle in target


class GitHTTPServer:
    """Serve the bare repositories under ``root`` over git smart HTTP on 127.0.0.1."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        username: str | None = None,
        password: str | None = None,
        extra_config: dict[str, str] | None = None,
        *,
        protocol_v2: bool = True,
        lfs: bool = False,
    ) -> None:
        self.root = Path(root).resolve()
        # a giftless LFS server under every repository's info/lfs/, started with the server
        self.lfs: LfsMount | None = LfsMount(self.root / ".lfs-objects") if lfs else None
        # False: the Git-Protocol header is not passed on, so git answers in protocol v0 as a server
        # without v2 support would (older hosts)
        self.protocol_v2 = protocol_v2
        self.root.mkdir(parents=True, exist_ok=True)
        self.username = username
        self.password = password
        self.extra_config = dict(extra_config or {})
        self.http_backend = _http_backend_path()
        self.requests: list[RecordedRequest] = []
        self.record_body_bytes = 0  # keep this much of each request body in RecordedRequest.body
        self.stall_seconds: float = 0.0
        self.stall_path_contains: str | None = None
        self.close_mid_response_after_bytes: int | None = None
        self.close_mid_response_path_contains: str | None = None
        # drop the connection once that many request body bytes arrived (a push cut mid-upload)
        self.close_mid_request_after_bytes: int | None = None
        self.close_mid_request_path_contains: str | None = None
        self._lock = threading.Lock()
        self._fail_rules: list[_FailRule] = []
        self._procs: set[subprocess.Popen[bytes]] = set()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> GitHTTPServer:
        if self._httpd is not None:
            return self
        if self.lfs is not None:
            self.lfs.start()
        self._httpd = _Server(self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        if self.lfs is not None:
            self.lfs.stop()
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            procs = list(self._procs)
        for proc in procs:
            with contextlib.suppress(OSError):
                proc.kill()

    def __enter__(self) -> GitHTTPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def repo_url(self, name: str) -> str:
        return f"{self.url}/{name}"

    def authed_repo_url(self, name: str, username: str | None = None, password: str | None = None) -> str:
        """``http://user:pass@127.0.0.1:PORT/name`` using the server's credentials by default."""
        user = username if username is not None else self.username
        pw = password if password is not None else self.password
        return f"http://{user}:{pw}@127.0.0.1:{self.port}/{name}"

    # -- repositories -------------------------------------------------------------------

    def repo_path(self, name: str) -> Path:
        return self.root / name

    def create_bare(self, name: str, default_branch: str = "main") -> Path:
        path = self.root / name
        subprocess.run(
            ["git", "init", "-q", "--bare", "-b", default_branch, str(path)], check=True, capture_output=True
        )
        return path

    def install_hook(self, name: str, hook_name: str, script_text: str) -> Path:
        """Write an executable hook (``#!/bin/sh`` is prepended when there is no shebang)."""
        if not script_text.startswith("#!"):
            script_text = "#!/bin/sh\n" + script_text
        hook = self.root / name / "hooks" / hook_name
        hook.parent.mkdir(parents=True, exist_ok=True)
        hook.write_text(script_text)
        hook.chmod(0o755)
        return hook

    # -- an HTTP API beside git (subclasses: a host's REST endpoints) ----------------------

    def is_api_path(self, method: str, path: str) -> bool:
        """Whether a request is for the API (answered by `api_request`) rather than git."""
        return False

    def api_request(self, rec: RecordedRequest, body: bytes) -> tuple[int, object]:
        """(status, JSON reply) for an API request; `rec.headers` holds its headers."""
        raise NotImplementedError

    # -- test hooks ---------------------------------------------------------------------

    def fail_next(self, status: int, count: int = 1, path_contains: str | None = None) -> None:
        """Answer the next ``count`` authenticated requests whose ``path?query`` contains
        ``path_contains`` (any request when None) with ``status`` instead of git."""
        with self._lock:
            self._fail_rules.append(_FailRule(status, count, path_contains))

    def clear_failures(self) -> None:
        with self._lock:
            self._fail_rules.clear()

    # -- request log --------------------------------------------------------------------

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self.requests)

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    def requests_matching(
        self,
        path_contains: str | None = None,
        method: str | None = None,
        service: str | None = None,
        kind: str | None = None,
    ) -> list[RecordedRequest]:
        with self._lock:
            snapshot = list(self.requests)
        return [
            r
            for r in snapshot
            if _matches(path_contains, r.target)
            and (method is None or r.method == method)
            and (service is None or r.service == service)
            and (kind is None or r.kind == kind)
        ]

    def rpc_requests(self, service: str) -> list[RecordedRequest]:
        """POST requests of ``git-upload-pack`` or ``git-receive-pack`` (actual fetch/push)."""
        return self.requests_matching(method="POST", service=service)

    def bytes_received(self, service: str | None = None) -> int:
        return sum(r.request_bytes for r in self.requests_matching(service=service))

    def bytes_sent(self, service: str | None = None) -> int:
        return sum(r.response_bytes for r in self.requests_matching(service=service))

    # -- internals used by the handler --------------------------------------------------

    def _record(self, rec: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(rec)

    def _track(self, proc: subprocess.Popen[bytes], add: bool) -> None:
        with self._lock:
            if add:
                self._procs.add(proc)
            else:
                self._procs.discard(proc)

    def _take_failure(self, target: str) -> int | None:
        with self._lock:
            for rule in self._fail_rules:
                if _matches(rule.path_contains, target):
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        self._fail_rules.remove(rule)
                    return rule.status
        return None

    def _check_auth(self, header: str | None) -> tuple[bool, str | None]:
        """(authorized, user).  Without configured credentials every request is authorized."""
        user: str | None = None
        password = ""
        if header and header[:6].lower() == "basic ":
            try:
                decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                decoded = ""
            if ":" in decoded:
                user, _, password = decoded.partition(":")
        if self.username is None and self.password is None:
            return True, user
        if user is None:
            return False, None
        user_ok = hmac.compare_digest(user.encode(), (self.username or "").encode())
        pass_ok = hmac.compare_digest(password.encode(), (self.password or "").encode())
        if user_ok & pass_ok:
            return True, user
        return False, user

    def _is_git_path(self, path: str) -> bool:
        first = path.lstrip("/").split("/", 1)[0]
        if not first or first in (".", ".."):
            return False
        return first.endswith(".git") or (self.root / first).is_dir()

    def _backend_env(self) -> dict[str, str]:
        config = {"http.receivepack": "true", **self.extra_config}
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": str(self.root),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "LC_ALL": "C",
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_CONFIG_COUNT": str(len(config)),
        }
        for i, (key, value) in enumerate(config.items()):
            env[f"GIT_CONFIG_KEY_{i}"] = key
            env[f"GIT_CONFIG_VALUE_{i}"] = value
        return env


@contextlib.contextmanager
def serve_git(
    root: str | os.PathLike[str],
    username: str | None = None,
    password: str | None = None,
    extra_config: dict[str, str] | None = None,
    *,
    lfs: bool = False,
) -> Iterator[GitHTTPServer]:
    """Start a :class:`GitHTTPServer` for the duration of the ``with`` block."""
    server = GitHTTPServer(root, username=username, password=password, extra_config=extra_config, lfs=lfs)
    with server:
        yield server
