"""Webhook authenticity checks for GitHub, Gitea and GitLab deliveries.

Every ``verify_*`` function returns ``None`` when the delivery is authentic and raises
:class:`SignatureError` otherwise. The functions are pure (no I/O, no logging), compare
digests and tokens with :func:`hmac.compare_digest`, and their error messages never
contain the secret, the expected digest, the received signature or the body.

Secrets are encoded as UTF-8 before use. An empty secret is refused (``SignatureError``):
Gitea sends ``X-Gitea-Signature`` as an empty string when no secret is configured, and a
mirror without a secret must not accept deliveries.

Only verification lives here (the runtime); the signers the tests, the local stack and the events
generator use are in ``gitmirror_dev.signing``, built on the same digest functions.

Header mappings (``headers`` arguments) are looked up case-insensitively with
:func:`get_header`, so the raw mapping from an HTTP framework, API Gateway (mixed case)
or a Lambda function URL (lowercased) can be passed as is.

Sources for the formats: the repository's ``tests/fixtures/webhooks/HEADERS.md`` (GitHub docs "Validating
webhook deliveries", Gitea ``services/webhook/deliver.go``, GitLab ``web_hook_service.rb``
and the Standard Webhooks spec used by GitLab's signing token).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from urllib.parse import parse_qs

from gitmirror.errors import SignatureError

__all__ = [
    "STANDARD_WEBHOOK_TOLERANCE_SECONDS",
    "SignatureError",
    "get_header",
    "hmac_sha256_hex",
    "signing_key",
    "standard_webhook_digest",
    "verify_gitea_signature",
    "verify_github_signature",
    "verify_gitlab",
    "verify_gitlab_token",
    "verify_standard_webhook",
]

STANDARD_WEBHOOK_TOLERANCE_SECONDS = 300
_SIGNING_TOKEN_PREFIX = "whsec_"
_HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_TIMESTAMP = re.compile(r"[0-9]{1,15}")
_FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


def get_header(headers: Mapping[str, str], name: str) -> str | None:
    """Return the value of header ``name`` from ``headers``, matching names case-insensitively.

    An exact-case key wins; otherwise the first key equal to ``name`` ignoring case is used.
    Returns ``None`` when the header is absent. Values are returned unchanged (not stripped).
    """
    value = headers.get(name)
    if value is not None:
        return value
    wanted = name.lower()
    for key, candidate in headers.items():
        if isinstance(key, str) and key.lower() == wanted:
            return candidate
    return None


def _secret_bytes(secret: str) -> bytes:
    if not secret:
        raise SignatureError("webhook secret is not configured")
    return secret.encode("utf-8")


def hmac_sha256_hex(secret: str, body: bytes) -> str:
    return hmac.new(_secret_bytes(secret), body, hashlib.sha256).hexdigest()


def _check_hex_digest(body: bytes, provided_hex: str, secret: str) -> None:
    provided_hex = provided_hex.strip()
    if not _HEX_SHA256.fullmatch(provided_hex):
        raise SignatureError("malformed signature header")
    expected = hmac_sha256_hex(secret, body)
    if not hmac.compare_digest(expected, provided_hex.lower()):
        raise SignatureError("signature mismatch")


# --------------------------------------------------------------------------- GitHub


def verify_github_signature(body: bytes, signature_header: str | None, secret: str) -> None:
    """Check ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>``.

    ``body`` must be the raw request bytes as received (for a form-encoded delivery, the
    form body, not the JSON inside it). The legacy SHA-1 ``X-Hub-Signature`` is not accepted.
    """
    _secret_bytes(secret)
    if signature_header is None or not signature_header.strip():
        raise SignatureError("missing signature header")
    scheme, sep, digest = signature_header.strip().partition("=")
    if not sep or scheme.lower() != "sha256":
        raise SignatureError("malformed signature header")
    _check_hex_digest(body, digest, secret)


# --------------------------------------------------------------------------- Gitea


def form_payload(headers: Mapping[str, str], body: bytes) -> bytes:
    """The body, or the ``payload`` field of an ``application/x-www-form-urlencoded`` body.

    Raises ValueError for a malformed form body (anything but exactly one ``payload`` field).
    """
    content_type = (get_header(headers, "Content-Type") or "").split(";", 1)[0].strip().lower()
    if content_type != _FORM_CONTENT_TYPE:
        return body
    fields = parse_qs(  # UnicodeDecodeError is a ValueError too
        body.decode("ascii"),
        keep_blank_values=True,
        strict_parsing=True,
        encoding="utf-8",
        errors="strict",
        max_num_fields=100,
    )
    payload = fields.get("payload")
    if payload is None or len(payload) != 1:
        raise ValueError("form body must have exactly one payload field")
    return payload[0].encode("utf-8")


def _gitea_signed_bytes(body: bytes, headers: Mapping[str, str]) -> bytes:
    """Bytes Gitea signed: Gitea computes the HMAC over the JSON payload (``HookTask.PayloadContent``)
    even when it delivers it as ``application/x-www-form-urlencoded`` with ``payload=<JSON>``."""
    try:
        return form_payload(headers, body)
    except ValueError:
        raise SignatureError("malformed form body") from None


def verify_gitea_signature(body: bytes, headers: Mapping[str, str], secret: str) -> None:
    """Check a Gitea (or Gogs/Forgejo) delivery signature.

    Uses the first non-empty header among ``X-Gitea-Signature``, ``X-Gogs-Signature`` (both
    bare hex) and ``X-Hub-Signature-256`` (``sha256=<hex>``). Header names are matched
    case-insensitively (any mapping works; see :func:`get_header`). When ``Content-Type`` is
    ``application/x-www-form-urlencoded`` the digest is checked over the decoded ``payload``
    field, because that is what Gitea signs.
    """
    _secret_bytes(secret)
    signed = _gitea_signed_bytes(body, headers)
    for name in ("X-Gitea-Signature", "X-Gogs-Signature"):
        value = get_header(headers, name)
        if value is not None and value.strip():
            _check_hex_digest(signed, value, secret)
            return
    verify_github_signature(signed, get_header(headers, "X-Hub-Signature-256"), secret)


# --------------------------------------------------------------------------- GitLab


def verify_gitlab_token(token_header: str | None, secret: str) -> None:
    """Check ``X-Gitlab-Token``, which GitLab sends verbatim (no HMAC)."""
    expected = _secret_bytes(secret)
    if token_header is None or token_header == "":
        raise SignatureError("missing token header")
    try:
        provided = token_header.encode("utf-8")
    except UnicodeEncodeError:
        raise SignatureError("token mismatch") from None
    if not hmac.compare_digest(expected, provided):
        raise SignatureError("token mismatch")


def signing_key(signing_token: str) -> bytes:
    """Key bytes of a ``whsec_<base64>`` signing token (the base64 part, decoded)."""
    if not signing_token.startswith(_SIGNING_TOKEN_PREFIX):
        raise SignatureError("invalid signing token")
    encoded = signing_token[len(_SIGNING_TOKEN_PREFIX) :]
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("invalid signing token") from None
    if not key:
        raise SignatureError("invalid signing token")
    return key


def standard_webhook_digest(key: bytes, webhook_id: str, timestamp: str, body: bytes) -> str:
    message = f"{webhook_id}.{timestamp}.".encode() + body
    return base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode("ascii")


def verify_standard_webhook(
    body: bytes,
    webhook_id: str | None,
    timestamp: str | None,
    signature_header: str | None,
    signing_token: str,
    *,
    now: float | None = None,
    tolerance_seconds: int = STANDARD_WEBHOOK_TOLERANCE_SECONDS,
) -> None:
    """Check a Standard Webhooks signature (GitLab's signing token).

    ``signing_token`` is ``whsec_<base64 key>``; the HMAC key is the base64-decoded part
    (this is what makes both published Standard Webhooks vectors and the GitLab vectors in
    ``signatures.json`` pass). The signed message is ``f"{webhook_id}.{timestamp}.".encode() +
    body``; ``signature_header`` is a space-separated list of ``<version>,<base64>`` entries and
    any ``v1`` entry that matches is enough. ``timestamp`` must be a plain decimal number of unix
    seconds within ``tolerance_seconds`` of ``now`` (default: ``time.time()``), in either direction.
    """
    key = signing_key(signing_token)
    if not webhook_id or not timestamp or not signature_header:
        raise SignatureError("missing signature headers")
    timestamp = timestamp.strip()
    if not _TIMESTAMP.fullmatch(timestamp):
        raise SignatureError("malformed timestamp")
    current = time.time() if now is None else now
    sent_at = int(timestamp)
    if sent_at < current - tolerance_seconds:
        raise SignatureError("timestamp too old")
    if sent_at > current + tolerance_seconds:
        raise SignatureError("timestamp too new")
    expected = standard_webhook_digest(key, webhook_id, timestamp, body)
    matched = False
    for entry in signature_header.split(" "):
        version, sep, signature = entry.partition(",")
        if not sep or version != "v1" or not signature.isascii():
            continue
        # Evaluate every entry (no early exit) so timing does not depend on the position.
        matched |= hmac.compare_digest(expected, signature)
    if not matched:
        raise SignatureError("signature mismatch")


def is_signing_token(secret: str) -> bool:
    """A GitLab signing token (Standard Webhooks, `whsec_...`), as opposed to a plain secret token."""
    return secret.startswith(_SIGNING_TOKEN_PREFIX)


def verify_gitlab(
    body: bytes,
    headers: Mapping[str, str],
    secret: str,
    *,
    now: float | None = None,
    tolerance_seconds: int = STANDARD_WEBHOOK_TOLERANCE_SECONDS,
) -> None:
    """Authenticate a GitLab delivery with the single secret string a mirror stores.

    * ``secret`` starting with ``whsec_``: it is a GitLab *signing token*; the delivery must carry
      a valid Standard Webhooks signature (``webhook-id``, ``webhook-timestamp``,
      ``webhook-signature``). ``X-Gitlab-Token`` is not consulted.
    * otherwise it is a GitLab *secret token*; ``X-Gitlab-Token`` must equal it exactly.

    Header names are matched case-insensitively.
    """
    if is_signing_token(secret):
        verify_standard_webhook(
            body,
            get_header(headers, "webhook-id"),
            get_header(headers, "webhook-timestamp"),
            get_header(headers, "webhook-signature"),
            secret,
            now=now,
            tolerance_seconds=tolerance_seconds,
        )
    else:
        verify_gitlab_token(get_header(headers, "X-Gitlab-Token"), secret)
