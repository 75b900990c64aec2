"""Secrets Manager access through Powertools' parameters utility (short cache, forced refresh)."""

from __future__ import annotations

import functools
import json
from typing import Any

from gitmirror.errors import MirrorError
from gitmirror.mirror.credentials import BasicCredentials
from gitmirror.scrub import register_secret

CACHE_SECONDS = 60


class SecretError(MirrorError):
    """A secret is missing, unreadable or malformed. Never retried blindly: a human must fix it."""

    kind = "secret"


def _provider() -> Any:
    """Powertools' Secrets Manager provider (with its cache), one per endpoint in force."""
    from gitmirror.adapters.aws import clients as aws

    return _providers(aws.client("secretsmanager"))


@functools.lru_cache(maxsize=8)
def _providers(client: Any) -> Any:
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

    return SecretsProvider(boto3_client=client)


def _fetch(name: str, *, force: bool) -> str:
    from aws_lambda_powertools.utilities import parameters

    try:
        value = _provider().get(name, max_age=CACHE_SECONDS, force_fetch=force)
    except parameters.exceptions.GetParameterError as exc:
        text = str(exc)
        if "ResourceNotFoundException" in text:
            raise SecretError(f"secret {name!r} does not exist in Secrets Manager") from None
        if "AccessDenied" in text:
            raise SecretError(f"not allowed to read secret {name!r}: check the function's policy") from None
        raise SecretError(f"could not read secret {name!r} from Secrets Manager") from None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    register_secret(str(value))
    return str(value)


def get_git_credentials(name: str, *, force: bool = False) -> BasicCredentials:
    """A `{"username": ..., "token": ...}` secret (a GitHub/GitLab token or CodeCommit HTTPS credentials)."""
    raw = _fetch(name, force=force)
    try:
        data: Any = json.loads(raw)
    except ValueError:
        raise SecretError(
            f'secret {name!r} is not JSON: expected {{"username": ..., "token": ...}}'
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("token"), str) or not data["token"]:
        raise SecretError(f'secret {name!r} must be a JSON object with a non-empty "token"')
    token = data["token"]
    register_secret(token)
    username = data.get("username")
    if username is not None and not isinstance(username, str):
        raise SecretError(f'secret {name!r}: "username" must be a string')
    return BasicCredentials(username or "x-access-token", token)


def get_webhook_secret(name: str, *, force: bool = False) -> str:
    """A webhook secret: the plain string, or `{"secret": ...}`."""
    raw = _fetch(name, force=force)
    try:
        data = json.loads(raw)
    except ValueError:
        data = raw
    if isinstance(data, dict):
        data = data.get("secret")
    if not isinstance(data, str) or not data:
        raise SecretError(f'webhook secret {name!r} must be a non-empty string or {{"secret": ...}}')
    register_secret(data)
    return data


class SecretCredentials:
    """CredentialProvider backed by a secret; `refresh()` forces a re-read after a 401 (rotation)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._force = False

    def refresh(self) -> None:
        self._force = True

    def credentials_for(self, remote: object) -> BasicCredentials | None:
        creds = get_git_credentials(self.name, force=self._force)
        self._force = False
        return creds
