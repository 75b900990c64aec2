"""GitHub App credentials: an installation access token minted from the App's private key.

No long-lived token: the secret holds the App's id, the installation's id and the App's private key
(PEM). A JWT signed RS256 with that key (`iat` 60 s in the past, `exp` 9 minutes ahead, GitHub allows
at most 10, `iss` the App's id) buys an installation token from
`POST /app/installations/{id}/access_tokens` on the API of the repository's host, narrowed to the one
repository and the permissions the mirror needs. The token (one hour) is used as HTTP Basic
`x-access-token:<token>`, kept in memory until 5 minutes before it expires, and never stored or logged.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import urllib3

from gitmirror.errors import AuthError, SecretError, TransientError
from gitmirror.mirror.credentials import BasicCredentials
from gitmirror.mirror.urls import NetworkPolicy, RemoteURL
from gitmirror.scrub import register_secret, scrub

GITHUB_API = "https://api.github.com"
JWT_BACKDATE_SECONDS = 60  # GitHub's advice against clock drift
JWT_LIFETIME_SECONDS = 9 * 60  # from now; with the backdating, GitHub's 10-minute maximum
REFRESH_MARGIN_SECONDS = 5 * 60
SECRET_FIELDS = ("app_id", "installation_id", "private_key")
_API_VERSION = "2022-11-28"


@dataclass(frozen=True)
class GitHubAppKey:
    """What the secret holds: `{"app_id", "installation_id", "private_key"}`, and `"workflows": true`
    to ask for the Workflows permission too (a mirror that carries .github/workflows changes)."""

    app_id: str
    installation_id: str
    private_key: str = field(repr=False)
    workflows: bool = False

    @classmethod
    def from_secret(cls, data: Mapping[str, Any], name: str) -> GitHubAppKey:
        values = {}
        for key in ("app_id", "installation_id"):
            value = data.get(key)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | str)
                or not str(value).strip().isdigit()
            ):
                raise SecretError(f'GitHub App secret {name!r}: "{key}" must be the numeric id')
            values[key] = str(value).strip()
        pem = data.get("private_key")
        if not isinstance(pem, str) or "PRIVATE KEY-----" not in pem:
            raise SecretError(
                f'GitHub App secret {name!r}: "private_key" must be the App\'s private key, the PEM text '
                "of the .pem file GitHub generated"
            )
        register_secret(pem)
        return cls(values["app_id"], values["installation_id"], pem, data.get("workflows") is True)

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.private_key.encode()).hexdigest()


def is_app_secret(data: object) -> bool:
    return isinstance(data, dict) and all(k in data for k in SECRET_FIELDS)


def api_base_for(remote: RemoteURL, override: str | None = None) -> str:
    """GitHub's REST API for the repository's host: api.github.com, or https://HOST/api/v3 (Enterprise
    Server). `override` is a deployment setting (tests, proxies), never anything a request carries."""
    if override:
        return override.rstrip("/")
    host = remote.host.lower()
    if host in ("github.com", "www.github.com"):
        return GITHUB_API
    return f"https://{urlsplit(remote.url).netloc}/api/v3"


def repository_name(remote: RemoteURL) -> str:
    """`owner/name.git` -> `name`: the access token is narrowed to the repository by its name."""
    last = remote.path.rstrip("/").rsplit("/", 1)[-1]
    return last.removesuffix(".git")


def app_jwt(key: GitHubAppKey, now: float) -> str:
    import jwt

    issued = int(now) - JWT_BACKDATE_SECONDS
    claims = {"iat": issued, "exp": int(now) + JWT_LIFETIME_SECONDS, "iss": key.app_id}
    try:
        token = jwt.encode(claims, key.private_key, algorithm="RS256")
    except (ValueError, TypeError, jwt.PyJWTError) as exc:
        raise AuthError(
            f"GitHub App {key.app_id}: the private_key cannot sign ({type(exc).__name__}): store the App's "
            "RSA private key (PEM) in the secret"
        ) from None
    register_secret(token)
    return token


@dataclass(frozen=True)
class _Token:
    value: str = field(repr=False)
    expires_at: float


_cache: dict[tuple[str, ...], _Token] = {}
_cache_lock = threading.Lock()


def forget_tokens() -> None:
    with _cache_lock:
        _cache.clear()


class GitHubAppCredentials:
    """CredentialProvider: an installation token for the remote, minted when none is cached or the cached
    one expires within 5 minutes. `write` asks for Contents: write (a target), else read (a source).
    `clock` is the cache's notion of now (tests); the JWT is always dated by the wall clock, as GitHub's."""

    def __init__(
        self,
        key: GitHubAppKey,
        *,
        write: bool = True,
        api_base: str | None = None,
        policy: NetworkPolicy | None = None,
        clock: Callable[[], float] = time.time,
        timeout: float = 15.0,
    ) -> None:
        self.key = key
        self.write = write
        self.api_base = api_base
        self.policy = policy
        self.clock = clock
        self.timeout = timeout

    def permissions(self) -> dict[str, str]:
        wanted = {"contents": "write" if self.write else "read"}
        if self.key.workflows:
            wanted["workflows"] = "write"
        return wanted

    def _cache_key(self, base: str, repository: str) -> tuple[str, ...]:
        perms = ",".join(f"{k}={v}" for k, v in sorted(self.permissions().items()))
        return (base, self.key.app_id, self.key.installation_id, self.key.fingerprint, repository, perms)

    def refresh(self) -> None:
        """Drop the cached token (the server refused it: revoked or expired early)."""
        forget_tokens()

    def credentials_for(self, remote: RemoteURL) -> BasicCredentials:
        base = api_base_for(remote, self.api_base)
        repository = repository_name(remote)
        cache_key = self._cache_key(base, repository)
        now = self.clock()
        with _cache_lock:
            cached = _cache.get(cache_key)
        if cached is None or cached.expires_at - REFRESH_MARGIN_SECONDS <= now:
            cached = self._mint(base, repository)
            with _cache_lock:
                _cache[cache_key] = cached
        return BasicCredentials("x-access-token", cached.value)

    def _mint(self, base: str, repository: str) -> _Token:
        now = time.time()
        url = f"{base}/app/installations/{quote(self.key.installation_id)}/access_tokens"
        if self.policy is not None:
            self.policy.check_url(RemoteURL(url=url))
        body = json.dumps({"repositories": [repository], "permissions": self.permissions()}).encode()
        app = f"GitHub App {self.key.app_id} (installation {self.key.installation_id})"
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=self.timeout, read=self.timeout), retries=False
        )
        try:
            resp = http.request(
                "POST",
                url,
                body=body,
                headers={
                    "Authorization": f"Bearer {app_jwt(self.key, now)}",
                    "Accept": "application/vnd.github+json",
                    "X-GitHub-Api-Version": _API_VERSION,
                    "Content-Type": "application/json",
                    "User-Agent": "gitmirror",
                },
                redirect=False,
            )
        except urllib3.exceptions.HTTPError as exc:
            raise TransientError(f"{app}: cannot reach {base} for a token ({type(exc).__name__})") from None
        finally:
            http.clear()
        answer = _json(resp.data)
        message = scrub(str(answer.get("message") or "")).strip()[:200]
        said = f": {message}" if message else ""
        if resp.status == 201 and isinstance(answer.get("token"), str) and answer["token"]:
            token = answer["token"]
            register_secret(token)
            # the token's remaining lifetime, on the cache's clock
            return _Token(token, self.clock() + _expiry(answer.get("expires_at"), now) - now)
        if resp.status == 401:
            raise AuthError(
                f"{app}: GitHub refused the App's signed JWT (HTTP 401{said}): check that app_id is the "
                "App's id and that private_key is one of its current private keys (App settings, Private keys)"
            )
        if resp.status == 404:
            raise AuthError(
                f"{app}: the installation was not found (HTTP 404{said}): install the App on the "
                "repository's owner and store that installation's id as installation_id"
            )
        if resp.status in (403, 422):
            wanted = ", ".join(f"{k}: {v}" for k, v in self.permissions().items())
            raise AuthError(
                f"{app}: the installation cannot grant {wanted} on {repository!r} (HTTP {resp.status}{said}): "
                "give the App these permissions and access to the repository, then accept the new permissions"
            )
        if resp.status in (408, 429) or resp.status >= 500:
            raise TransientError(f"{app}: {base} answered HTTP {resp.status} for a token; will retry")
        raise AuthError(f"{app}: {base} answered HTTP {resp.status} for a token{said}")


def _json(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _expiry(value: object, now: float) -> float:
    """`expires_at` as a timestamp; an hour (GitHub's lifetime) when absent or unreadable."""
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    return now + 3600
