"""The webhook receiver's logic: verify, match, dedupe, enqueue. Never any git work here.

Order matters: the signature is checked over the raw bytes before the payload is trusted; only the
repository identity is peeked first, because it says which mirror's secret to check against.
"""

from __future__ import annotations

import datetime as dt
import secrets as pysecrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gitmirror.records import Mirror
from gitmirror.values import STUCK_AFTER_SECONDS, Provider, Trigger, UpdateStatus, parse_iso, utcnow
from gitmirror.webhook.payloads import (
    IgnoredEvent,
    WebhookPayloadError,
    delivery_id,
    event_name,
    parse_webhook,
    peek_repository,
)
from gitmirror.webhook.signatures import (
    SignatureError,
    get_header,
    verify_gitea_signature,
    verify_github_signature,
    verify_gitlab,
)

SIGNATURE_HEADERS: dict[Provider, tuple[str, ...]] = {
    Provider.GITHUB: ("X-Hub-Signature-256",),
    Provider.GITLAB: ("X-Gitlab-Token", "webhook-signature"),
    Provider.GITEA: ("X-Gitea-Signature", "X-Gogs-Signature", "X-Hub-Signature-256"),
}
PUSH_EVENTS = {"push", "push hook", "tag push hook", "system hook"}


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any]
    reason: str = ""  # metric dimension for rejections
    enqueued: list[str] = field(default_factory=list)


def reject(status: int, message: str, reason: str) -> Reply:
    return Reply(status, {"error": message}, reason=reason)


def verify(provider: Provider, headers: Mapping[str, str], body: bytes, secret: str) -> None:
    if provider == Provider.GITHUB:
        verify_github_signature(body, get_header(headers, "X-Hub-Signature-256"), secret)
    elif provider == Provider.GITLAB:
        verify_gitlab(body, headers, secret)
    else:
        verify_gitea_signature(body, headers, secret)


class Ports:
    """What the receiver needs from the outside world (DynamoDB, Secrets Manager, SQS, idempotency)."""

    def __init__(
        self,
        find_mirrors: Callable[[str, str | None, str | None], list[Mirror]],
        webhook_secret: Callable[[str], str],
        enqueue: Callable[[str, Trigger, str], None],
        mark_scheduled: Callable[[str], bool],
        once_per_delivery: Callable[
            [dict[str, Any], Callable[[dict[str, Any]], dict[str, Any]]], dict[str, Any]
        ],
        register_context: Callable[[Any], None] = lambda _context: None,
    ) -> None:
        self.find_mirrors = find_mirrors
        self.webhook_secret = webhook_secret
        self.enqueue = enqueue
        self.mark_scheduled = mark_scheduled
        self.register_context = register_context
        self.once_per_delivery = once_per_delivery


def receive_webhook(
    provider: Provider,
    headers: Mapping[str, str],
    body: bytes,
    ports: Ports,
    *,
    max_body_bytes: int,
) -> Reply:
    if len(body) > max_body_bytes:
        return reject(413, f"body larger than {max_body_bytes} bytes", "too_large")
    event = event_name(provider, headers)
    if not event:
        return reject(400, "missing event header", "missing_header")
    delivery = delivery_id(provider, headers)
    if not delivery:
        return reject(400, "missing or malformed delivery id header", "missing_header")
    if not any(get_header(headers, h) for h in SIGNATURE_HEADERS[provider]):
        return reject(401, "missing signature", "missing_signature")

    identity = peek_repository(provider, headers, body)
    if identity is None:
        if event.lower() in PUSH_EVENTS:
            return reject(400, "payload is not a push event with a repository", "bad_payload")
        return Reply(200, {"delivery": delivery, "ignored": f"event {event!r} does not trigger a mirror"})
    repo_id, full_name = identity
    mirrors = [m for m in ports.find_mirrors(provider.value, repo_id, full_name) if m.enabled]
    if not mirrors:
        if event.lower() not in PUSH_EVENTS:
            # e.g. GitHub's ping when the hook is created before the mirror: nothing to verify against.
            return Reply(200, {"delivery": delivery, "ignored": f"event {event!r} does not trigger a mirror"})
        return reject(404, "no mirror is configured for this repository", "unknown_repository")

    verified = _verified_mirrors(provider, headers, body, mirrors, ports)
    if not verified:
        return reject(401, "invalid signature", "bad_signature")

    try:
        parsed = parse_webhook(provider, headers, body)
    except WebhookPayloadError as exc:
        return reject(400, str(exc), "bad_payload")
    if isinstance(parsed, IgnoredEvent):
        return Reply(200, {"delivery": delivery, "ignored": parsed.reason})

    mirror_ids = [m.id for m in verified]
    token = pysecrets.token_hex(8)

    def enqueue_all(data: dict[str, Any]) -> dict[str, Any]:
        for mirror in verified:
            ports.enqueue(mirror.id, Trigger.WEBHOOK, delivery)
            if not already_scheduled(mirror):
                ports.mark_scheduled(mirror.id)
        return {"mirrors": mirror_ids, "queued": len(mirror_ids), "token": token}

    outcome = ports.once_per_delivery({"provider": provider.value, "delivery_id": delivery}, enqueue_all)
    if outcome.get("token") != token:
        return Reply(
            200, {"delivery": delivery, "mirrors": outcome.get("mirrors", []), "queued": 0, "duplicate": True}
        )
    return Reply(
        202, {"delivery": delivery, "mirrors": mirror_ids, "queued": len(mirror_ids)}, enqueued=mirror_ids
    )


def already_scheduled(mirror: Mirror) -> bool:
    """Scheduled within the hour: a burst of pushes need not write the same status again."""
    if mirror.update_status != UpdateStatus.SCHEDULED or not mirror.last_scheduled_at:
        return False
    since = utcnow() - parse_iso(mirror.last_scheduled_at)
    return since < dt.timedelta(seconds=STUCK_AFTER_SECONDS)


def _verified_mirrors(
    provider: Provider, headers: Mapping[str, str], body: bytes, mirrors: list[Mirror], ports: Ports
) -> list[Mirror]:
    """Mirrors whose webhook secret verifies this delivery. A mirror without a secret never matches."""
    results: dict[str, bool] = {}
    verified = []
    for mirror in mirrors:
        name = mirror.webhook_secret
        if not name:
            continue
        if name not in results:
            try:
                verify(provider, headers, body, ports.webhook_secret(name))
                results[name] = True
            except SignatureError:
                results[name] = False
        if results[name]:
            verified.append(mirror)
    return verified


# How long a delivery id is remembered: GitHub and GitLab let people redeliver old deliveries by hand.
DELIVERY_MEMORY_SECONDS = 3 * 24 * 3600


def default_ports(settings: Any) -> Ports:
    """Ports backed by DynamoDB (mirrors + Powertools idempotency), Secrets Manager and SQS."""
    from aws_lambda_powertools.utilities.idempotency import (
        DynamoDBPersistenceLayer,
        IdempotencyConfig,
        idempotent_function,
    )
    from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

    from gitmirror.adapters.aws import queue as jobs
    from gitmirror.adapters.aws.mirror_table import MirrorStore
    from gitmirror.adapters.aws.secrets_manager import get_webhook_secret

    store = MirrorStore(settings.mirrors_table, settings.runs_table)
    persistence = DynamoDBPersistenceLayer(table_name=settings.idempotency_table)
    config = IdempotencyConfig(
        event_key_jmespath="[provider, delivery_id]", expires_after_seconds=DELIVERY_MEMORY_SECONDS
    )

    @idempotent_function(data_keyword_argument="delivery", config=config, persistence_store=persistence)
    def _once(delivery: dict[str, Any], action: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
        return action(delivery)

    def once_per_delivery(
        delivery: dict[str, Any], action: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> dict[str, Any]:
        try:
            result: dict[str, Any] = _once(delivery=delivery, action=action)
        except IdempotencyAlreadyInProgressError:
            return {"mirrors": [], "in_progress": True}
        return result

    def enqueue(mirror_id: str, trigger: Trigger, delivery: str) -> None:
        jobs.enqueue(settings.queue_url, jobs.make_job(mirror_id, trigger, delivery))

    return Ports(
        find_mirrors=store.find_by_source,
        webhook_secret=get_webhook_secret,
        enqueue=enqueue,
        mark_scheduled=store.mark_scheduled,
        once_per_delivery=once_per_delivery,
        register_context=config.register_lambda_context,
    )
