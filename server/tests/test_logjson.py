"""logjson: one JSON object per record; the access line's facts as fields; the mask applied to
the message, the path and tracebacks before encoding."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
import time
from typing import Any

from poolswitch.logjson import ACCESS_FORMAT, JsonFormatter
from poolswitch.logmask import LogMask, install
from poolswitch.logsink import BatchedHandler, setup
from poolswitch.redact import Redactor

SECRET = "sk-pool-SECRET-1"
MASK = LogMask((), (), Redactor([(SECRET, "a")]))
RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
ACCESS_ARGS = ("POST", "/v1/chat", 200, "", "a", 2, "search", "default", 3.25, "rid-1")


def record(
    msg: str, args: tuple[Any, ...] = (), name: str = "poolswitch.access", **extra: Any
) -> logging.LogRecord:
    made = logging.LogRecord(name, logging.INFO, __file__, 1, msg, args, None)
    made.__dict__.update(extra)
    return made


def formatted(rec: logging.LogRecord, mask: LogMask | None = MASK) -> dict[str, Any]:
    formatter = JsonFormatter()
    formatter.mask = mask
    line = formatter.format(rec)
    assert "\n" not in line
    doc: dict[str, Any] = json.loads(line)
    return doc


def test_an_access_line_has_its_fields() -> None:
    doc = formatted(record(ACCESS_FORMAT, ACCESS_ARGS))
    assert RFC3339_MS.match(doc.pop("ts"))
    assert doc == {
        "level": "INFO",
        "logger": "poolswitch.access",
        "msg": "POST /v1/chat 200 key=a attempts=2 caller=search pool=default 3.2ms rid=rid-1",
        "method": "POST",
        "path": "/v1/chat",
        "status": 200,
        "incomplete": False,
        "key": "a",
        "attempts": 2,
        "caller": "search",
        "pool": "default",
        "ms": 3.2,
        "request_id": "rid-1",
    }


def test_dashes_are_nulls_and_incomplete_is_true() -> None:
    args = ("GET", "/x", 499, " incomplete", "-", 0, "-", "-", 1.0, "r")
    doc = formatted(record(ACCESS_FORMAT, args))
    assert (doc["key"], doc["caller"], doc["pool"], doc["incomplete"]) == (None, None, None, True)


def test_the_timestamp_is_utc_with_milliseconds() -> None:
    rec = record("x", name="poolswitch.cli")
    rec.created, rec.msecs = 86400.0 + 3661.5, 500.0
    assert formatted(rec)["ts"] == "1970-01-02T01:01:01.500Z"
    rec.created, rec.msecs = 86400.0 + 3662.007, 7.0  # the next second: a new prefix
    assert formatted(rec)["ts"] == "1970-01-02T01:01:02.007Z"


def test_the_mask_covers_message_path_and_traceback() -> None:
    try:
        raise RuntimeError(f"upstream said {SECRET}")
    except RuntimeError:
        info = sys.exc_info()
    other = logging.LogRecord(
        "poolswitch.proxy", logging.ERROR, __file__, 1, "got %s", (SECRET,), info
    )
    path = f"/v1/keys/{SECRET}"
    access = record(ACCESS_FORMAT, ("GET", path, *ACCESS_ARGS[2:]))
    plain = record("< authorization: Bearer CALLER-TOKEN", name="uvicorn.error")
    docs = [formatted(other), formatted(access), formatted(plain)]
    text = json.dumps(docs)
    assert SECRET not in text and "CALLER-TOKEN" not in text
    assert docs[0]["msg"] == "got a" and "upstream said a" in docs[0]["exc"]
    assert docs[1]["path"] == "/v1/keys/a" and "/v1/keys/a" in docs[1]["msg"]
    assert docs[2]["msg"] == "< authorization: ***"


def test_install_gives_the_mask_to_a_json_handler_and_a_filter_to_others() -> None:
    logger = logging.getLogger("test.logjson.install")
    json_handler, text_handler = logging.StreamHandler(io.StringIO()), logging.StreamHandler()
    json_handler.setFormatter(JsonFormatter())
    logger.handlers = [json_handler, text_handler]
    install(MASK, logger)
    assert isinstance(json_handler.formatter, JsonFormatter)
    assert json_handler.formatter.mask is MASK and not json_handler.filters
    assert text_handler.filters == [MASK]


def test_setup_json_writes_batched_json_lines() -> None:
    stream = io.StringIO()
    handler = setup("info", stream, fmt="json")
    try:
        assert isinstance(handler, BatchedHandler)
        install(MASK)
        logging.getLogger("poolswitch.access").info(ACCESS_FORMAT, *ACCESS_ARGS)
        logging.getLogger("poolswitch.proxy").warning("key %s parked", SECRET)
        lines = stream.getvalue().splitlines()
    finally:
        logging.basicConfig(handlers=[logging.NullHandler()], force=True)
    docs = [json.loads(line) for line in lines]
    assert [d["logger"] for d in docs] == ["poolswitch.access", "poolswitch.proxy"]
    assert docs[0]["request_id"] == "rid-1" and docs[1]["msg"] == "key a parked"


def test_formatting_an_access_line_is_cheap() -> None:
    """A guard, not a benchmark: a formatted access line costs microseconds, not more."""
    formatter = JsonFormatter()
    formatter.mask = MASK
    rec = record(ACCESS_FORMAT, ACCESS_ARGS)
    started = time.perf_counter()
    for _ in range(1000):
        formatter.format(rec)
    assert (time.perf_counter() - started) / 1000 < 200e-6
