"""One cached boto3 client/resource factory per AWS service, keyed by the endpoint and region in force
(so a process that switches endpoints, like the local stack and the tests, never talks to a stale one)."""

from __future__ import annotations

import functools
import os
from typing import Any


def _where() -> tuple[str, str]:
    return os.environ.get("AWS_ENDPOINT_URL", ""), os.environ.get("AWS_REGION") or os.environ.get(
        "AWS_DEFAULT_REGION", ""
    )


@functools.lru_cache(maxsize=16)
def _client(service: str, endpoint: str, region: str) -> Any:
    import boto3

    return boto3.client(service, region_name=region or None)


@functools.lru_cache(maxsize=16)
def _resource(service: str, endpoint: str, region: str) -> Any:
    import boto3

    return boto3.resource(service, region_name=region or None)


def client(service: str) -> Any:
    return _client(service, *_where())


def resource(service: str) -> Any:
    return _resource(service, *_where())
