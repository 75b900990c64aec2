"""Every error gitmirror raises on purpose, in one hierarchy. Messages are always scrubbed.

`kind` names the class of failure for records and logs; `retryable` says whether trying again later can
help. The HTTP API maps these to answers in one place (`gitmirror.manage.api.errors`), the CLI to exit
codes in one place (`gitmirror_cli.exits`).

Messages are one line: no control characters or terminal escapes, at most `MESSAGE_LIMIT`
characters (a status field and a terminal line, not a dump of what a server sent).
"""

from __future__ import annotations

from .scrub import one_line, scrub

MESSAGE_LIMIT = 1000


class MirrorError(Exception):
    """Base class of gitmirror's errors."""

    retryable = False
    kind = "error"

    def __init__(self, message: str) -> None:
        # made one line before scrubbing, so an escape sequence inside a secret cannot hide it
        super().__init__(scrub(one_line(message, MESSAGE_LIMIT)))

    @property
    def message(self) -> str:
        return str(self)


# --- the caller's input ---------------------------------------------------------------------------


class UsageError(MirrorError):
    """Bad input from the caller (bad URL, bad pattern, bad field): never retried."""

    kind = "usage"


class ConfigurationError(MirrorError):
    """The process's environment is missing or malformed (a cold start fails with this)."""

    kind = "configuration"


class MirrorMisconfigured(ConfigurationError):
    """One mirror's configuration cannot work (its webhook secret is missing or unreadable). The
    message names the mirror and what to fix, and is the answer itself: retrying cannot help."""

    kind = "mirror_configuration"

    def __init__(self, mirror_id: str, message: str) -> None:
        super().__init__(message)
        self.mirror_id = mirror_id


class MirrorNotFound(MirrorError):
    """No mirror with this id."""

    kind = "not_found"

    def __init__(self, mirror_id: str) -> None:
        super().__init__(f"no mirror with id {mirror_id!r}")
        self.mirror_id = mirror_id


class MirrorExists(MirrorError):
    """A mirror with this id already exists (a conflict)."""

    kind = "conflict"

    def __init__(self, mirror_id: str) -> None:
        super().__init__(f"a mirror with id {mirror_id!r} already exists")
        self.mirror_id = mirror_id


# --- webhooks -------------------------------------------------------------------------------------


class SignatureError(MirrorError):
    """The delivery could not be authenticated.

    The message is a short fixed sentence that is safe to log or return to the caller: it never
    contains the secret, a digest, a received header value or the body.
    """

    kind = "signature"


class WebhookPayloadError(MirrorError, ValueError):
    """The delivery cannot be parsed (body, headers, or payload not matching its event).

    The message is short and safe to return to the sender: it names headers or fields, never values
    from the body.
    """

    kind = "payload"


class StorageError(MirrorError):
    """DynamoDB refused a request for good (validation, missing table, access denied): retrying the
    same request cannot help. Unreachable or throttling DynamoDB is a TransientError."""

    kind = "storage"


# --- secrets --------------------------------------------------------------------------------------


class SecretError(MirrorError):
    """A secret is missing, unreadable or malformed. Never retried blindly: a human must fix it."""

    kind = "secret"


# --- a mirror run ---------------------------------------------------------------------------------


class AuthError(MirrorError):
    """401/403: the credentials are missing, wrong, expired or lack permission."""

    kind = "auth"


class RepositoryNotFound(MirrorError):
    """404 or not a git repository."""

    kind = "not_found"


class TransientError(MirrorError):
    """Network failure, timeout, 5xx, throttling: retried with backoff."""

    retryable = True
    kind = "transient"


class ProtocolFailure(MirrorError):
    """The server spoke something that is not the git protocol we expect, or refused the pack."""

    kind = "protocol"


class PushTooLarge(ProtocolFailure):
    """The target refused a push for its size (receive.maxInputSize, GitHub's 2 GiB cap)."""

    kind = "push_too_large"


class TimedOut(TransientError):
    """The run stopped before the time it was given ran out."""

    kind = "timeout"
