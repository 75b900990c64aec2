"""Keep secrets out of every message: URL userinfo, registered secret values, auth headers."""

from __future__ import annotations

import base64
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
# the same escapes after something replaced ESC and BEL by "?" (dulwich does, in side-band errors):
# colours and screen controls, window titles
_REPLACED_ESCAPES = re.compile(r"\?\[[0-9;]{0,16}[mJKHfABCDG]|\?\][0-9]{1,3};[^?\n]{0,256}\?")
# Text a server chose (ERR lines, side-band errors, rejection reasons) is kept to this many characters.
REMOTE_TEXT_LIMIT = 300
_AUTH_HEADER = re.compile(
    r"(?i)(authorization|x-gitlab-token|proxy-authorization)(\s*[:=]\s*)[^\s,;'\"]+(\s+[^\s,;'\"]+)?"
)
REDACTED = "***"
# shorter base64 fragments (secrets under ~9 bytes) would match unrelated text
_MIN_BASE64_FORM = 8


def _base64_forms(value: str) -> list[str]:
    """The base64 text that `value` produces wherever it sits in an encoded string.

    A server echoing `Authorization: Basic base64(user:token)` (or base64 of the token alone) shows
    the token at one of three byte alignments; for each, the characters that depend on the token's
    bytes only are a fixed string, whatever the user name or what follows.
    """
    data = value.encode("utf-8")
    forms = []
    for pad in range(3):
        shifted = b"\0" * pad + data
        whole = len(shifted) // 3 * 3
        encoded = base64.b64encode(shifted[:whole]).decode("ascii")[4 if pad else 0 :]
        if len(encoded) >= _MIN_BASE64_FORM:
            forms.append(encoded)
    return forms


def register_secret(value: str | None) -> None:
    """Remember a secret so that `scrub` removes it (its URL-quoted and base64 forms too) from any text."""
    if not value or len(value) < 4:
        return
    with _lock:
        _secrets.add(value)
        _secrets.add(quote(value, safe=""))
        _secrets.add(quote(value, safe="/"))
        _secrets.update(_base64_forms(value))


def one_line(text: object, limit: int = REMOTE_TEXT_LIMIT) -> str:
    """`text` without terminal escapes or control characters, whitespace runs as one space, at most
    `limit` characters (cut with "..."): what a remote said, made safe to print and store."""
    out = _ESCAPES.sub("", str(text)[: 4 * limit + 1024])  # what is cut off is never shown anyway
    out = _REPLACED_ESCAPES.sub("", out)
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
