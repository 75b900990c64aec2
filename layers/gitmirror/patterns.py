"""Linear-time branch matching: `*` globs and RE2 regexes (user input evaluated against pushed names).

Anyone who can push a branch name can make a backtracking regex engine stall a worker (`(a+)+$` against
27 characters took 10 s). GitLab evaluates `mirror_branch_regex` with RE2 for that reason; so do we.
RE2 refuses what it cannot do in linear time (backreferences, look-around): such patterns are refused
when a mirror is configured, never at run time.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import re2

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a refused pattern is a ValueError, not a line on stderr
_RE2_OPTIONS.never_capture = True
_RE2_OPTIONS.dot_nl = True


def compile_regex(pattern: str) -> Any:
    """The RE2 program for `pattern` (matched on UTF-8 bytes); ValueError when RE2 refuses it."""
    try:
        return re2.compile(pattern.encode("utf-8", "surrogateescape"), _RE2_OPTIONS)
    except re2.error as exc:
        reason = (
            exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else exc
        )
        raise ValueError(
            f"invalid branch regex (it must be RE2 syntax, without backreferences or look-around): {reason}"
        ) from None


class GlobMatcher:
    """Whole-name `*` globs (`*` is any run of characters, `/` included), by ordered substring search.

    Each glob is a prefix, a suffix and the pieces between stars found leftmost in order: one pass over
    the name per glob, whatever the number of stars.
    """

    def __init__(self, globs: Iterable[str]) -> None:
        self._globs = [tuple(g.split("*")) for g in globs]

    @staticmethod
    def _matches(parts: tuple[str, ...], name: str) -> bool:
        if len(parts) == 1:
            return name == parts[0]
        head, *middle, tail = parts
        if len(name) < len(head) + len(tail) or not name.startswith(head) or not name.endswith(tail):
            return False
        pos, end = len(head), len(name) - len(tail)
        for piece in middle:
            found = name.find(piece, pos, end)
            if found < 0:
                return False
            pos = found + len(piece)
        return True

    def matches(self, name: str) -> bool:
        return any(self._matches(parts, name) for parts in self._globs)


class BranchMatcher:
    """A short branch name is in scope when any glob matches it or the regex matches all of it."""

    def __init__(self, globs: Iterable[str], regex: str | None) -> None:
        self._globs = GlobMatcher(globs)
        self._regex = compile_regex(regex) if regex is not None else None

    def matches(self, name: str) -> bool:
        if self._globs.matches(name):
            return True
        return (
            self._regex is not None
            and self._regex.fullmatch(name.encode("utf-8", "surrogateescape")) is not None
        )
