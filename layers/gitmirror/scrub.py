"""Keep secrets out of every message: URL userinfo, registered secret values, auth headers."""

from __future__ import annotations

import re
import threading
from urllib.parse import quote

_lock = threading.Lock()
_secrets: set[str] = set()

# Userinfo is what follows "://" up to "@". Anchored on "://" (not on a scheme, which would be retried
# from every letter of a long word) and stopped at the next "/" (every "://" has one), each character
# is scanned a bounded number of times: scrubbing is linear in the text's length.
_USERINFO = re.compile(r"://[^/\s@]+@")
# Terminal escape sequences (CSI, OSC, two-character escapes) and every other control character.
_ESCAPES = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]?|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-_]?)")
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]+")
# Text a server chose (ERR lines, side-band errors, rejection reasons) is kept to this many characters.
REMOTE_TEXT_LIMIT = 300
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


def one_line(text: object, limit: int = REMOTE_TEXT_LIMIT) -> str:
    """`text` without terminal escapes or control characters, whitespace runs as one space, at most
    `limit` characters (cut with "..."): what a remote said, made safe to print and store."""
    out = _ESCAPES.sub("", str(text)[: 4 * limit + 1024])  # what is cut off is never shown anyway
    out = " ".join(_CONTROLS.sub(" ", out).split())
    return out if len(out) <= limit else out[: limit - 3].rstrip() + "..."


def scrub(text: object) -> str:
    """Return `text` as a string with URL userinfo, auth headers and every registered secret removed."""
    out = str(text)
    out = _USERINFO.sub(f"://{REDACTED}@", out)
    out = _AUTH_HEADER.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", out)
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in out:
            out = out.replace(secret, REDACTED)
    return out
