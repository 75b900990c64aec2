"""One cached boto3 client/resource per AWS service, all with the same retry and timeout configuration.

Keyed by the endpoint and region in force, so a process that switches endpoints (the local stack, the
tests) never talks to a stale one.
"""

from __future__ import annotations

import functools
import os
from typing import Any

# Standard retry mode (exponential backoff with jitter, retries throttling and transient errors) with a
# bounded number of attempts and timeouts that fail fast: a Lambda has little time to wait on a socket.
CONNECT_TIMEOUT_SECONDS = 5
READ_TIMEOUT_SECONDS = 30
MAX_ATTEMPTS = 3
# What the handlers' Tracer patches: the AWS SDK is the only traced library they call. Powertools'
# default (X-Ray's patch_all) would also import and patch requests, sqlite3 and others at cold start.
TRACED_MODULES = ("botocore",)


@functools.cache
def config() -> Any:
    from botocore.config import Config

    return Config(
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
        retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS},
    )


def _where() -> tuple[str, str]:
    # AWS_REGION is what Lambda sets; AWS_DEFAULT_REGION what the CLI tools and profiles use.
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION", "")
    # boto3 also reads service-specific endpoints (AWS_ENDPOINT_URL_DYNAMODB, ...)
    endpoints = sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_ENDPOINT_URL"))
    return repr(endpoints), region


@functools.lru_cache(maxsize=16)
def _client(service: str, endpoint: str, region: str) -> Any:
    import boto3

    return boto3.client(service, region_name=region or None, config=config())


@functools.lru_cache(maxsize=16)
def _resource(service: str, endpoint: str, region: str) -> Any:
    import boto3

    return boto3.resource(service, region_name=region or None, config=config())


def client(service: str) -> Any:
    return _client(service, *_where())


def resource(service: str) -> Any:
    return _resource(service, *_where())
