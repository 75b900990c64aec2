"""Remote URLs: parse, split credentials off, mask for display, and the network policy (SSRF)."""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from gitmirror.errors import UsageError
from gitmirror.scrub import register_secret

_SCP_LIKE = re.compile(r"^[\w.-]+@[\w.-]+:")


@dataclass(frozen=True)
class RemoteURL:
    """A git remote. `url` never carries userinfo; embedded credentials are kept apart and masked."""

    url: str
    local_path: str | None = None
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)

    @property
    def is_local(self) -> bool:
        return self.local_path is not None

    @property
    def scheme(self) -> str:
        return "file" if self.is_local else urlsplit(self.url).scheme

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    def __str__(self) -> str:
        return self.url


def parse_remote(value: str) -> RemoteURL:
    """Parse an http(s) URL, a file:// URL or a local path. Raises UsageError with a one-line reason."""
    if not value or not value.strip():
        raise UsageError("empty repository URL")
    if any(c in value for c in "\x00\r\n\t "):
        raise UsageError("repository URL contains whitespace or control characters")
    if _SCP_LIKE.match(value) or value.startswith(("ssh://", "git://", "git+ssh://")):
        raise UsageError("only http(s):// URLs and local paths are supported (not ssh or git://)")
    if "://" not in value:
        path = Path(value).expanduser().resolve()
        return RemoteURL(url=path.as_uri(), local_path=str(path))
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise UsageError(f"malformed repository URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise UsageError("file:// URLs must name a local path")
        path = Path(unquote(parts.path)).resolve()
        return RemoteURL(url=path.as_uri(), local_path=str(path))
    if scheme not in ("http", "https"):
        raise UsageError(f"unsupported URL scheme {scheme!r}: use https://, http:// or a local path")
    if not parts.hostname:
        raise UsageError("repository URL has no host")
    if parts.query or parts.fragment:
        raise UsageError("repository URL must not have a query or fragment")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    register_secret(password)
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    clean = urlunsplit((scheme, netloc, parts.path or "/", "", ""))
    return RemoteURL(url=clean, username=username, password=password)


_HOST_LIKE = re.compile(r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+(:[0-9]+)?$")


def missing_scheme_hint(value: str) -> str | None:
    """`github.com/acme/app` reads as a local path; when the start looks like a host name, the URL meant
    (`https://github.com/acme/app`), else None."""
    if "://" in value or value.startswith(("/", ".", "~")):
        return None
    host, _, rest = value.partition("/")
    if not rest or not _HOST_LIKE.match(host) or host.lower().endswith(".git"):
        return None
    return f"https://{value}"


def has_userinfo(value: str) -> bool:
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return bool(parts.username or parts.password)


# --- network policy ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class NetworkPolicy:
    """Where a deployment may fetch from and push to.

    By default: https only; loopback, link-local (169.254.0.0/16, the instance metadata address),
    private and other non-global addresses refused. Tests and the local stack allow loopback.
    """

    allow_insecure_http: bool = False
    allow_loopback: bool = False
    allow_private: bool = False
    allow_local_paths: bool = False

    def check_address(self, address: str) -> None:
        ip = ipaddress.ip_address(address)
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if ip.is_loopback:
            if not self.allow_loopback:
                raise UsageError("repository host resolves to a loopback address, which is not allowed")
            return
        if ip.is_link_local or ip.is_multicast or ip.is_unspecified or ip.is_reserved:
            raise UsageError("repository host resolves to a link-local or reserved address, not allowed")
        if not ip.is_global and not self.allow_private:
            raise UsageError("repository host resolves to a private address, which is not allowed")

    def check_url(self, remote: RemoteURL, *, resolve: bool = True) -> None:
        """Raise UsageError when the deployment may not talk to this remote."""
        if remote.is_local:
            if not self.allow_local_paths:
                raise UsageError("local paths are not allowed as repository URLs here")
            return
        if remote.scheme != "https" and not self.allow_insecure_http:
            raise UsageError("repository URLs must use https://")
        host = remote.host
        try:
            self.check_address(host)
            return
        except ValueError:
            pass  # a name, not a literal address
        if host.lower() in ("localhost", "localhost.localdomain") or host.lower().endswith(".localhost"):
            if not self.allow_loopback:
                raise UsageError("repository host is localhost, which is not allowed")
            return
        if not resolve:
            return
        try:
            infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
        except OSError:
            return  # unresolvable now: the transfer will fail with a clear network error
        for info in infos:
            self.check_address(str(info[4][0]))


PERMISSIVE = NetworkPolicy(
    allow_insecure_http=True, allow_loopback=True, allow_private=True, allow_local_paths=True
)
