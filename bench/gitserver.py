"""A small loopback git smart-HTTP server for the benchmark.

It serves every bare repository below ``root`` through ``git http-backend`` (CGI),
on 127.0.0.1 and an ephemeral port, with push enabled (``http.receivepack=true``)
and optional HTTP Basic auth. It counts, per repository, the request body bytes
(bytes a client sent to the server) and the response body bytes (bytes a client
received from it). Counts are payload bytes: chunked framing and headers are not
counted, a gzip-encoded request body is counted as it travelled (compressed).

Usage as a library::

    with GitHTTPServer(root, username="u", password="p") as srv:
        url = srv.url_for("repo.git")
        ...
        srv.stats()   # {"repo.git": {"request_bytes": ..., "response_bytes": ..., "requests": ...}}
        srv.reset()

Run standalone for manual poking: ``python bench/gitserver.py ROOT``.
"""

from __future__ import annotations

import base64
import hmac
import os
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CHUNK = 64 * 1024


def _http_backend() -> str:
    exec_path = subprocess.run(
        ["git", "--exec-path"], check=True, capture_output=True, text=True
    ).stdout.strip()
    return os.path.join(exec_path, "git-http-backend")


class _Counters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, dict[str, int]] = {}

    def add(self, repo: str, key: str, n: int) -> None:
        with self._lock:
            entry = self._data.setdefault(repo, {"request_bytes": 0, "response_bytes": 0, "requests": 0})
            entry[key] += n

    def snapshot(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {k: dict(v) for k, v in self._data.items()}

    def reset(self) -> None:
        with self._lock:
            self._data.clear()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        self._cgi()

    def do_POST(self) -> None:
        self._cgi()

    # -- helpers -------------------------------------------------------------

    def _plain(self, code: int, msg: str, extra: dict[str, str] | None = None) -> None:
        body = (msg + "\n").encode()
        self.send_response(code)
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def _authorized(self) -> tuple[bool, str | None]:
        srv = self.server
        if srv.username is None and srv.password is None:
            return True, None
        header = self.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return False, None
        try:
            user, _, pw = base64.b64decode(value.strip()).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False, None
        ok = hmac.compare_digest(user, srv.username or "") and hmac.compare_digest(pw, srv.password or "")
        return ok, user if ok else None

    def _body_chunks(self) -> Iterator[bytes]:
        te = self.headers.get("Transfer-Encoding", "").lower()
        if "chunked" in te:
            while True:
                line = self.rfile.readline(1024)
                if not line:
                    raise ConnectionError("eof in chunked body")
                size = int(line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return
                remaining = size
                while remaining:
                    data = self.rfile.read(min(remaining, CHUNK))
                    if not data:
                        raise ConnectionError("eof in chunk")
                    remaining -= len(data)
                    yield data
                self.rfile.readline(16)  # CRLF after chunk
        else:
            remaining = int(self.headers.get("Content-Length") or 0)
            while remaining:
                data = self.rfile.read(min(remaining, CHUNK))
                if not data:
                    raise ConnectionError("eof in body")
                remaining -= len(data)
                yield data

    def _cgi(self) -> None:
        srv = self.server
        split = urllib.parse.urlsplit(self.path)
        path_info = urllib.parse.unquote(split.path)
        if ".." in path_info.split("/"):
            self._plain(403, "forbidden")
            return
        parts = [p for p in path_info.split("/") if p]
        repo = parts[0] if parts else ""

        ok, user = self._authorized()
        if not ok:
            # Drain the body (if small) is not needed: we close the connection.
            self._plain(401, "authentication required", {"WWW-Authenticate": 'Basic realm="bench"'})
            return

        env = dict(srv.base_env)
        env.update(
            {
                "REQUEST_METHOD": self.command,
                "PATH_INFO": path_info,
                "QUERY_STRING": split.query,
                "REMOTE_ADDR": self.client_address[0],
                "SERVER_PROTOCOL": "HTTP/1.1",
                "GATEWAY_INTERFACE": "CGI/1.1",
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            }
        )
        if user:
            env["REMOTE_USER"] = user
        proto = self.headers.get("Git-Protocol")
        if proto:
            env["GIT_PROTOCOL"] = proto
        enc = self.headers.get("Content-Encoding")
        if enc:
            env["HTTP_CONTENT_ENCODING"] = enc
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        has_body = self.command == "POST"
        if has_body and not chunked:
            env["CONTENT_LENGTH"] = str(int(self.headers.get("Content-Length") or 0))
        # Without CONTENT_LENGTH http-backend reads the request body until EOF.

        proc = subprocess.Popen(
            [srv.backend],
            stdin=subprocess.PIPE if has_body else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=srv.stderr,
            env=env,
        )
        srv.counters.add(repo, "requests", 1)
        feed_error: list[BaseException] = []

        def feed() -> None:
            assert proc.stdin is not None
            try:
                for data in self._body_chunks():
                    srv.counters.add(repo, "request_bytes", len(data))
                    try:
                        proc.stdin.write(data)
                    except BrokenPipeError:
                        feed_error.append(BrokenPipeError())
                        # keep draining the socket so the client is not stuck
            except (OSError, ValueError) as exc:
                feed_error.append(exc)
            finally:
                try:
                    proc.stdin.close()
                except BrokenPipeError:
                    pass

        feeder = None
        if has_body:
            feeder = threading.Thread(target=feed, daemon=True)
            feeder.start()

        assert proc.stdout is not None
        try:
            self._relay(proc, repo)
        finally:
            if feeder is not None:
                feeder.join()
            proc.stdout.close()
            proc.wait()
        if feed_error:
            self.close_connection = True

    def _relay(self, proc: subprocess.Popen[bytes], repo: str) -> None:
        assert proc.stdout is not None
        out = proc.stdout
        head = b""
        while b"\r\n\r\n" not in head and b"\n\n" not in head:
            data = out.read1(CHUNK)
            if not data:
                break
            head += data
        sep = b"\r\n\r\n" if b"\r\n\r\n" in head else b"\n\n"
        if sep not in head:
            self._plain(502, "bad gateway: no CGI headers")
            return
        raw_headers, _, rest = head.partition(sep)
        status = 200
        reason = None
        headers: list[tuple[str, str]] = []
        for line in raw_headers.decode("latin-1").splitlines():
            if not line.strip():
                continue
            name, _, value = line.partition(":")
            name, value = name.strip(), value.strip()
            if name.lower() == "status":
                code, _, reason = value.partition(" ")
                status = int(code)
            else:
                headers.append((name, value))
        self.send_response(status, reason or None)
        has_length = any(n.lower() == "content-length" for n, _ in headers)
        for name, value in headers:
            self.send_header(name, value)
        if not has_length:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def emit(data: bytes) -> None:
            if not data:
                return
            self.server.counters.add(repo, "response_bytes", len(data))
            if has_length:
                self.wfile.write(data)
            else:
                self.wfile.write(b"%x\r\n%b\r\n" % (len(data), data))

        emit(rest)
        while True:
            data = out.read1(CHUNK)
            if not data:
                break
            emit(data)
        if not has_length:
            self.wfile.write(b"0\r\n\r\n")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    username: str | None
    password: str | None
    backend: str
    base_env: dict[str, str]
    counters: _Counters
    stderr: Any
    verbose: bool

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients dropping keep-alive connections when they exit are normal.
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


class GitHTTPServer:
    """Threaded smart-HTTP git server on 127.0.0.1:<ephemeral> with byte counters."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        username: str | None = None,
        password: str | None = None,
        stderr: Any = subprocess.DEVNULL,
        verbose: bool = False,
    ) -> None:
        self.root = os.path.abspath(root)
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.username = username
        self._httpd.password = password
        self._httpd.backend = _http_backend()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "HTTP_"))}
        # Parent-env config from GIT_CONFIG_* must not leak in; ours is explicit.
        env.update(
            {
                "GIT_PROJECT_ROOT": self.root,
                "GIT_HTTP_EXPORT_ALL": "1",
                "GIT_CONFIG_COUNT": "1",
                "GIT_CONFIG_KEY_0": "http.receivepack",
                "GIT_CONFIG_VALUE_0": "true",
            }
        )
        self._httpd.base_env = env
        self._httpd.counters = _Counters()
        self._httpd.stderr = stderr
        self._httpd.verbose = verbose
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url_for(self, repo: str) -> str:
        return f"{self.url}/{repo}"

    def start(self) -> GitHTTPServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1})
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join()

    def stats(self) -> dict[str, dict[str, int]]:
        return self._httpd.counters.snapshot()

    def repo_stats(self, repo: str) -> dict[str, int]:
        return self.stats().get(repo, {"request_bytes": 0, "response_bytes": 0, "requests": 0})

    def reset(self) -> None:
        self._httpd.counters.reset()

    def __enter__(self) -> GitHTTPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str]) -> int:
    import argparse
    import time

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root")
    ap.add_argument("--username")
    ap.add_argument("--password")
    args = ap.parse_args(argv)
    with GitHTTPServer(args.root, args.username, args.password, stderr=None, verbose=True) as srv:
        print(f"serving {srv.root} at {srv.url}", flush=True)
        try:
            while True:
                time.sleep(5)
                print(srv.stats(), flush=True)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
