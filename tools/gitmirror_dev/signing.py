"""Signers for webhook deliveries (the tests, the local stack, the events generator and the load test).

Not in the runtime: the service only verifies (gitmirror.webhook.signatures), and these sign with the
very digest functions it verifies with.
"""

from __future__ import annotations

from gitmirror.webhook.signatures import hmac_sha256_hex, signing_key, standard_webhook_digest


def sign_github(body: bytes, secret: str) -> str:
    """The ``X-Hub-Signature-256`` header value (``sha256=<hex>``) for ``body``."""
    return "sha256=" + hmac_sha256_hex(secret, body)


def sign_gitea(body: bytes, secret: str) -> str:
    """The ``X-Gitea-Signature`` header value (bare lowercase hex) for ``body``."""
    return hmac_sha256_hex(secret, body)


def sign_standard_webhook(body: bytes, webhook_id: str, timestamp: str | int, signing_token: str) -> str:
    """A ``webhook-signature`` header value (``v1,<base64>``) for a Standard Webhooks delivery."""
    return "v1," + standard_webhook_digest(signing_key(signing_token), webhook_id, str(timestamp), body)
