"""Parsing of push webhook deliveries from GitHub, GitLab and Gitea.

Only the fields the mirror uses are read; everything else in a payload is ignored. Payload
shapes follow the real deliveries vendored in the repository's ``tests/fixtures/webhooks`` (where each
came from: ``tests/fixtures/SOURCES.md``).

Typical receiver flow (signatures are checked on the *raw* bytes, before parsing):

1. ``peek_repository(provider, headers, body)`` → ``(repo_id, full_name)`` to find the mirror
   configuration, hence the secret (never raises; ``None`` if the body says nothing usable);
2. verify the signature with :mod:`gitmirror.webhook.signatures`;
3. ``parse_webhook(provider, headers, body)`` → :class:`PushEvent` or :class:`IgnoredEvent`, or
   :class:`WebhookPayloadError` whose message is safe to return to the sender.

All ``headers`` arguments are matched case-insensitively (:func:`gitmirror.webhook.signatures.get_header`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from gitmirror.errors import WebhookPayloadError
from gitmirror.values import Provider
from gitmirror.webhook.signatures import form_payload, get_header

__all__ = [
    "IgnoredEvent",
    "Provider",
    "PushEvent",
    "WebhookPayloadError",
    "delivery_id",
    "event_name",
    "parse_webhook",
    "peek_repository",
    "source_identity",
]

_OBJECT_ID = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")  # SHA-1 or SHA-256 object name
_DELIVERY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_MAX_REF_LENGTH = 1024


# Every model here is built on first use (defer_build): a handler's cold start imports them all but
# validates with few of them.


class PushEvent(BaseModel):
    """A push to one ref of one repository."""

    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)

    provider: Provider
    event: str  # the event header value, e.g. "push", "Push Hook", "System Hook"
    delivery_id: str
    repo_id: str  # numeric id as a string (GitHub/Gitea repository.id, GitLab project id)
    repo_full_name: str  # "owner/name" (GitLab: project.path_with_namespace)
    ref: str  # full ref name, e.g. "refs/heads/main", "refs/tags/v1.0"
    before: str
    after: str

    @property
    def deleted(self) -> bool:
        """The ref was deleted (``after`` is the all-zeros object name)."""
        return _is_zero(self.after)

    @property
    def created(self) -> bool:
        """The ref was created (``before`` is the all-zeros object name)."""
        return _is_zero(self.before)

    @property
    def is_tag(self) -> bool:
        return self.ref.startswith("refs/tags/")


class IgnoredEvent(BaseModel):
    """A well-formed delivery the mirror does not act on (ping, issues, notes, other system hooks...)."""

    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)

    provider: Provider
    event: str
    delivery_id: str
    reason: str


def _is_zero(object_id: str) -> bool:
    return bool(object_id) and object_id.strip("0") == ""


# --------------------------------------------------------------------------- payload models
# Internal: just the fields read from each provider's payload, strictly typed.


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", defer_build=True)


class _HubRepository(_Payload):  # GitHub and Gitea
    id: StrictInt
    full_name: StrictStr = Field(min_length=1)


class _HubPush(_Payload):
    ref: StrictStr
    before: StrictStr
    after: StrictStr
    repository: _HubRepository


class _HubAny(_Payload):  # any GitHub/Gitea event carrying a repository (for peeking)
    repository: _HubRepository


class _GitLabProject(_Payload):
    id: StrictInt | None = None
    path_with_namespace: StrictStr = Field(min_length=1)


class _GitLabPush(_Payload):
    object_kind: StrictStr | None = None
    event_name: StrictStr | None = None
    ref: StrictStr
    before: StrictStr
    after: StrictStr
    project_id: StrictInt | None = None
    project: _GitLabProject


class _GitLabAny(_Payload):
    project_id: StrictInt | None = None
    project: _GitLabProject


def _gitlab_project_id(payload: _GitLabPush | _GitLabAny) -> str:
    """GitLab project id: top-level ``project_id`` (always sent) or ``project.id`` (newer GitLab)."""
    ids = {i for i in (payload.project_id, payload.project.id) if i is not None}
    if not ids:
        raise WebhookPayloadError("missing field: project_id")
    if len(ids) > 1:
        raise WebhookPayloadError("project_id does not match project.id")
    return str(ids.pop())


# --------------------------------------------------------------------------- headers


def event_name(provider: Provider, headers: Mapping[str, str]) -> str | None:
    """Value of the provider's event header (stripped), or ``None`` if absent/empty.

    GitHub ``X-GitHub-Event``; GitLab ``X-Gitlab-Event``; Gitea ``X-Gitea-Event``, else ``X-Gogs-Event``.
    """
    names = {
        Provider.GITHUB: ("X-GitHub-Event",),
        Provider.GITLAB: ("X-Gitlab-Event",),
        Provider.GITEA: ("X-Gitea-Event", "X-Gogs-Event"),
    }[provider]
    return _first_header(headers, names)


def delivery_id(provider: Provider, headers: Mapping[str, str]) -> str | None:
    """Delivery id used for de-duplication, or ``None`` if absent or not a plausible id.

    GitHub ``X-GitHub-Delivery``; GitLab ``Idempotency-Key``, else ``X-Gitlab-Event-UUID``, else
    ``webhook-id``; Gitea ``X-Gitea-Delivery``, else ``X-Gogs-Delivery``. The first non-empty
    header decides; its value must be 1-128 characters of ``[A-Za-z0-9._:-]`` (UUIDs, GUIDs and
    Standard Webhooks ``msg_...`` ids all fit), otherwise ``None`` is returned.
    """
    names = {
        Provider.GITHUB: ("X-GitHub-Delivery",),
        Provider.GITLAB: ("Idempotency-Key", "X-Gitlab-Event-UUID", "webhook-id"),
        Provider.GITEA: ("X-Gitea-Delivery", "X-Gogs-Delivery"),
    }[provider]
    value = _first_header(headers, names)
    if value is None or not _DELIVERY_ID.fullmatch(value):
        return None
    return value


def signed_delivery_id(headers: Mapping[str, str]) -> str | None:
    """GitLab's signing-token mode: the `webhook-id` the signature covers (same id rules)."""
    value = _first_header(headers, ("webhook-id",))
    return value if value is not None and _DELIVERY_ID.fullmatch(value) else None


def _first_header(headers: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = get_header(headers, name)
        if value is not None and value.strip():
            return value.strip()
    return None


# --------------------------------------------------------------------------- body


def _decode_body(headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """JSON object from a JSON body or from the ``payload`` field of a form-encoded body."""
    try:
        raw = form_payload(headers, body)
    except ValueError:
        raise WebhookPayloadError("malformed form body") from None
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # JSONDecodeError/UnicodeDecodeError are ValueErrors
        raise WebhookPayloadError("body is not valid JSON") from None
    if not isinstance(data, dict):
        raise WebhookPayloadError("body is not a JSON object")
    return data


def _validate[M: _Payload](model: type[M], data: dict[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        locations = sorted({".".join(str(part) for part in err["loc"]) for err in exc.errors()})
        raise WebhookPayloadError("missing or invalid field: " + ", ".join(locations[:5])) from None


def _check_push_fields(ref: str, before: str, after: str) -> None:
    if not ref.startswith("refs/") or len(ref) > _MAX_REF_LENGTH or not ref.isprintable() or " " in ref:
        raise WebhookPayloadError("invalid field: ref")
    for name, value in (("before", before), ("after", after)):
        if not _OBJECT_ID.fullmatch(value):
            raise WebhookPayloadError(f"invalid field: {name}")
    if _is_zero(before) and _is_zero(after):
        raise WebhookPayloadError("invalid fields: before and after are both zero")


# --------------------------------------------------------------------------- parsing


def parse_webhook(provider: Provider, headers: Mapping[str, str], body: bytes) -> PushEvent | IgnoredEvent:
    """Parse a delivery (call after the signature of ``body`` has been verified).

    * GitHub: ``X-GitHub-Event: push`` → :class:`PushEvent`; any other event → :class:`IgnoredEvent`.
    * GitLab: ``Push Hook`` / ``Tag Push Hook`` → PushEvent (``object_kind``, when present, must be
      ``push`` / ``tag_push``); ``System Hook`` whose ``event_name`` (or ``object_kind``) is
      ``push``/``tag_push`` → PushEvent, other system hooks and other events → IgnoredEvent.
    * Gitea: ``X-Gitea-Event`` (or ``X-Gogs-Event``) ``push`` → PushEvent; others → IgnoredEvent.

    The body is JSON, or ``application/x-www-form-urlencoded`` with the JSON in ``payload`` (by
    ``Content-Type``), and must be a JSON object even for ignored events. Raises
    :class:`WebhookPayloadError` for a missing event header or delivery id, an undecodable body,
    missing/invalid fields, or a payload that does not match its event.
    """
    provider = Provider(provider)
    event = event_name(provider, headers)
    if event is None:
        raise WebhookPayloadError("missing event header")
    delivery = delivery_id(provider, headers)
    if delivery is None:
        raise WebhookPayloadError("missing or invalid delivery id header")
    data = _decode_body(headers, body)

    def ignored(reason: str) -> IgnoredEvent:
        return IgnoredEvent(provider=provider, event=event, delivery_id=delivery, reason=reason)

    if provider is Provider.GITLAB:
        if event in ("Push Hook", "Tag Push Hook"):
            expected_kind = "push" if event == "Push Hook" else "tag_push"
            payload = _validate(_GitLabPush, data)
            for kind in (payload.object_kind, payload.event_name):
                if kind is not None and kind != expected_kind:
                    raise WebhookPayloadError("payload does not match the event header")
        elif event == "System Hook":
            kind = data.get("event_name", data.get("object_kind"))
            if kind not in ("push", "tag_push"):
                shown = kind if isinstance(kind, str) and kind.isidentifier() and len(kind) <= 64 else "?"
                return ignored(f"system hook event {shown!r} is not a push")
            payload = _validate(_GitLabPush, data)
        else:
            return ignored("not a push event")
        _check_push_fields(payload.ref, payload.before, payload.after)
        return PushEvent(
            provider=provider,
            event=event,
            delivery_id=delivery,
            repo_id=_gitlab_project_id(payload),
            repo_full_name=payload.project.path_with_namespace,
            ref=payload.ref,
            before=payload.before,
            after=payload.after,
        )

    # GitHub and Gitea share the push payload shape.
    if event != "push":
        return ignored("not a push event")
    hub = _validate(_HubPush, data)
    _check_push_fields(hub.ref, hub.before, hub.after)
    return PushEvent(
        provider=provider,
        event=event,
        delivery_id=delivery,
        repo_id=str(hub.repository.id),
        repo_full_name=hub.repository.full_name,
        ref=hub.ref,
        before=hub.before,
        after=hub.after,
    )


def peek_repository(provider: Provider, headers: Mapping[str, str], body: bytes) -> tuple[str, str] | None:
    """``(repo_id, full_name)`` named by an *unverified* body, or ``None``; never raises.

    Used only to look up which secret to verify the delivery with; the result must not be
    trusted before verification. Reads ``repository.id``/``repository.full_name`` (GitHub,
    Gitea; works for ``ping`` too) or ``project_id``/``project.id`` and
    ``project.path_with_namespace`` (GitLab, including system hooks).
    """
    try:
        data = _decode_body(headers, body)
        if Provider(provider) is Provider.GITLAB:
            gitlab = _validate(_GitLabAny, data)
            return _gitlab_project_id(gitlab), gitlab.project.path_with_namespace
        hub = _validate(_HubAny, data)
        return str(hub.repository.id), hub.repository.full_name
    except Exception:  # noqa: BLE001 - documented contract: never raises on hostile input
        return None


def source_identity(event: PushEvent) -> tuple[str, str]:
    """``(provider, repo_id)``: the key a mirror's source is matched on."""
    return event.provider.value, event.repo_id
