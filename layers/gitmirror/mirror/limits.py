"""Push size limits: parsing `--max-push-bytes`/`--time-limit` values, and the known hosts' limits.

| target host            | largest push the host accepts         | gitmirror's default `max_push_bytes`  |
|------------------------|---------------------------------------|---------------------------------------|
| github.com             | 2 GiB ("pack exceeds maximum ...")    | 2 GiB minus 64 MiB                    |
| bitbucket.org          | 3.5 GB per push                       | none (set it: 3G)                     |
| gitlab.com             | none documented for a push pack       | none                                  |
| AWS CodeCommit         | 2 GB per push (files 2 GB)            | none (set it: 1900M)                  |
| self-hosted git        | `receive.maxInputSize` (unset: none)  | none (set it below the configured cap)|

Only github.com gets a default: its cap applies to every repository and cannot be raised; the others
are either configurable per server or documented loosely, so the operator states them.
"""

from __future__ import annotations

import re

from gitmirror.errors import UsageError

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
GITHUB_PUSH_LIMIT = 2 * GIB
# below the host's cap: the body also carries the ref commands, and GitHub counts in its own way
GITHUB_SAFETY_MARGIN = 64 * MIB
DEFAULT_LIMITS = {"github.com": GITHUB_PUSH_LIMIT - GITHUB_SAFETY_MARGIN}

_SIZE = re.compile(r"([0-9]+)([KMG]?)", re.IGNORECASE)
_FACTORS = {"": 1, "K": KIB, "M": MIB, "G": GIB}
# what `--time-limit` accepts: a positive number of seconds, decimals allowed
_SECONDS = re.compile(r"[0-9]+(\.[0-9]+)?")
# a push body carries the pack plus one pkt-line command per ref and a flush: an upper bound
_COMMAND_BYTES_FIXED = 512


def parse_size(text: str) -> int:
    """`15M` -> 15 * 1024**2. A positive whole number of bytes with an optional K/M/G suffix (powers
    of 1024); anything else is a UsageError."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise UsageError(
            f"invalid size {text!r}: expected a positive number of bytes with an optional K, M or G suffix"
        )
    value = int(match.group(1)) * _FACTORS[match.group(2).upper()]
    if value <= 0:
        raise UsageError(f"invalid size {text!r}: it must be greater than zero")
    return value


def parse_seconds(text: str) -> float:
    """A positive number of seconds (`90`, `2.5`); anything else is a UsageError."""
    if _SECONDS.fullmatch(text.strip()) is None or float(text) <= 0:
        raise UsageError(f"invalid number of seconds {text!r}: expected a positive number")
    return float(text)


def format_size(value: int) -> str:
    """The largest exact suffix form: 15728640 -> `15M`, 1000 -> `1000`."""
    for suffix in ("G", "M", "K"):
        if value % _FACTORS[suffix] == 0:
            return f"{value // _FACTORS[suffix]}{suffix}"
    return str(value)


def human_size(value: int) -> str:
    """For messages: 200606 -> `195.9 KiB (200,606 bytes)`."""
    amount, unit = float(value), "bytes"
    for name in ("KiB", "MiB", "GiB"):
        if amount < 1024:
            break
        amount, unit = amount / 1024, name
    shown = f"{value:,} bytes" if unit == "bytes" else f"{amount:.1f} {unit} ({value:,} bytes)"
    return shown


def default_max_push_bytes(host: str | None) -> int | None:
    """The limit applied when a mirror sets none: the host's known fixed cap, minus a margin."""
    return DEFAULT_LIMITS.get((host or "").lower())


def command_bytes(refs: list[str]) -> int:
    """An upper bound of the non-pack part of a push body updating `refs`."""
    return _COMMAND_BYTES_FIXED + sum(
        4 + 41 + 41 + len(ref.encode("utf-8", "surrogateescape")) + 1 for ref in refs
    )
