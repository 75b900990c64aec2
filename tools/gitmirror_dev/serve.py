"""`gitmirror serve`: the HTTP API on a local port, calling the same Lambda handlers.

Each request becomes an API Gateway HTTP API (payload 2.0) event; the handlers talk to whatever AWS
endpoint the environment names (`AWS_ENDPOINT_URL`, e.g. a moto server). No AWS account, no Docker.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import threading
from collections.abc import MutableMapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

from gitmirror_dev.lambdas import http_event, invoke_http, load_function

MAX_REQUEST_BYTES = 32 * 1024 * 1024
LOCAL_DEFAULTS = {
    # Powertools refuses to flush metrics without a namespace: the handler would raise on every request
    "POWERTOOLS_SERVICE_NAME": "gitmirror",
    "POWERTOOLS_METRICS_NAMESPACE": "gitmirror",
    "POWERTOOLS_TRACE_DISABLED": "true",
}
_INTERNAL_ERROR = b'{"error": "internal error: see the server log"}'
logger = logging.getLogger(__name__)


def apply_local_defaults(environ: MutableMapping[str, str] = os.environ) -> None:
    """What the SAM template sets for the functions, for a local run that names only AWS_ENDPOINT_URL."""
    for key, value in LOCAL_DEFAULTS.items():
        environ.setdefault(key, value)
    endpoint = environ.get("AWS_ENDPOINT_URL", "")
    if endpoint and not (environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")):
        environ["AWS_DEFAULT_REGION"] = "us-east-1"
    host = urlsplit(endpoint).hostname or ""
    try:
        local = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = False
    if local and not (environ.get("AWS_ACCESS_KEY_ID") or environ.get("AWS_PROFILE")):
        # a local emulator accepts any key; never sent anywhere but AWS_ENDPOINT_URL on loopback
        environ["AWS_ACCESS_KEY_ID"] = environ["AWS_SECRET_ACCESS_KEY"] = "local"


class LocalApi:
    """The routes of template.yaml's HTTP API, served by the local handler modules."""

    def __init__(self) -> None:
        apply_local_defaults()
        self.webhook = load_function("webhook")
        self.api: ModuleType | None
        try:
            self.api = load_function("api")
        except (FileNotFoundError, RuntimeError):
            self.api = None
        # Powertools' resolvers keep the current event on the app object: one request at a time per
        # function, as one Lambda execution environment would.
        self._locks = {"webhook": threading.Lock(), "api": threading.Lock()}

    def handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        if path.startswith("/webhooks/"):
            name, module = "webhook", self.webhook
        elif (path == "/mirrors" or path.startswith("/mirrors/")) and self.api is not None:
            name, module = "api", self.api
        else:
            return 404, {"Content-Type": "application/json"}, b'{"error": "not found"}'
        event = http_event(method, path, headers, body, iam_user_arn="arn:aws:iam::123456789012:user/local")
        with self._locks[name]:
            return invoke_http(module, event)


class _Server(ThreadingHTTPServer):
    # A burst of concurrent webhooks (the load test sends 16 at once) overflows socketserver's listen
    # backlog of 5 while the accepting thread waits for the GIL on a busy machine, and the kernel then
    # drops or resets connections: seen as ConnectionResetError in tests/e2e/test_load.py.
    request_queue_size = 128
    daemon_threads = True


def make_server(host: str, port: int, api: LocalApi | None = None) -> ThreadingHTTPServer:
    local = api or LocalApi()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "gitmirror-serve"

        def log_message(self, format: str, *args: Any) -> None:  # quiet: the handlers log themselves
            return

        def _body(self) -> bytes | None:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks: list[bytes] = []
                total = 0
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        return b"".join(chunks)
                    total += size
                    if total > MAX_REQUEST_BYTES:
                        return None
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_REQUEST_BYTES:
                return None
            return self.rfile.read(length) if length else b""

        def _handle(self) -> None:
            try:
                body = self._body()
            except ValueError:
                self._reply(400, {"Content-Type": "application/json"}, b'{"error": "malformed request body"}')
                return
            if body is None:
                self.close_connection = True
                self._reply(413, {"Content-Type": "application/json"}, b'{"error": "request body too large"}')
                return
            headers = {k: v for k, v in self.headers.items()}
            try:
                status, out_headers, out = local.handle(self.command, self.path, headers, body)
            except Exception:  # what Lambda + API Gateway answer: a 500, never a dropped connection
                logger.exception("gitmirror serve: the handler failed on %s %s", self.command, self.path)
                status, out_headers, out = 500, {"Content-Type": "application/json"}, _INTERNAL_ERROR
            self._reply(status, out_headers, out)

        def _reply(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            for key, value in headers.items():
                if key.lower() not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle

    server = _Server((host, port), Handler)
    return server


def serve_in_thread(host: str = "127.0.0.1", port: int = 0) -> tuple[ThreadingHTTPServer, str]:
    server = make_server(host, port)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    return server, f"http://{host}:{server.server_address[1]}"
