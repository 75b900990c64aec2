"""Helpers for service-level tests: register mirrors, sign real webhook payloads, run the handlers."""

from __future__ import annotations

import json
import uuid
from typing import Any

from gitmirror.adapters.aws.mirror_table import MirrorStore
from gitmirror.manage.mirrors import create_mirror
from gitmirror.records import Mirror, MirrorSpec
from gitmirror.settings import CliSettings, load
from gitmirror_dev.lambdas import QueuePoller, http_event, invoke_http, load_function
from gitmirror_dev.signing import sign_gitea, sign_github, sign_standard_webhook
from tests.conftest import SOURCE_TOKEN, SOURCE_USER, TARGET_TOKEN, TARGET_USER, WEBHOOKS, AwsEnv

WEBHOOK_SECRET = "gitmirror-test-secret"


def payload(name: str) -> bytes:
    return (WEBHOOKS / name).read_bytes()


def store() -> MirrorStore:
    settings = load(CliSettings)
    return MirrorStore(settings.mirrors_table, settings.runs_table)


def add_mirror(
    aws: AwsEnv,
    source_url: str,
    target_url: str,
    *,
    provider: str = "github",
    repo_id: str | None = "63933911",
    full_name: str | None = "binkkatal/sample_app",
    keep_divergent_refs: bool = False,
    source_secret_value: dict[str, Any] | None = None,
    target_secret_value: dict[str, Any] | None = None,
    auth_method: str = "password",
    webhook_secret_value: str = WEBHOOK_SECRET,
    mirror_id: str | None = None,
) -> Mirror:
    tag = uuid.uuid4().hex[:8]
    names = {k: f"gitmirror/{tag}/{k}" for k in ("source", "target", "webhook")}
    aws.put_secret(
        names["source"], json.dumps(source_secret_value or {"username": SOURCE_USER, "token": SOURCE_TOKEN})
    )
    aws.put_secret(
        names["target"], json.dumps(target_secret_value or {"username": TARGET_USER, "token": TARGET_TOKEN})
    )
    aws.put_secret(names["webhook"], webhook_secret_value)
    spec = MirrorSpec(
        id=mirror_id,
        source_url=source_url,
        url=target_url,
        provider=provider,  # type: ignore[arg-type]
        source_repo_id=repo_id,
        source_full_name=full_name,
        keep_divergent_refs=keep_divergent_refs,
        source_secret=names["source"],
        target_secret=names["target"],
        webhook_secret=names["webhook"],
        auth_method=auth_method,  # type: ignore[arg-type]
    )
    settings = load(CliSettings)
    return create_mirror(spec, store(), settings.policy, settings.secrets_prefix)


def github_push(
    body: bytes | None = None, delivery: str | None = None, secret: str = WEBHOOK_SECRET, event: str = "push"
) -> tuple[dict[str, str], bytes]:
    body = payload("github/push.json") if body is None else body
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/044aadd",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": sign_github(body, secret),
    }
    return headers, body


def gitlab_push(
    name: str = "gitlab/push-hook.json",
    event: str = "Push Hook",
    signing: str | None = None,
    timestamp: int | None = None,
) -> tuple[dict[str, str], bytes]:
    body = payload(name)
    headers = {
        "Content-Type": "application/json",
        "X-Gitlab-Event": event,
        "X-Gitlab-Event-UUID": str(uuid.uuid4()),
        "Idempotency-Key": str(uuid.uuid4()),
    }
    if signing is None:
        headers["X-Gitlab-Token"] = WEBHOOK_SECRET
    else:
        import time

        wid, ts = str(uuid.uuid4()), str(timestamp or int(time.time()))
        headers.update(
            {
                "webhook-id": wid,
                "webhook-timestamp": ts,
                "webhook-signature": sign_standard_webhook(body, wid, ts, signing),
            }
        )
    return headers, body


def gitea_push(secret: str = WEBHOOK_SECRET) -> tuple[dict[str, str], bytes]:
    body = payload("gitea/push.json")
    return {
        "Content-Type": "application/json",
        "X-Gitea-Event": "push",
        "X-Gitea-Delivery": str(uuid.uuid4()),
        "X-Gitea-Signature": sign_gitea(body, secret),
    }, body


class Functions:
    """Fresh handler modules (a new execution environment per test)."""

    def __init__(self) -> None:
        self.webhook = load_function("webhook")
        self.worker = load_function("worker")

    def post(
        self, provider: str, headers: dict[str, str], body: bytes, method: str = "POST"
    ) -> tuple[int, Any]:
        status, _h, raw = invoke_http(
            self.webhook, http_event(method, f"/webhooks/{provider}", headers, body)
        )
        return status, json.loads(raw or b"null")

    def poller(self, aws: AwsEnv, timeout_seconds: float = 900.0) -> QueuePoller:
        return QueuePoller(self.worker, aws.queue_url, timeout_seconds=timeout_seconds)


def all_items(table: str) -> list[dict[str, Any]]:
    import boto3

    return list(boto3.resource("dynamodb").Table(table).scan().get("Items", []))
