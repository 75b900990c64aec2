"""A loopback stand-in for GitHub with one GitHub App: the installation-token endpoint, and git over HTTP
that accepts only the tokens it minted (as `x-access-token`), until they expire.

`POST /app/installations/{id}/access_tokens` verifies the request's JWT as GitHub does: an RS256
signature by the App's key (checked with its public key), `iss` the App's id, `iat` not in the future,
`exp` in the future and at most 10 minutes after `iat`. It answers a token and its `expires_at`, and
records what each request asked for (repositories, permissions) in `token_requests`.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitmirror_dev.gitserver import GitHTTPServer, RecordedRequest

_TOKEN_PATH = re.compile(r"^/app/installations/(?P<id>[0-9]+)/access_tokens$")
MAX_JWT_LIFETIME = 600


def generate_app_key() -> tuple[str, str]:
    """(private key PEM, public key PEM) of a fresh 2048-bit RSA key, as GitHub generates for an App."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


@dataclass
class TokenRequest:
    installation_id: str
    claims: dict[str, Any]
    body: dict[str, Any]
    status: int


@dataclass
class _Issued:
    expires_at: float
    repositories: list[str] = field(default_factory=list)


class GitHubAppServer(GitHTTPServer):
    """git http-backend behind GitHub App installation tokens, with the endpoint that mints them."""

    def __init__(
        self,
        root: str | Path,
        *,
        app_id: str,
        installation_id: str,
        public_key: str,
        token_lifetime: float = 3600.0,
    ) -> None:
        super().__init__(root, username="x-access-token", password=None)
        self.app_id = app_id
        self.installation_id = installation_id
        self.public_key = public_key
        self.token_lifetime = token_lifetime
        self.token_requests: list[TokenRequest] = []
        self._issued: dict[str, _Issued] = {}
        self._tokens_lock = threading.Lock()

    @property
    def api_url(self) -> str:
        return self.url

    def expire_tokens(self) -> None:
        """Every token minted so far stops working (as if their hour were up)."""
        with self._tokens_lock:
            for issued in self._issued.values():
                issued.expires_at = 0.0

    @property
    def minted(self) -> int:
        return sum(1 for r in self.token_requests if r.status == 201)

    # -- the API ----------------------------------------------------------------------------------

    def is_api_path(self, method: str, path: str) -> bool:
        return method == "POST" and path.startswith("/app/")

    def api_request(self, rec: RecordedRequest, body: bytes) -> tuple[int, object]:
        import json

        import jwt

        match = _TOKEN_PATH.match(rec.path)
        if match is None:
            return 404, {"message": "Not Found"}
        auth = rec.header("Authorization") or ""
        if not auth.startswith("Bearer "):
            return self._answer(match["id"], {}, {}, 401, "A JSON web token could not be decoded")
        try:
            claims = jwt.decode(
                auth[len("Bearer ") :],
                self.public_key,
                algorithms=["RS256"],
                options={"require": ["iat", "exp", "iss"], "verify_iat": True},
            )
        except jwt.PyJWTError:
            return self._answer(match["id"], {}, {}, 401, "A JSON web token could not be decoded")
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            return self._answer(match["id"], claims, {}, 400, "Problems parsing JSON")
        if str(claims["iss"]) != self.app_id or int(claims["exp"]) - int(claims["iat"]) > MAX_JWT_LIFETIME:
            return self._answer(
                match["id"], claims, request, 401, "'Expiration time' claim ('exp') is too far in the future"
            )
        if match["id"] != self.installation_id:
            return self._answer(match["id"], claims, request, 404, "Not Found")
        token = "ghs_" + secrets.token_urlsafe(27)
        expires_at = time.time() + self.token_lifetime
        with self._tokens_lock:
            self._issued[token] = _Issued(expires_at, list(request.get("repositories") or []))
        self.token_requests.append(TokenRequest(match["id"], claims, request, 201))
        when = dt.datetime.fromtimestamp(expires_at, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return 201, {
            "token": token,
            "expires_at": when,
            "permissions": request.get("permissions") or {"contents": "write"},
            "repository_selection": "selected" if request.get("repositories") else "all",
        }

    def _answer(
        self, installation: str, claims: dict[str, Any], body: dict[str, Any], status: int, message: str
    ) -> tuple[int, object]:
        self.token_requests.append(TokenRequest(installation, claims, body, status))
        return status, {"message": message, "documentation_url": "https://docs.github.com/rest"}

    # -- git: only live tokens ------------------------------------------------------------------

    def _check_auth(self, header: str | None) -> tuple[bool, str | None]:
        import base64
        import binascii

        if not header or header[:6].lower() != "basic ":
            return False, None
        try:
            user, _, token = base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False, None
        with self._tokens_lock:
            issued = self._issued.get(token)
        ok = user == "x-access-token" and issued is not None and issued.expires_at > time.time()
        return ok, user
