"""The second line of log hygiene: a record that reaches a handler is scrubbed in full."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from gitmirror import logs
from gitmirror.scrub import register_secret

SECRET = "canary-LOG-4c2e8a6f1d"


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    register_secret(SECRET)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s %(detail)s"))
    logger = logging.getLogger("gitmirror.test_logs")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logs.install()
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)


def test_message_args_extras_and_tracebacks_are_scrubbed(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    logger.debug("body %s", json.dumps({"SecretString": SECRET}), extra={"detail": f"token={SECRET}"})
    logger.info({"secret": SECRET, "url": f"https://u:{SECRET}@example.com/r"}, extra={"detail": [SECRET]})
    try:
        raise RuntimeError(f"failed with {SECRET}")
    except RuntimeError:
        logger.exception("boom", extra={"detail": "-"})
    text = stream.getvalue()
    assert SECRET not in text
    assert text.count("***") >= 5 and "RuntimeError: failed with ***" in text and "Traceback" in text


def test_library_loggers_are_capped_whatever_the_root_level() -> None:
    root = logging.getLogger()
    before = root.level
    root.setLevel(logging.DEBUG)
    try:
        logs.install()
        for name in logs.LIBRARY_LOGGERS:
            assert not logging.getLogger(name).isEnabledFor(logging.INFO), name
        assert logging.getLogger("gitmirror.test_logs.own").level == logging.NOTSET  # ours are left alone
    finally:
        root.setLevel(before)


def test_install_is_idempotent(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, _stream = captured
    logs.install()
    logs.install()
    assert [type(f) for f in logger.handlers[-1].filters].count(logs.ScrubFilter) == 1
