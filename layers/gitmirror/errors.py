"""Errors a mirror run can end with, classified for retry decisions.

Messages are always one scrubbed line: no control characters or terminal escapes, at most
`MESSAGE_LIMIT` characters (a status field and a terminal line, not a dump of what a server sent).
"""

from __future__ import annotations

from gitmirror.scrub import one_line, scrub

MESSAGE_LIMIT = 1000


class MirrorError(Exception):
    """Base class. `retryable` says whether trying again later can help."""

    retryable = False
    kind = "error"

    def __init__(self, message: str) -> None:
        # made one line before scrubbing, so an escape sequence inside a secret cannot hide it
        super().__init__(scrub(one_line(message, MESSAGE_LIMIT)))

    @property
    def message(self) -> str:
        return str(self)


class UsageError(MirrorError):
    """Bad input from the caller (bad URL, bad pattern): never retried."""

    kind = "usage"


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


class TimedOut(TransientError):
    """The run stopped before the time it was given ran out."""

    kind = "timeout"
