"""Sample events for every function and trigger (`gitmirror events`): the files in `events/`.

They feed `sam local invoke <Function> -e events/<file>.json` and the docker-free runner
(`gitmirror_dev.lambdas`); `tests/integration/test_events.py` proves each one is accepted by its
handler against moto and that the committed files are exactly what this module generates.

Webhook bodies are the real published payloads vendored in `tests/fixtures/webhooks` (sources and
licences: `tests/fixtures/SOURCES.md`), embedded byte for byte: the signatures are over those exact
bytes. Every id and timestamp is fixed (derived from names or from `now`), so generating twice with the
same secret gives identical files.
GitLab deliveries authenticate with the secret token (`X-Gitlab-Token`), never a time-bound signing
token, so nothing expires.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

from gitmirror.errors import UsageError
from gitmirror.records import SyncJob
from gitmirror.values import Trigger
from gitmirror_dev import lambda_events, samples
from gitmirror_dev.lambda_events import Gateway
from gitmirror_dev.signing import sign_gitea, sign_github

__all__ = ["FIXED_NOW", "WEBHOOK_FILES", "EventSpec", "generate", "main"]

# 2023-11-14T22:13:20Z: the instant every generated event claims (also the webhook-timestamp used in
# tests/fixtures/webhooks/HEADERS.md). Pass `now` to generate() for another one.
FIXED_NOW = 1_700_000_000

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
API_ID = "abcdef1234"
DOMAIN = f"{API_ID}.execute-api.{REGION}.amazonaws.com"
CALLER_IP = "192.0.2.10"  # TEST-NET-1
MIRROR_ID = "sample-app"  # the mirror the api-* and worker events name (created by api-create-mirror)
QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:gitmirror-SyncQueue-EXAMPLE.fifo"
SCHEDULE_RULE_ARN = (
    f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/gitmirror-SchedulerFunctionSyncSchedule-EXAMPLE"
)
IAM_USER_ARN = f"arn:aws:iam::{ACCOUNT_ID}:user/gitmirror-operator"
BAD_SECRET = "not-the-webhook-secret"
_NAMESPACE = uuid.UUID("6f1b3c2e-6d1e-4a8f-9a57-3f4a2a7d0c11")

# Payload files (relative to tests/fixtures/webhooks) the events embed, and for each the event whose body
# is that file's bytes.
WEBHOOK_FILES = {
    "github/push.json": "webhook-github-push.json",
    "github/ping.json": "webhook-github-ping.json",
    "gitlab/push-hook.json": "webhook-gitlab-push.json",
    "gitlab/tag-push-hook.json": "webhook-gitlab-tag-push.json",
    "gitlab/system-hook-push.json": "webhook-gitlab-system-hook.json",
    "gitea/push.json": "webhook-gitea-push.json",
}


class EventSpec:
    """What `generate` writes for one file: its name and a builder from (bodies, secret, now)."""

    def __init__(self, name: str, build: Callable[[dict[str, bytes], str, int], dict[str, Any]]) -> None:
        self.name = name
        self.build = build


# --------------------------------------------------------------------------- fixed values


def fixed_uuid(name: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, name))


def _iso(now: int) -> str:
    """Timestamps as gitmirror writes them (gitmirror.adapters.aws.mirror_table.iso)."""
    when = dt.datetime.fromtimestamp(now, dt.UTC)
    return when.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _request_id(name: str) -> str:
    """An API Gateway-style request id (base64 of 10 bytes, as in `JKJaXmPLvHcESHA=`)."""
    return base64.b64encode(hashlib.sha256(f"request:{name}".encode()).digest()[:10]).decode()


def delivery_ids() -> dict[str, str]:
    """The fixed delivery ids of the webhook events (also used by the worker event's job)."""
    return {
        name: fixed_uuid(f"delivery:{name}")
        for name in (
            "github-push",
            "github-push-form",
            "github-ping",
            "github-bad-signature",
            "gitlab-push",
            "gitlab-tag-push",
            "gitlab-system-hook",
            "gitea-push",
        )
    }


# --------------------------------------------------------------------------- API Gateway (HTTP API 2.0)


GATEWAY = Gateway(account_id=ACCOUNT_ID, region=REGION, api_id=API_ID, domain=DOMAIN, source_ip=CALLER_IP)


def http_api_event(
    name: str,
    method: str,
    path: str,
    route: str,
    headers: dict[str, str],
    body: bytes | None,
    now: int,
    *,
    path_parameters: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    iam: bool = False,
) -> dict[str, Any]:
    """The HTTP API event of one sample, with the sample's fixed request id and trace."""
    return lambda_events.http_api_event(
        method,
        path,
        headers,
        body,
        now=now,
        request_id=_request_id(name),
        trace_seed=name,
        route=route,
        gateway=GATEWAY,
        query=query,
        path_parameters=path_parameters,
        iam_user_arn=IAM_USER_ARN if iam else None,
    )


# --------------------------------------------------------------------------- webhooks


def _github(
    name: str, body: bytes, secret: str, now: int, *, event: str, delivery: str, form: bool = False
) -> dict[str, Any]:
    target_id = str(json.loads(body)["repository"]["id"])
    if form:
        body = b"payload=" + quote_plus(body.decode("utf-8")).encode("ascii")
    headers = {
        "accept": "*/*",
        "content-type": "application/x-www-form-urlencoded" if form else "application/json",
        "user-agent": "GitHub-Hookshot/044aadd",
        "x-github-delivery": delivery,
        "x-github-event": event,
        "x-github-hook-id": "109948940",
        "x-github-hook-installation-target-id": target_id,
        "x-github-hook-installation-target-type": "repository",
        "x-hub-signature": "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest(),
        "x-hub-signature-256": sign_github(body, secret),
    }
    return http_api_event(name, "POST", "/webhooks/github", "POST /webhooks/github", headers, body, now)


def _github_push(bodies: dict[str, bytes], secret: str, now: int) -> dict[str, Any]:
    body = bodies["github/push.json"]
    return _github("github-push", body, secret, now, event="push", delivery=delivery_ids()["github-push"])


def _github_push_form(bodies: dict[str, bytes], secret: str, now: int) -> dict[str, Any]:
    return _github(
        "github-push-form",
        bodies["github/push.json"],
        secret,
        now,
        event="push",
        delivery=delivery_ids()["github-push-form"],
        form=True,
    )


def _github_ping(bodies: dict[str, bytes], secret: str, now: int) -> dict[str, Any]:
    return _github(
        "github-ping",
        bodies["github/ping.json"],
        secret,
        now,
        event="ping",
        delivery=delivery_ids()["github-ping"],
    )


def _github_bad_signature(bodies: dict[str, bytes], secret: str, now: int) -> dict[str, Any]:
    """github/push.json signed with a secret that is not the webhook secret: the receiver answers 401."""
    return _github(
        "github-bad-signature",
        bodies["github/push.json"],
        BAD_SECRET if secret != BAD_SECRET else BAD_SECRET + "-2",
        now,
        event="push",
        delivery=delivery_ids()["github-bad-signature"],
    )


def _gitlab(name: str, body: bytes, secret: str, now: int, *, event: str) -> dict[str, Any]:
    delivery = delivery_ids()[name]
    headers = {
        "content-type": "application/json",
        "idempotency-key": delivery,
        "user-agent": "GitLab/17.1.0",
        "x-gitlab-event": event,
        "x-gitlab-event-uuid": fixed_uuid(f"gitlab-event-uuid:{name}"),
        "x-gitlab-instance": "https://gitlab.example.com",
        "x-gitlab-token": secret,
        "x-gitlab-webhook-uuid": fixed_uuid(f"gitlab-webhook-uuid:{name}"),
    }
    return http_api_event(name, "POST", "/webhooks/gitlab", "POST /webhooks/gitlab", headers, body, now)


def _gitlab_push(bodies: dict[str, bytes], secret: str, now: int) -> dict[str, Any]:
    return _gitlab("gitlab-push", bodies["gitlab/push-hook.json"], secret, now, event="Push Hook")


def _gitlab_tag_push(bodies: dict[str, bytes], secret: str, now: int) -> dict[str, Any]:
    return _gitlab("gitlab-tag-push", bodies["gitlab/tag-push-hook.json"], secret, now, event="Tag Push Hook")


def _gitlab_system_hook(bodies: dict[str, bytes], secret: str, now: int) -> dict[str, Any]:
    return _gitlab(
        "gitlab-system-hook", bodies["gitlab/system-hook-push.json"], secret, now, event="System Hook"
    )


def _gitea_push(bodies: dict[str, bytes], secret: str, now: int) -> dict[str, Any]:
    """Every header Gitea's deliver.go sets for a push (it copies them under Gogs and GitHub names)."""
    body = bodies["gitea/push.json"]
    delivery = delivery_ids()["gitea-push"]
    signature = sign_gitea(body, secret)
    headers = {
        "content-type": "application/json",
        "user-agent": "Go-http-client/2.0",
        "x-gitea-delivery": delivery,
        "x-gitea-event": "push",
        "x-gitea-event-type": "push",
        "x-gitea-signature": signature,
        "x-github-delivery": delivery,
        "x-github-event": "push",
        "x-github-event-type": "push",
        "x-gogs-delivery": delivery,
        "x-gogs-event": "push",
        "x-gogs-event-type": "push",
        "x-gogs-signature": signature,
        "x-hub-signature": "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest(),
        "x-hub-signature-256": "sha256=" + signature,
    }
    return http_api_event("gitea-push", "POST", "/webhooks/gitea", "POST /webhooks/gitea", headers, body, now)


# --------------------------------------------------------------------------- management API

# A mirror of the repository github/push.json is about (id 63933911, binkkatal/sample_app) into
# another GitHub repository; the secrets named here hold the credentials and the webhook secret.
CREATE_MIRROR_BODY: dict[str, Any] = {
    "id": MIRROR_ID,
    "provider": "github",
    "source_url": "https://github.com/binkkatal/sample_app.git",
    "url": "https://github.com/example-mirrors/sample_app.git",
    "source_repo_id": "63933911",
    "source_full_name": "binkkatal/sample_app",
    "auth_method": "password",
    "target_secret": f"gitmirror/{MIRROR_ID}/target",
    "webhook_secret": f"gitmirror/{MIRROR_ID}/webhook",
    "keep_divergent_refs": True,
    "branch_filters": ["main", "release/*"],
}


def _api(
    name: str,
    method: str,
    path: str,
    route: str,
    now: int,
    *,
    body: dict[str, Any] | None = None,
    path_parameters: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
) -> dict[str, Any]:
    headers = {
        "accept": "application/json",
        "authorization": (
            f"AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/"
            f"{dt.datetime.fromtimestamp(now, dt.UTC):%Y%m%d}/{REGION}/execute-api/aws4_request, "
            "SignedHeaders=host;x-amz-date, Signature=" + hashlib.sha256(f"sig:{name}".encode()).hexdigest()
        ),
        "user-agent": "gitmirror-docs/1.0",
        "x-amz-date": f"{dt.datetime.fromtimestamp(now, dt.UTC):%Y%m%dT%H%M%SZ}",
    }
    raw = None
    if body is not None:
        headers["content-type"] = "application/json"
        raw = json.dumps(body, separators=(",", ":")).encode()
    return http_api_event(
        name, method, path, route, headers, raw, now, path_parameters=path_parameters, query=query, iam=True
    )


def _api_list(_bodies: dict[str, bytes], _secret: str, now: int) -> dict[str, Any]:
    return _api("api-list-mirrors", "GET", "/mirrors", "GET /mirrors", now)


def _api_create(_bodies: dict[str, bytes], _secret: str, now: int) -> dict[str, Any]:
    return _api("api-create-mirror", "POST", "/mirrors", "POST /mirrors", now, body=CREATE_MIRROR_BODY)


def _api_get(_bodies: dict[str, bytes], _secret: str, now: int) -> dict[str, Any]:
    return _api(
        "api-get-mirror",
        "GET",
        f"/mirrors/{MIRROR_ID}",
        "GET /mirrors/{id}",
        now,
        path_parameters={"id": MIRROR_ID},
    )


def _api_sync(_bodies: dict[str, bytes], _secret: str, now: int) -> dict[str, Any]:
    return _api(
        "api-sync-mirror",
        "POST",
        f"/mirrors/{MIRROR_ID}/sync",
        "POST /mirrors/{id}/sync",
        now,
        path_parameters={"id": MIRROR_ID},
    )


def _api_runs(_bodies: dict[str, bytes], _secret: str, now: int) -> dict[str, Any]:
    return _api(
        "api-get-runs",
        "GET",
        f"/mirrors/{MIRROR_ID}/runs",
        "GET /mirrors/{id}/runs",
        now,
        path_parameters={"id": MIRROR_ID},
        query={"limit": "10"},
    )


# --------------------------------------------------------------------------- SQS and EventBridge


def _worker_job(_bodies: dict[str, bytes], _secret: str, now: int) -> dict[str, Any]:
    """The SQS FIFO event Lambda sends the worker for the job the GitHub push event enqueues."""
    from gitmirror.jobs import deduplication_id

    delivery = delivery_ids()["github-push"]
    job = SyncJob(mirror_id=MIRROR_ID, trigger=Trigger.WEBHOOK, delivery_id=delivery, enqueued_at=_iso(now))
    body = job.model_dump_json()
    millis = str(now * 1000)
    record = lambda_events.sqs_record(
        message_id=fixed_uuid("sqs-message:worker-job"),
        receipt_handle="AQEB" + base64.b64encode(hashlib.sha512(b"receipt:worker-job").digest()).decode(),
        body=body,
        attributes={
            "ApproximateReceiveCount": "1",
            "SentTimestamp": millis,
            "SequenceNumber": "18882000000000000000",
            "MessageGroupId": MIRROR_ID,
            "SenderId": "AROAEXAMPLEROLEID12345:gitmirror-WebhookFunction-EXAMPLE",
            "MessageDeduplicationId": deduplication_id(job),
            "ApproximateFirstReceiveTimestamp": str(now * 1000 + 25),
        },
        queue_arn=QUEUE_ARN,
        md5_of_body=hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
    )
    return {"Records": [record]}


def _scheduler_tick(_bodies: dict[str, bytes], _secret: str, now: int) -> dict[str, Any]:
    """The EventBridge "Scheduled Event" the template's SyncSchedule rule sends the scheduler."""
    return lambda_events.schedule_event(
        event_id=fixed_uuid("schedule:tick"),
        now=now,
        rule_arn=SCHEDULE_RULE_ARN,
        account_id=ACCOUNT_ID,
        region=REGION,
    )


EVENTS: tuple[EventSpec, ...] = (
    EventSpec("webhook-github-push.json", _github_push),
    EventSpec("webhook-github-push-form.json", _github_push_form),
    EventSpec("webhook-github-ping.json", _github_ping),
    EventSpec("webhook-github-bad-signature.json", _github_bad_signature),
    EventSpec("webhook-gitlab-push.json", _gitlab_push),
    EventSpec("webhook-gitlab-tag-push.json", _gitlab_tag_push),
    EventSpec("webhook-gitlab-system-hook.json", _gitlab_system_hook),
    EventSpec("webhook-gitea-push.json", _gitea_push),
    EventSpec("api-create-mirror.json", _api_create),
    EventSpec("api-list-mirrors.json", _api_list),
    EventSpec("api-get-mirror.json", _api_get),
    EventSpec("api-sync-mirror.json", _api_sync),
    EventSpec("api-get-runs.json", _api_runs),
    EventSpec("worker-sqs-job.json", _worker_job),
    EventSpec("scheduler-tick.json", _scheduler_tick),
)


# --------------------------------------------------------------------------- generation


def load_bodies(directory: Path | None = None) -> dict[str, bytes]:
    """The real payloads the webhook events embed: from `directory` (a webhooks directory laid out like
    tests/fixtures/webhooks), by default the checkout's vendored fixtures."""
    directory = directory or samples.webhook_fixtures_dir()
    missing = [name for name in WEBHOOK_FILES if not (directory / name).is_file()]
    if missing:
        raise UsageError(f"{directory} lacks the webhook payloads {', '.join(missing)}")
    return {name: (directory / name).read_bytes() for name in WEBHOOK_FILES}


def render(event: dict[str, Any]) -> bytes:
    """Stable pretty JSON (ASCII only, so a body's exact characters survive any editor or platform)."""
    return (json.dumps(event, indent=2, ensure_ascii=True) + "\n").encode("ascii")


def generate(secret: str, out: Path, *, webhooks: Path | None = None, now: int | None = None) -> list[Path]:
    """Write every event into `out`, webhooks signed with `secret`; returns the paths written, in order."""
    if not secret:
        raise UsageError("the webhook secret must not be empty")
    bodies = load_bodies(webhooks)
    when = FIXED_NOW if now is None else now
    rendered = [(spec.name, render(spec.build(bodies, secret, when))) for spec in EVENTS]
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in rendered:
        path = out / name
        path.write_bytes(data)
        written.append(path)
    return written


def main(args: argparse.Namespace) -> int:
    """`gitmirror events --secret SECRET [--out DIR]`."""
    secret = getattr(args, "secret", None) or ""
    if not secret:
        raise UsageError("--secret must not be empty: it signs the webhook events")
    out = Path(getattr(args, "out", None) or "events")
    for path in generate(secret, out):
        print(path)
    return 0


# --------------------------------------------------------------------------- docker-free invocation
