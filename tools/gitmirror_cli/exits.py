"""The CLI's exit codes, and gitmirror's errors mapped to them (the one place that decides)."""

from __future__ import annotations

from gitmirror.errors import ConfigurationError, MirrorError, UsageError
from gitmirror.values import RunStatus

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3
EXIT_INCOMPLETE = 4


def exit_for_error(exc: MirrorError) -> int:
    """Bad input (arguments or environment) is a usage error (2); anything else that went wrong is a
    failure (1)."""
    return EXIT_USAGE if isinstance(exc, UsageError | ConfigurationError) else EXIT_FAILED


def exit_for_status(status: RunStatus) -> int:
    return {
        RunStatus.SUCCESS: EXIT_OK,
        RunStatus.PARTIAL: EXIT_PARTIAL,
        RunStatus.INCOMPLETE: EXIT_INCOMPLETE,
    }.get(status, EXIT_FAILED)
