"""The service's environment, read once per process (names match template.yaml)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from gitmirror.mirror.urls import NetworkPolicy


@dataclass(frozen=True)
class Settings:
    mirrors_table: str
    runs_table: str
    idempotency_table: str
    queue_url: str
    secrets_prefix: str
    max_body_bytes: int
    run_ttl_days: int
    retry_base_seconds: int
    policy: NetworkPolicy

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        return cls(
            mirrors_table=env.get("MIRRORS_TABLE", "gitmirror-mirrors"),
            runs_table=env.get("RUNS_TABLE", "gitmirror-runs"),
            idempotency_table=env.get("IDEMPOTENCY_TABLE", "gitmirror-idempotency"),
            queue_url=env.get("QUEUE_URL", ""),
            secrets_prefix=env.get("SECRETS_PREFIX", "gitmirror/"),
            max_body_bytes=int(env.get("MAX_BODY_BYTES", str(25 * 1024 * 1024))),
            run_ttl_days=int(env.get("RUN_TTL_DAYS", "90")),
            retry_base_seconds=int(env.get("RETRY_BASE_SECONDS", "30")),
            policy=NetworkPolicy.from_env(),
        )
