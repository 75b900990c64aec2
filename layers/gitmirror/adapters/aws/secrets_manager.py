"""SecretSource on Secrets Manager, through Powertools' parameters utility (short cache, forced refresh).

Every value read is registered with the scrubber before it is returned, so it can never be printed.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from gitmirror.errors import SecretError
from gitmirror.mirror.credentials import BasicCredentials
from gitmirror.mirror.github_app import GitHubAppKey, is_app_secret
from gitmirror.scrub import register_secret

from . import clients

CACHE_SECONDS = 60


@functools.lru_cache(maxsize=8)
def _providers(client: Any) -> Any:
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

    return SecretsProvider(boto3_client=client)


class SecretsManagerSource:
    """Secrets by name from Secrets Manager (one Powertools provider, with its cache, per endpoint)."""

    def _fetch(self, name: str, *, force: bool) -> str:
        from aws_lambda_powertools.utilities import parameters

        try:
            value = _providers(clients.client("secretsmanager")).get(
                name, max_age=CACHE_SECONDS, force_fetch=force
            )
        except parameters.exceptions.GetParameterError as exc:
            text = str(exc)
            if "ResourceNotFoundException" in text:
                raise SecretError(f"secret {name!r} does not exist in Secrets Manager") from None
            if "AccessDenied" in text:
                raise SecretError(
                    f"not allowed to read secret {name!r}: check the function's policy"
                ) from None
            raise SecretError(f"could not read secret {name!r} from Secrets Manager") from None
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        register_secret(str(value))
        return str(value)

    def exists(self, name: str) -> bool:
        """Whether the secret exists (DescribeSecret: its value is never read)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            clients.client("secretsmanager").describe_secret(SecretId=name)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ResourceNotFoundException":
                return False
            raise SecretError(f"could not check secret {name!r} in Secrets Manager: {code}") from None
        except BotoCoreError as exc:
            raise SecretError(
                f"could not check secret {name!r} in Secrets Manager: {type(exc).__name__}"
            ) from None
        return True

    def git_credentials(self, name: str, *, force: bool = False) -> BasicCredentials | GitHubAppKey:
        """A `{"username": ..., "token": ...}` secret (a GitHub/GitLab token or CodeCommit HTTPS
        credentials), or a GitHub App's key."""
        return parse_git_credentials(name, self._fetch(name, force=force))

    def webhook_secret(self, name: str, *, force: bool = False) -> str:
        """A webhook secret: the plain string, or `{"secret": ...}`."""
        return parse_webhook_secret(name, self._fetch(name, force=force))


def parse_git_credentials(name: str, raw: str) -> BasicCredentials | GitHubAppKey:
    """A token secret, or a GitHub App's key (`{"app_id", "installation_id", "private_key"}`)."""
    try:
        data: Any = json.loads(raw)
    except ValueError:
        raise SecretError(
            f'secret {name!r} is not JSON: expected {{"username": ..., "token": ...}} or a GitHub App\'s '
            '{"app_id": ..., "installation_id": ..., "private_key": ...}'
        ) from None
    if is_app_secret(data):
        return GitHubAppKey.from_secret(data, name)
    if not isinstance(data, dict) or not isinstance(data.get("token"), str) or not data["token"]:
        raise SecretError(f'secret {name!r} must be a JSON object with a non-empty "token"')
    token = data["token"]
    register_secret(token)
    username = data.get("username")
    if username is not None and not isinstance(username, str):
        raise SecretError(f'secret {name!r}: "username" must be a string')
    return BasicCredentials(username or "x-access-token", token)


def parse_webhook_secret(name: str, raw: str) -> str:
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
