"""How every `gitmirror` command ends: its output, and errors as one line or one JSON object.

Without `--json` an error is one line on stderr (`gitmirror: error: ...`). With `--json` every outcome
is exactly one JSON object on stdout: the command's own document on success (and for `sync`, its
result even when the run failed), else `{"error": "<the one-line message>", "exit_code": N}`; the line
goes to stderr as well, for the human watching. Exit codes: 0 ok, 1 failed, 2 usage, 3 partial.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from gitmirror.scrub import scrub
from gitmirror_cli.exits import EXIT_FAILED

EXIT_INTERRUPTED = 130


class CommandError(Exception):
    """Ends the command with a one-line message and an exit code (1 failed, 2 usage)."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class _Mode:
    json = False


mode = _Mode()


def wants_json(argv: Sequence[str]) -> bool:
    """Whether the command line asks for JSON; read before parsing, so usage errors honour it too."""
    args = list(argv)
    if "--" in args:
        args = args[: args.index("--")]
    return "--json" in args


def one_line(message: str) -> str:
    return " ".join(scrub(message).split())


def emit_error(message: str, exit_code: int) -> int:
    line = one_line(message)
    sys.stderr.write(f"gitmirror: error: {line}\n")
    if mode.json:
        print(json.dumps({"error": line, "exit_code": exit_code}))
    return exit_code


def warn(message: str) -> None:
    sys.stderr.write(f"gitmirror: warning: {one_line(message)}\n")
