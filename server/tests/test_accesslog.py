"""accesslog: the access line written straight into the batched handler is the line `logging`
would have written (text and JSON, masked); any other logging set-up gets a real record."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest

from poolswitch.accesslog import AccessLog
from poolswitch.logjson import ACCESS_FORMAT, JsonFormatter
from poolswitch.logmask import LogMask, install
from poolswitch.logsink import FORMAT, BatchedHandler
from poolswitch.redact import Redactor

SECRET = "sk-accesslog-secret-0123456789"
ARGS = ("GET", f"/v1/files/{SECRET}", 200, "", "a", 1, "-", "default", 1.25, "rid-1")
MASKED = "GET /v1/files/a 200 key=a attempts=1 caller=- pool=default 1.2ms rid=rid-1"
TEXT_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ")


@pytest.fixture
def root() -> Iterator[logging.Logger]:
    """The root logger with no handlers of its own during the test (pytest's come back)."""
    logger = logging.getLogger()
    saved, level = logger.handlers[:], logger.level
    logger.handlers = []
    logger.setLevel(logging.INFO)
    yield logger
    logger.handlers, logger.level = saved, level


def batched(root: logging.Logger, formatter: logging.Formatter) -> io.StringIO:
    stream = io.StringIO()
    handler = BatchedHandler(stream)
    handler.setFormatter(formatter)
    root.handlers = [handler]
    install(LogMask((), (), Redactor([(SECRET, "a")])), root)
    return stream


def through_logging(root: logging.Logger, formatter: logging.Formatter) -> str:
    """The same line, logged as a record (what the fast path must reproduce)."""
    stream = batched(root, formatter)
    logging.getLogger("poolswitch.access").info(ACCESS_FORMAT, *ARGS)
    root.handlers[0].flush()
    return stream.getvalue()


def test_the_text_line_is_the_one_logging_writes(root: logging.Logger) -> None:
    stream = batched(root, logging.Formatter(FORMAT))
    AccessLog().write(*ARGS)
    root.handlers[0].flush()
    fast = stream.getvalue()
    slow = through_logging(root, logging.Formatter(FORMAT))
    assert (
        TEXT_TIME.sub("", fast) == TEXT_TIME.sub("", slow) == f"INFO poolswitch.access: {MASKED}\n"
    )
    assert TEXT_TIME.match(fast) and SECRET not in fast


def test_the_json_line_is_the_one_logging_writes(root: logging.Logger) -> None:
    stream = batched(root, JsonFormatter())
    AccessLog().write(*ARGS)
    root.handlers[0].flush()
    fast = json.loads(stream.getvalue())
    slow = json.loads(through_logging(root, JsonFormatter()))
    assert fast.pop("ts")[:10] == slow.pop("ts")[:10]
    assert fast == slow
    assert fast["msg"] == MASKED and fast["path"] == "/v1/files/a"


def test_another_handler_gets_a_record(root: logging.Logger) -> None:
    batched(root, logging.Formatter(FORMAT))
    seen: list[logging.LogRecord] = []

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    root.addHandler(Catch())
    AccessLog().write(*ARGS)
    assert [r.name for r in seen] == ["poolswitch.access"]


def test_nothing_is_written_when_the_access_logger_is_off(root: logging.Logger) -> None:
    stream = batched(root, logging.Formatter(FORMAT))
    root.setLevel(logging.WARNING)
    AccessLog().write(*ARGS)
    root.handlers[0].flush()
    assert stream.getvalue() == ""
