"""gitmirror's errors as HTTP answers: the one mapping the webhook receiver and the management API use.

The message of a client error is the error's own (scrubbed, and never an echo of the input); server-side
failures get a fixed sentence, and their detail goes to the log only.
"""

from __future__ import annotations

from .errors import (
    ConfigurationError,
    MirrorError,
    MirrorExists,
    MirrorMisconfigured,
    MirrorNotFound,
    SecretError,
    SignatureError,
    TransientError,
    UsageError,
    WebhookPayloadError,
)

UNAVAILABLE = "temporarily unable to handle the request; retry later"
INTERNAL = "internal error"

# Most specific first: the first class an error is an instance of decides.
_STATUS: tuple[tuple[type[MirrorError], int], ...] = (
    (MirrorNotFound, 404),
    (MirrorExists, 409),
    (SignatureError, 401),
    (WebhookPayloadError, 400),
    (UsageError, 400),
    (TransientError, 503),
    (SecretError, 503),
    (ConfigurationError, 500),
)


def http_status(exc: MirrorError) -> int:
    for kind, status in _STATUS:
        if isinstance(exc, kind):
            return status
    return 500


def http_answer(exc: MirrorError) -> tuple[int, str]:
    """(status, message) for an error; 5xx answers never carry the error's detail."""
    status = http_status(exc)
    if isinstance(exc, MirrorMisconfigured):
        return status, exc.message  # what the hook's sender shows its admin: the mirror and the fix
    if status == 503:
        return status, UNAVAILABLE
    if status >= 500:
        return status, INTERNAL
    return status, exc.message
