"""The webhook receiver's logic: verify, match, dedupe, enqueue. Never any git work here.

Order matters: the signature is checked over the raw bytes before the payload is trusted; only the
repository identity is peeked first, because it says which mirror's secret to check against.
"""

from __future__ import annotations

import hashlib
import secrets as pysecrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gitmirror.errors import MirrorMisconfigured, SecretError, SignatureError, WebhookPayloadError
from gitmirror.jobs import queue_sync
from gitmirror.ports import DeliveryLedger, JobQueue, MirrorRepository, SecretSource
from gitmirror.records import Mirror
from gitmirror.values import Provider, Trigger
from gitmirror.webhook.payloads import (
    IgnoredEvent,
    delivery_id,
    event_name,
    parse_webhook,
    peek_repository,
    signed_delivery_id,
)
from gitmirror.webhook.signatures import (
    get_header,
    is_signing_token,
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


@dataclass(frozen=True)
class ReceiverPorts:
    """What the receiver needs from the outside world."""

    mirrors: MirrorRepository
    secrets: SecretSource
    queue: JobQueue
    ledger: DeliveryLedger


def receive_webhook(
    provider: Provider,
    headers: Mapping[str, str],
    body: bytes,
    ports: ReceiverPorts,
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

    if event.lower() not in PUSH_EVENTS:
        # Nothing to trigger (GitHub's ping, issues, ...): the same answer for every repository, mirrored
        # or not, signed or not.
        return Reply(200, {"delivery": delivery, "ignored": f"event {event!r} does not trigger a mirror"})
    identity = peek_repository(provider, headers, body)
    if identity is None:
        return reject(400, "payload is not a push event with a repository", "bad_payload")
    repo_id, full_name = identity
    mirrors = [m for m in ports.mirrors.find_by_source(provider.value, repo_id, full_name) if m.enabled]
    # An unknown repository gets the answer of a bad signature: an unauthenticated caller must not
    # learn which repositories are mirrored (there is no secret to verify against either way).
    verified, signed_id = _verified_mirrors(provider, headers, body, mirrors, ports)
    if not verified:
        return reject(401, "invalid signature", "bad_signature" if mirrors else "unknown_repository")
    if signed_id:
        # GitLab signing token: the signed `webhook-id` is the delivery; Idempotency-Key is not signed
        delivery = signed_id

    try:
        parsed = parse_webhook(provider, headers, body)
    except WebhookPayloadError as exc:
        return reject(400, str(exc), "bad_payload")
    if isinstance(parsed, IgnoredEvent):
        return Reply(200, {"delivery": delivery, "ignored": parsed.reason})

    mirror_ids = [m.id for m in verified]
    token = pysecrets.token_hex(8)

    def enqueue_all() -> dict[str, Any]:
        for mirror in verified:
            queue_sync(ports.queue, mirror.id, Trigger.WEBHOOK, delivery)
            # A burst of pushes need not write the same `scheduled` status again.
            if not mirror.is_scheduled():
                ports.mirrors.mark_scheduled(mirror.id)
        return {"mirrors": mirror_ids, "queued": len(mirror_ids), "token": token}

    def once_per_body() -> dict[str, Any]:
        # A GitHub signature covers the body only: a captured delivery re-sent under a new
        # X-GitHub-Delivery is the same body signature, remembered as long as delivery ids are.
        signature = get_header(headers, "X-Hub-Signature-256") or ""
        key = hashlib.sha256(signature.strip().lower().encode()).hexdigest()
        return ports.ledger.once({"provider": "github-body", "delivery_id": key}, enqueue_all)

    first = once_per_body if provider == Provider.GITHUB else enqueue_all
    outcome = ports.ledger.once({"provider": provider.value, "delivery_id": delivery}, first)
    if outcome.get("token") != token:
        return Reply(
            200, {"delivery": delivery, "mirrors": outcome.get("mirrors", []), "queued": 0, "duplicate": True}
        )
    return Reply(
        202, {"delivery": delivery, "mirrors": mirror_ids, "queued": len(mirror_ids)}, enqueued=mirror_ids
    )


def _verified_mirrors(
    provider: Provider, headers: Mapping[str, str], body: bytes, mirrors: list[Mirror], ports: ReceiverPorts
) -> tuple[list[Mirror], str | None]:
    """Mirrors whose webhook secret verifies this delivery (a mirror without a secret never matches),
    and the signed delivery id when a GitLab signing token verified it."""
    results: dict[str, bool] = {}
    verified = []
    signed_id = None
    for mirror in mirrors:
        name = mirror.webhook_secret
        if not name:
            continue
        if name not in results:
            try:
                secret = ports.secrets.webhook_secret(name)
            except SecretError as exc:
                raise MirrorMisconfigured(
                    mirror.id,
                    f"mirror {mirror.id} is misconfigured: {exc.message}. Fix the mirror's webhook secret;"
                    " this delivery will not be retried (redeliver it, or the schedule catches up)",
                ) from None
            try:
                verify(provider, headers, body, secret)
                results[name] = True
            except SignatureError:
                results[name] = False
            if results[name] and provider == Provider.GITLAB and is_signing_token(secret):
                signed_id = signed_delivery_id(headers)
        if results[name]:
            verified.append(mirror)
    return verified, signed_id
