"""Remote URLs: parse, split credentials off, mask for display, and the network policy (SSRF)."""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import urllib3
from urllib3.connectionpool import HTTPConnectionPool

from gitmirror.errors import TransientError, UsageError
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
    host = normalize_host(parts.hostname, scheme)
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


_HOST_CHARACTERS = re.compile(r"[a-z0-9.-]{1,253}")


def normalize_host(raw: str, scheme: str = "https") -> str:
    """The host urllib3 will connect to for `raw` (urlsplit's hostname), in canonical form, or UsageError.

    urllib3 percent-decodes and IDNA-encodes the host (`%31%32%37.0.0.1` reaches 127.0.0.1) and the
    resolver takes numeric forms (`2130706433`, `0x7f.1`, `0177.0.0.1`, `127.1`) as IPv4 addresses:
    the policy must judge that host, not the text. Only a plain DNS name (letters, digits, hyphens) or
    an IP literal in its standard notation is accepted; one trailing dot is dropped.
    """
    bracketed = f"[{raw}]" if ":" in raw else raw
    try:
        host = (urllib3.util.parse_url(f"{scheme}://{bracketed}/").host or "").lower()
    except ValueError:
        raise UsageError("repository host is not a valid host name") from None
    host = host.removeprefix("[").removesuffix("]")
    if "%" in host:
        raise UsageError("repository host must not carry an IPv6 zone or percent-escapes")
    name = host.removesuffix(".")
    try:
        return ipaddress.ip_address(name).compressed
    except ValueError:
        pass
    try:
        numeric = socket.inet_aton(name)
    except OSError:
        numeric = None
    if numeric is not None:
        raise UsageError(
            f"repository host {name!r} is a non-standard form of the address {socket.inet_ntoa(numeric)}:"
            " write IPv4 addresses in dotted decimal"
        )
    # Only the characters are judged here; a malformed name (`a..b`, a label over 63 characters) is
    # harmless (it cannot be connected to) and is reported when the run starts (transport.check_host).
    if not name or not _HOST_CHARACTERS.fullmatch(name) or name.rsplit(".", 1)[-1].isdigit():
        raise UsageError(
            "repository host must be a plain host name (letters, digits, '-' and '.') or an IP address"
        )
    return name


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

    def check_url(self, remote: RemoteURL, *, resolve: bool = True) -> str | None:
        """Raise UsageError when the deployment may not talk to this remote; else the address to use.

        With `resolve`, the host's DNS answers are read once and all of them checked; the first is the
        address this operation must connect to (`pinned_pool_manager`), so a second lookup cannot
        return something else (DNS rebinding). A name that does not resolve is refused (fail closed).
        Without `resolve` (configuration time) only the URL itself is judged and None is returned.
        """
        if remote.is_local:
            if not self.allow_local_paths:
                raise UsageError("local paths are not allowed as repository URLs here")
            return None
        if remote.scheme != "https" and not self.allow_insecure_http:
            raise UsageError("repository URLs must use https://")
        host = normalize_host(remote.host, remote.scheme)
        try:
            self.check_address(host)
            return host
        except ValueError:
            pass  # a name, not a literal address
        if host in ("localhost", "localhost.localdomain") or host.endswith(".localhost"):
            if not self.allow_loopback:
                raise UsageError("repository host is localhost, which is not allowed")
        if not resolve:
            return None
        try:
            # the family urllib3 itself would ask for (IPv4 only on hosts without IPv6)
            family = urllib3.util.connection.allowed_gai_family()
            infos = socket.getaddrinfo(host, None, family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        except OSError as exc:
            raise TransientError(
                f"cannot resolve repository host {host}: {exc.strerror or exc} (not connecting)"
            ) from None
        addresses = [str(info[4][0]) for info in infos]
        if not addresses:
            raise TransientError(f"cannot resolve repository host {host}: no address (not connecting)")
        for address in addresses:
            self.check_address(address)
        return addresses[0]


class _PinnedPoolManager(urllib3.PoolManager):
    """Connects to one checked address whatever the URL's host resolves to by then.

    The URL keeps the name: urllib3 sends it as `Host` (set on every request: the pool's own host is
    the address), as TLS SNI and checks the certificate against it (`server_hostname`).
    """

    def __init__(self, host: str, address: str, **kwargs: Any) -> None:
        self._pinned_host = host
        self._pinned_address = address
        super().__init__(**kwargs)

    def urlopen(self, method: str, url: str, redirect: bool = True, **kw: Any) -> Any:  # type: ignore[override]
        headers = dict(kw.get("headers") or self.headers)
        headers["Host"] = urlsplit(url).netloc.rpartition("@")[2]
        kw["headers"] = headers
        return super().urlopen(method, url, redirect, **kw)

    def _new_pool(
        self, scheme: str, host: str, port: int, request_context: dict[str, Any] | None = None
    ) -> HTTPConnectionPool:
        if host != self._pinned_host:
            raise UsageError(f"refusing to connect to {host}: only the checked repository host is allowed")
        context = dict(self.connection_pool_kw if request_context is None else request_context)
        if scheme == "https":
            context["server_hostname"] = host
        return super()._new_pool(scheme, self._pinned_address, port, context)


def pinned_pool_manager(remote: RemoteURL, address: str | None, **kwargs: Any) -> urllib3.PoolManager:
    """A urllib3 pool manager for `remote` that connects to `address` (from `NetworkPolicy.check_url`);
    an ordinary one when there is nothing to pin (no policy, or the host is an IP literal)."""
    host = urlsplit(remote.url).hostname or ""
    if address is None or address == host:
        return urllib3.PoolManager(**kwargs)
    return _PinnedPoolManager(host, address, **kwargs)


PERMISSIVE = NetworkPolicy(
    allow_insecure_http=True, allow_loopback=True, allow_private=True, allow_local_paths=True
)
