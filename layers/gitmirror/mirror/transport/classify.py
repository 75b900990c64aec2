"""dulwich and urllib3 exceptions -> `gitmirror.errors`, with scrubbed, actionable messages."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import urllib3
from dulwich.client import HTTPUnauthorized
from dulwich.errors import GitProtocolError, HangupException, NotGitRepository

from gitmirror.errors import (
    AuthError,
    MirrorError,
    ProtocolFailure,
    RepositoryNotFound,
    TimedOut,
    TransientError,
)
from gitmirror.scrub import one_line, scrub

if TYPE_CHECKING:
    from gitmirror.mirror.transport.remote import Remote

_STATUS = re.compile(r"unexpected http resp (\d{3})")


class mapped_errors:
    """Translate dulwich/urllib3 exceptions into gitmirror errors with scrubbed, actionable text."""

    def __init__(self, remote: Remote) -> None:
        self.remote = remote

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None or not isinstance(exc, Exception):
            return
        deadline = self.remote.deadline
        if deadline is not None and deadline.passed() and not isinstance(exc, TimedOut):
            # the deadline shut the connection down: whatever broke next is the timeout's doing
            raise deadline.error(scrub(self.remote.url.url)) from None
        if isinstance(exc, MirrorError):
            return
        raise classify_error(exc, self.remote.url.url) from None


def classify_error(exc: Exception, where: str) -> MirrorError:
    where = scrub(where)
    if isinstance(exc, HTTPUnauthorized):
        return AuthError(f"authentication failed for {where} (HTTP 401): check the token or credentials")
    if isinstance(exc, NotGitRepository):
        return RepositoryNotFound(
            f"repository not found at {where} (HTTP 404 or not a git repository): "
            "check the URL and that the credentials can see it"
        )
    if isinstance(exc, HangupException):
        return TransientError(f"the connection to {where} was closed unexpectedly")
    if isinstance(exc, GitProtocolError):
        cause = exc.__cause__
        if isinstance(cause, urllib3.exceptions.HTTPError) or isinstance(cause, OSError):
            return _network_error(cause, where)
        match = _STATUS.search(str(exc))
        if match:
            code = int(match.group(1))
            if code == 403:
                return AuthError(
                    f"access denied by {where} (HTTP 403): the credentials lack permission for this repository"
                )
            if code in (408, 429) or code >= 500:
                return TransientError(f"{where} answered HTTP {code}; will retry")
            return ProtocolFailure(f"{where} answered HTTP {code}")
        return ProtocolFailure(f"git protocol error with {where}: {one_line(exc)}")
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError):
        return _network_error(exc, where)
    if isinstance(exc, AssertionError | ValueError | KeyError | IndexError):
        return ProtocolFailure(f"unexpected response from {where}: {type(exc).__name__}: {one_line(exc)}")
    return TransientError(f"{type(exc).__name__} talking to {where}: {one_line(exc)}")


def _network_error(exc: BaseException, where: str) -> TransientError:
    text = str(exc)
    if isinstance(exc, urllib3.exceptions.TimeoutError) or "timed out" in text.lower():
        return TransientError(f"timed out talking to {where}")
    if isinstance(exc, urllib3.exceptions.ProtocolError) or "Connection aborted" in text:
        return TransientError(f"the connection to {where} was closed unexpectedly")
    if "Name or service not known" in text or "nodename nor servname" in text or "NameResolution" in text:
        return TransientError(f"cannot resolve the host of {where}")
    if "Connection refused" in text or "NewConnectionError" in text or "Max retries" in text:
        return TransientError(f"cannot connect to {where} (connection refused or unreachable)")
    return TransientError(f"network error talking to {where}: {type(exc).__name__}")
