"""Keep secrets out of every message: URL userinfo, registered secret values, auth headers."""

from __future__ import annotations

import re
import threading
from urllib.parse import quote

_lock = threading.Lock()
_secrets: set[str] = set()

_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@]+@")
_AUTH_HEADER = re.compile(
    r"(?i)(authorization|x-gitlab-token|proxy-authorization)(\s*[:=]\s*)[^\s,;'\"]+(\s+[^\s,;'\"]+)?"
)
REDACTED = "***"


def register_secret(value: str | None) -> None:
    """Remember a secret so that `scrub` removes it (and its URL-quoted forms) from any text."""
    if not value or len(value) < 4:
        return
    with _lock:
        _secrets.add(value)
        _secrets.add(quote(value, safe=""))
        _secrets.add(quote(value, safe="/"))


def scrub(text: object) -> str:
    """Return `text` as a string with URL userinfo, auth headers and every registered secret removed."""
    out = str(text)
    out = _USERINFO.sub(lambda m: f"{m.group('scheme')}{REDACTED}@", out)
    out = _AUTH_HEADER.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", out)
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in out:
            out = out.replace(secret, REDACTED)
    return out
