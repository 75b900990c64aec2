"""argparse `type`s built from gitmirror's parsers (shared by `sync` and `mirrors`)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from gitmirror.errors import UsageError
from gitmirror.mirror.limits import parse_seconds, parse_size


def parsed[T](parse: Callable[[str], T]) -> Callable[[str], T]:
    """An argparse `type` from a parser raising UsageError: its message becomes the usage error."""

    def convert(text: str) -> T:
        try:
            return parse(text)
        except UsageError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


SIZE = parsed(parse_size)
SECONDS = parsed(parse_seconds)
