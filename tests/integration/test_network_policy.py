"""The network policy judges what is really connected to: the host as urllib3 parses it, resolved once
per operation, the connection pinned to the checked address (Host and TLS SNI stay the name)."""

from __future__ import annotations

import datetime as dt
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest
import urllib3

from gitmirror.adapters.aws.queue import SqsJobQueue
from gitmirror.errors import TransientError, UsageError
from gitmirror.jobs import make_job
from gitmirror.mirror.credentials import StaticCredentials
from gitmirror.mirror.engine import sync_mirror
from gitmirror.mirror.transport import Remote
from gitmirror.mirror.urls import NetworkPolicy, parse_remote, pinned_pool_manager
from gitmirror.values import RunStatus, Trigger, UpdateStatus
from gitmirror_dev.lambdas import QueuePoller, load_function
from tests.conftest import SOURCE_TOKEN, SOURCE_USER, TARGET_TOKEN, TARGET_USER, AwsEnv, GitServers
from tests.support import gitrepo as g
from tests.support.service import add_mirror, store

MAIN = "refs/heads/main"
PRODUCTION = NetworkPolicy()
HTTP_ONLY = NetworkPolicy(allow_insecure_http=True)
# every disguise of a forbidden address the issue found accepted, and the numeric forms a resolver takes
DISGUISES = [
    ("https://%31%36%39.254.169.254/latest", "link-local"),
    ("https://169.254.169.254./latest", "link-local"),
    ("https://%31%32%37.0.0.1/r.git", "loopback"),
    ("https://127.0.0.1./r.git", "loopback"),
    ("https://localhost./r.git", "localhost"),
    ("https://LOCALHOST/r.git", "localhost"),
    ("https://%6c%6fcalhost/r.git", "localhost"),
    ("https://2130706433/r.git", "non-standard form of the address 127.0.0.1"),
    ("https://0x7f000001/r.git", "non-standard form of the address 127.0.0.1"),
    ("https://0x7f.1/r.git", "non-standard form of the address 127.0.0.1"),
    ("https://0177.0.0.1/r.git", "non-standard form of the address 127.0.0.1"),
    ("https://127.1/r.git", "non-standard form of the address 127.0.0.1"),
    ("https://0xa9fea9fe/latest", "non-standard form of the address 169.254.169.254"),
    ("https://[::ffff:127.0.0.1]/r.git", "loopback"),
    ("https://[::ffff:a9fe:a9fe]/latest", "link-local"),
    ("https://[::1]/r.git", "loopback"),
    ("https://[fe80::1%25eth0]/r.git", "IPv6 zone"),
    ("https://127.0.0.1%2509/r.git", "percent-escapes"),
    ("https://git_host.example.com/r.git", "plain host name"),
    ("https://999.1.1.1/r.git", "plain host name"),
    ("https://\u2603.example.com/r.git", "not a valid host name"),
]


@pytest.mark.parametrize(("url", "says"), DISGUISES)
def test_every_disguised_host_is_refused_by_the_production_policy(url: str, says: str) -> None:
    with pytest.raises(UsageError, match=says):
        PRODUCTION.check_url(parse_remote(url), resolve=False)


def test_the_stored_url_is_the_host_the_client_connects_to() -> None:
    assert parse_remote("https://%67ithub.com./acme/app.git").url == "https://github.com/acme/app.git"
    assert parse_remote("https://[0:0::ffff:1.2.3.4]/r").url == "https://[::ffff:102:304]/r"


def test_a_worker_refuses_a_stored_disguised_loopback_url_before_connecting(
    aws: AwsEnv, git_servers: GitServers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A record written before these rules (or by hand) is judged again, decoded, at run time."""
    g.commit(git_servers.source_path, MAIN, {"a": "1"})
    mirror = add_mirror(aws, git_servers.source_url, git_servers.target_url)
    disguised = git_servers.source_url.replace("127.0.0.1", "%31%32%37.0.0.1")
    boto3.resource("dynamodb").Table(aws.env["MIRRORS_TABLE"]).update_item(
        Key={"id": mirror.id},
        UpdateExpression="SET source_url = :u",
        ExpressionAttributeValues={":u": disguised},
    )
    monkeypatch.setenv("ALLOW_LOOPBACK", "false")
    git_servers.source.clear_requests()
    SqsJobQueue(aws.queue_url).enqueue(make_job(mirror.id, Trigger.MANUAL, None))
    QueuePoller(load_function("worker"), aws.queue_url).drain()
    after = store().get(mirror.id)
    assert after is not None and after.update_status == UpdateStatus.FAILED
    assert after.last_error and "loopback" in after.last_error
    assert git_servers.source.requests == []


def test_a_name_is_resolved_once_and_the_connection_pinned_to_the_checked_address(
    git_servers: GitServers,
) -> None:
    """`.invalid` never resolves (RFC 6761): reaching the server through it proves no second lookup."""
    g.commit(git_servers.source_path, MAIN, {"a": "1"})
    port = git_servers.source.port
    pool = pinned_pool_manager(parse_remote(f"http://git.invalid:{port}/src.git"), "127.0.0.1")
    resp = pool.request(
        "GET",
        f"http://git.invalid:{port}/src.git/info/refs?service=git-upload-pack",
        headers=urllib3.make_headers(basic_auth=f"{SOURCE_USER}:{SOURCE_TOKEN}"),
    )
    assert resp.status == 200 and b"refs/heads/main" in resp.data
    assert git_servers.source.requests[-1].header("host") == f"git.invalid:{port}"
    with pytest.raises(UsageError, match="only the checked repository host"):
        pool.request("GET", f"http://elsewhere.invalid:{port}/")

    # and through a Remote under a policy: `localhost` is looked up by the policy, the name is the Host
    git_servers.source.clear_requests()
    local = f"http://localhost:{port}/src.git"
    policy = NetworkPolicy(allow_insecure_http=True, allow_loopback=True)
    listing = Remote(
        parse_remote(local), StaticCredentials(SOURCE_USER, SOURCE_TOKEN), policy=policy
    ).list_refs()
    assert MAIN in listing.refs
    assert {r.header("host") for r in git_servers.source.requests} == {f"localhost:{port}"}


def test_an_unresolvable_name_is_refused_not_attempted(git_servers: GitServers) -> None:
    with pytest.raises(TransientError, match=r"cannot resolve repository host git\.invalid"):
        HTTP_ONLY.check_url(parse_remote("http://git.invalid/r.git"))
    result = sync_mirror(
        Remote(parse_remote("https://git.invalid/r.git"), policy=PRODUCTION),
        Remote(parse_remote(git_servers.target_url), StaticCredentials(TARGET_USER, TARGET_TOKEN)),
    )
    assert result.status == RunStatus.FAILED and result.error and "cannot resolve" in result.error
    assert all("receive-pack" not in r.path for r in git_servers.target.requests)


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, Path, list[str | None]]]:
    """HTTPS on 127.0.0.1 with a certificate for `git.invalid` only; records the SNI of each handshake."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "git.invalid")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("git.invalid")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    sni: list[str | None] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    context.sni_callback = lambda _sock, server_name, _ctx: sni.append(server_name)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = (self.headers.get("Host") or "").encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], cert_path, sni
    finally:
        server.shutdown()
        server.server_close()


def test_tls_to_the_pinned_address_sends_the_name_as_sni_and_checks_the_certificate_against_it(
    tls_server: tuple[int, Path, list[str | None]],
) -> None:
    port, cert, sni = tls_server
    pool = pinned_pool_manager(
        parse_remote(f"https://git.invalid:{port}/r.git"), "127.0.0.1", ca_certs=str(cert)
    )
    resp = pool.request("GET", f"https://git.invalid:{port}/r.git/info/refs")
    assert resp.status == 200 and resp.data == f"git.invalid:{port}".encode()
    assert sni == ["git.invalid"]
    # the same certificate does not pass for another name pinned to the same address
    other = pinned_pool_manager(
        parse_remote(f"https://other.invalid:{port}/r.git"), "127.0.0.1", ca_certs=str(cert), retries=False
    )
    with pytest.raises(urllib3.exceptions.SSLError):
        other.request("GET", f"https://other.invalid:{port}/r.git/info/refs")
