"""Credentials for git over HTTP: static Basic auth, GitHub/GitLab tokens, and AWS CodeCommit SigV4.

A provider is asked once per git operation (ref listing, fetch, push), so CodeCommit passwords are
signed fresh every time and rotated role credentials are always current.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from gitmirror.errors import AuthError, SecretError, UsageError
from gitmirror.mirror.urls import NetworkPolicy, RemoteURL
from gitmirror.scrub import register_secret

if TYPE_CHECKING:
    from gitmirror.mirror.github_app import GitHubAppKey

_CODECOMMIT_HOST = re.compile(
    r"^git-codecommit(?:-fips)?\.(?P<region>[a-z]{2}(?:-gov|-iso[a-z]*)?-[a-z]+-\d)\.amazonaws\.com(?:\.cn)?$"
)


@dataclass(frozen=True)
class BasicCredentials:
    """A username/password or token pair for HTTP Basic; also a provider that always answers itself."""

    username: str
    password: str = field(repr=False)

    def __post_init__(self) -> None:
        register_secret(self.password)

    def credentials_for(self, remote: RemoteURL) -> BasicCredentials | None:
        return self


class CredentialProvider(Protocol):
    def credentials_for(self, remote: RemoteURL) -> BasicCredentials | None:
        """Credentials for one git operation against `remote`, or None for anonymous access."""


StaticCredentials = BasicCredentials


def github_token(token: str, username: str | None = None) -> StaticCredentials:
    """GitHub personal access token (classic or fine-grained) or app installation token."""
    return StaticCredentials(username or "x-access-token", token)


def gitlab_token(token: str, username: str | None = None) -> StaticCredentials:
    """GitLab personal/project/group access token."""
    return StaticCredentials(username or "oauth2", token)


class Anonymous:
    def credentials_for(self, remote: RemoteURL) -> BasicCredentials | None:
        return None


def codecommit_region(remote: RemoteURL) -> str | None:
    match = _CODECOMMIT_HOST.match(remote.host.lower())
    return match.group("region") if match else None


def is_codecommit(remote: RemoteURL) -> bool:
    return not remote.is_local and codecommit_region(remote) is not None


def sign_codecommit_password(
    access_key: str,
    secret_key: str,
    region: str,
    hostname: str,
    path: str,
    when: dt.datetime,
) -> str:
    """The git password for CodeCommit: timestamp + 'Z' + SigV4 signature (git-remote-codecommit's scheme).

    botocore's SigV4Auth computes the string to sign and the signature; only the canonical request is
    CodeCommit's own (`GIT` method, no query, the host header alone).
    """
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    timestamp = when.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%S")
    request = AWSRequest(method="GIT", url=f"https://{hostname}{path}")
    request.context["timestamp"] = timestamp
    signer = SigV4Auth(Credentials(access_key, secret_key), "codecommit", region)
    canonical_request = f"GIT\n{path}\n\nhost:{hostname}\n\nhost\n"
    string_to_sign = signer.string_to_sign(request, canonical_request)
    return f"{timestamp}Z{signer.signature(string_to_sign, request)}"


class CodeCommitIAM:
    """CodeCommit with the caller's own AWS credentials (a Lambda role's session credentials included)."""

    def __init__(self, session: Any = None) -> None:
        self._session = session

    def credentials_for(self, remote: RemoteURL) -> BasicCredentials | None:
        region = codecommit_region(remote)
        if region is None:
            raise UsageError("auth_method iam works only with git-codecommit.<region>.amazonaws.com URLs")
        if self._session is None:
            import boto3

            self._session = boto3.session.Session()
        creds = self._session.get_credentials()
        if creds is None:
            raise AuthError("no AWS credentials are available to sign the CodeCommit request")
        frozen = creds.get_frozen_credentials()
        register_secret(frozen.secret_key)
        register_secret(frozen.token)
        username = frozen.access_key + (f"%{frozen.token}" if frozen.token else "")
        password = sign_codecommit_password(
            frozen.access_key,
            frozen.secret_key,
            region,
            remote.host,
            remote.path.rstrip("/"),
            dt.datetime.now(dt.UTC),
        )
        register_secret(password)
        return BasicCredentials(username, password)


def from_env_token(remote: RemoteURL, token: str | None, username: str | None) -> CredentialProvider:
    """CLI credentials: an explicit token/username pair, else URL userinfo, else anonymous."""
    if token:
        if username:
            return StaticCredentials(username, token)
        host = remote.host.lower()
        if "gitlab" in host:
            return gitlab_token(token)
        return github_token(token)
    if remote.username is not None or remote.password is not None:
        return StaticCredentials(remote.username or "", remote.password or "")
    return Anonymous()


class SecretCredentials:
    """Credentials read from a named secret (any SecretSource); `refresh()` forces a re-read after a 401
    (a rotated secret, or a GitHub App token revoked early).

    A secret holding a GitHub App's key yields installation tokens (`gitmirror.mirror.github_app`), for
    pushing (`write`, a target) or fetching; `github_app=True` (auth_method github_app) requires one.
    """

    def __init__(
        self,
        source: SecretReader,
        name: str,
        *,
        github_app: bool = False,
        write: bool = False,
        github_api_url: str | None = None,
        policy: NetworkPolicy | None = None,
    ) -> None:
        self.source = source
        self.name = name
        self.github_app = github_app
        self.write = write
        self.github_api_url = github_api_url or None
        self.policy = policy
        self._force = False

    def refresh(self) -> None:
        self._force = True

    def credentials_for(self, remote: RemoteURL) -> BasicCredentials | None:
        value = self.source.git_credentials(self.name, force=self._force)
        force, self._force = self._force, False
        if isinstance(value, BasicCredentials):
            if self.github_app:
                raise SecretError(
                    f"auth_method github_app needs secret {self.name!r} to hold the App's "
                    '{"app_id": ..., "installation_id": ..., "private_key": ...}'
                )
            return value
        from gitmirror.mirror.github_app import GitHubAppCredentials

        app = GitHubAppCredentials(value, write=self.write, api_base=self.github_api_url, policy=self.policy)
        if force:
            app.refresh()
        return app.credentials_for(remote)


class SecretReader(Protocol):
    """The part of gitmirror.ports.SecretSource git credentials need."""

    def git_credentials(self, name: str, *, force: bool = False) -> BasicCredentials | GitHubAppKey: ...
