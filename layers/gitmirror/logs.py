"""Keep secrets out of logs at every level: library loggers capped, a scrub filter on the handlers.

At DEBUG, botocore logs whole response bodies (GetSecretValue's included), urllib3 and dulwich log
requests. Capping those loggers at WARNING is the first line: whatever level the root logger or
POWERTOOLS_LOG_LEVEL is set to, their debug output never reaches a handler. The scrub filter is the
second line, for any record that does: message, `extra` fields and traceback go through
`gitmirror.scrub.scrub`.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from gitmirror.scrub import scrub

# loggers that print request or response contents below WARNING
LIBRARY_LOGGERS = ("botocore", "boto3", "s3transfer", "urllib3", "dulwich", "aws_xray_sdk")
_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
}


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict | list | tuple):
        text = json.dumps(value, default=str)
        clean = scrub(text)
        if clean == text:
            return value
        try:
            return json.loads(clean)
        except ValueError:
            return clean
    return value


class ScrubFilter(logging.Filter):
    """Scrubs a record in place (and never drops one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            message = record.getMessage()
            clean = scrub(message)
            if clean != message or record.args:
                record.msg, record.args = clean, None
        else:
            record.msg = _scrub_value(record.msg)
            record.args = _scrub_value(record.args) if record.args else record.args
        for key, value in list(vars(record).items()):
            if key not in _STANDARD_ATTRIBUTES:
                setattr(record, key, _scrub_value(value))
        if record.exc_info and record.exc_info[0] is not None:
            trace = logging.Formatter().formatException(record.exc_info)
            clean = scrub(trace)
            if clean != trace:
                # formatters read the exception object itself: hand them the scrubbed text instead
                record.exc_info, record.exc_text = None, None
                record.msg = f"{record.msg}\n{clean}"
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True


def cap_library_loggers(level: int = logging.WARNING) -> None:
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level < level:
            logger.setLevel(level)


def install() -> None:
    """Cap the library loggers and put the scrub filter on every handler configured so far (the
    Lambda runtime's root handler, Powertools' handler). Idempotent; call after creating loggers."""
    cap_library_loggers()
    loggers: list[logging.Logger] = [logging.getLogger()]
    loggers += [lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)]
    handlers = [h for logger in loggers for h in logger.handlers]
    if logging.lastResort is not None:  # prints warnings when nothing is configured (the CLI)
        handlers.append(logging.lastResort)
    for handler in handlers:
        if not any(isinstance(f, ScrubFilter) for f in handler.filters):
            handler.addFilter(ScrubFilter())
