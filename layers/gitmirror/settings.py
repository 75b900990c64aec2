"""The environment of each process kind, validated once at cold start (pydantic-settings).

Variable names are the field names in upper case, exactly those template.yaml declares. A missing or
malformed variable fails `load` with a ConfigurationError naming the variable. The local stack, the
events generator and the template tests read the same models (`variable_names`).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import ConfigurationError
from .mirror.urls import NetworkPolicy

TableName = Annotated[str, Field(min_length=3, max_length=255, pattern=r"^[A-Za-z0-9_.-]+$")]
QueueUrl = Annotated[str, Field(pattern=r"^https?://\S+/\S+\.fifo$")]


class _Environment(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True, case_sensitive=False)


class NetworkSettings(_Environment):
    """Where a deployment may fetch from and push to (the defaults are production's)."""

    allow_insecure_http: bool = False
    allow_loopback: bool = False
    allow_private_networks: bool = False
    allow_local_paths: bool = False

    @property
    def policy(self) -> NetworkPolicy:
        return NetworkPolicy(
            allow_insecure_http=self.allow_insecure_http,
            allow_loopback=self.allow_loopback,
            allow_private=self.allow_private_networks,
            allow_local_paths=self.allow_local_paths,
        )


class ServiceSettings(_Environment):
    """What every function reads: the tables and the queue."""

    mirrors_table: TableName
    runs_table: TableName
    queue_url: QueueUrl


class WebhookSettings(ServiceSettings):
    idempotency_table: TableName
    max_body_bytes: Annotated[int, Field(gt=0)] = 25 * 1024 * 1024


class SchedulerSettings(ServiceSettings):
    pass


class ApiSettings(ServiceSettings, NetworkSettings):
    secrets_prefix: str = "gitmirror/"


class WorkerSettings(ApiSettings):
    run_ttl_days: Annotated[int, Field(gt=0)] = 90
    retry_base_seconds: Annotated[int, Field(ge=0)] = 30
    # GitHub Apps' token endpoint base when it is not the repository host's own API (an API proxy, the
    # tests): a deployment setting, never anything a request carries
    github_api_url: Annotated[str, Field(pattern=r"^(https?://[^\s/]+(/\S*)?)?$")] = ""


class CliSettings(WorkerSettings):
    """The operator CLI and the local tooling: the same variables, with the stack's default names (the
    CLI's --mirrors-table/--runs-table/--queue-url override them). The queue is needed only to queue."""

    mirrors_table: TableName = "gitmirror-mirrors"
    runs_table: TableName = "gitmirror-runs"
    idempotency_table: TableName = "gitmirror-idempotency"
    queue_url: Annotated[str, Field(pattern=r"^(https?://\S+/\S+\.fifo)?$")] = ""
    max_body_bytes: Annotated[int, Field(gt=0)] = 25 * 1024 * 1024


def load[S: _Environment](kind: type[S]) -> S:
    """Read and validate the environment for one process kind."""
    try:
        return kind()
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = str(error["loc"][0]).upper() if error.get("loc") else "?"
            problems.append(f"{name}: {error.get('msg', 'invalid value')}")
        raise ConfigurationError("invalid environment: " + "; ".join(problems)) from None


def variable_names(kind: type[_Environment]) -> list[str]:
    """The environment variables a process kind reads, in upper case."""
    return sorted(name.upper() for name in kind.model_fields)


def required_variable_names(kind: type[_Environment]) -> list[str]:
    return sorted(name.upper() for name, field in kind.model_fields.items() if field.is_required())
