"""Smaller holes: echoed Basic credentials, ids and secret names with a trailing newline, `gitmirror
serve` with nothing but AWS_ENDPOINT_URL, and an unhandled error in serve answered as a 500."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from dulwich.protocol import pkt_line

from gitmirror.mirror.credentials import StaticCredentials
from gitmirror.mirror.engine import sync_mirror
from gitmirror.mirror.transport import Remote
from gitmirror.mirror.urls import parse_remote
from gitmirror.records import MirrorSettings, MirrorSpec
from gitmirror.values import RunStatus
from gitmirror_dev.moto_stack import moto_server
from gitmirror_dev.serve import LocalApi, make_server
from tests.conftest import TARGET_TOKEN, TARGET_USER, GitServers

GITMIRROR = str(Path(sys.executable).with_name("gitmirror"))
USER, TOKEN = "echo-user", "canary-ECHO-3b7d9f1a2c"


@pytest.fixture
def echoing_server() -> Iterator[str]:
    """A git server that answers the ref advertisement with an `ERR` line echoing what it was sent:
    the Authorization header's credentials, base64 as sent, and base64 of the token alone."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            auth = self.headers.get("Authorization")
            if not auth:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="git"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            blob = auth.split()[-1]
            token = base64.b64decode(blob).split(b":", 1)[1]
            text = b"ERR bad request: credentials " + blob.encode() + b" token " + base64.b64encode(token)
            body = pkt_line(b"# service=git-upload-pack\n") + pkt_line(None) + pkt_line(text + b"\n")
            self.send_response(200)
            self.send_header("Content-Type", "application/x-git-upload-pack-advertisement")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/r.git"
    finally:
        server.shutdown()
        server.server_close()


def test_credentials_echoed_by_a_server_as_base64_are_scrubbed(
    echoing_server: str, git_servers: GitServers
) -> None:
    result = sync_mirror(
        Remote(parse_remote(echoing_server), StaticCredentials(USER, TOKEN)),
        Remote(parse_remote(git_servers.target_url), StaticCredentials(TARGET_USER, TARGET_TOKEN)),
    )
    assert result.status == RunStatus.FAILED and result.error and "bad request: credentials" in result.error
    echoed = base64.b64encode(f"{USER}:{TOKEN}".encode()).decode()
    token_alone = base64.b64encode(TOKEN.encode()).decode()
    assert TOKEN not in result.error
    assert echoed not in result.error and token_alone not in result.error


@pytest.mark.parametrize("value", ["nl\n", "acme\n", "acme\r\n"])
def test_ids_and_secret_names_must_match_entirely(value: str) -> None:
    with pytest.raises(ValueError, match="id must be"):
        MirrorSpec(
            id=value,
            source_url="https://github.com/a/b.git",
            url="https://example.com/m.git",
            provider="github",
        )  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="secret names may use"):
        MirrorSettings(target_secret=f"gitmirror/{value}")


def _request(url: str, method: str = "GET", body: bytes | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def test_serve_with_only_aws_endpoint_url(tmp_path: Path) -> None:
    """No POWERTOOLS_* variables, no region, no keys, no table names: the defaults of the template."""
    with moto_server() as endpoint:
        env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "AWS_ENDPOINT_URL": endpoint}
        proc = subprocess.Popen(
            [GITMIRROR, "serve", "--port", "0"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line.startswith("gitmirror serve: http://"), line + (
                proc.stderr.read() if proc.stderr else ""
            )
            base = line.split()[2]
            # no tables yet: an error answered as JSON, not a dropped connection
            status, reply = _request(f"{base}/mirrors")
            assert status >= 500 and isinstance(reply, dict) and reply.get("error")
            ddb = boto3.client(
                "dynamodb",
                endpoint_url=endpoint,
                region_name="us-east-1",
                aws_access_key_id="local",
                aws_secret_access_key="local",
            )
            ddb.create_table(
                TableName="gitmirror-mirrors",
                BillingMode="PAY_PER_REQUEST",
                AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            )
            assert _request(f"{base}/mirrors") == (200, {"mirrors": []})
            status, reply = _request(f"{base}/webhooks/github", "POST", b"{}")
            assert 400 <= status < 500 and reply.get("error")  # unsigned: refused, with a JSON reason
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def test_serve_answers_500_json_when_a_handler_raises() -> None:
    class Broken(LocalApi):
        def __init__(self) -> None:  # no handler modules needed
            pass

        def handle(
            self, method: str, path: str, headers: dict[str, str], body: bytes
        ) -> tuple[int, dict[str, str], bytes]:
            raise RuntimeError("boom")

    server = make_server("127.0.0.1", 0, Broken())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        started = time.monotonic()
        status, reply = _request(f"http://127.0.0.1:{server.server_address[1]}/mirrors")
        assert status == 500 and reply == {"error": "internal error: see the server log"}
        assert time.monotonic() - started < 10
    finally:
        server.shutdown()
        server.server_close()
