"""`log_format: json`: one JSON object per line, for log shippers.

Every line has `ts` (RFC 3339, UTC, milliseconds), `level`, `logger` and `msg`; a traceback adds
`exc`. An access-log line (logger `poolswitch.access`) adds its facts as fields: `method`,
`path`, `status`, `incomplete`, `key`, `attempts`, `caller`, `pool`, `ms`, `request_id` (`key`,
`caller` and `pool` are null where the text line shows `-`).

The same mask as the text format (logmask.py) keeps credentials out: here the formatter applies
it itself, to the message, the path and any traceback, before they are encoded (`logmask.install`
hands it the mask instead of putting a filter on the handler, which would flatten the access
line's arguments into text first).
"""

from __future__ import annotations

import json
import logging
import time

from poolswitch.logmask import MaskingFormatter

ACCESS_LOGGER = "poolswitch.access"
ACCESS_FORMAT = "%s %s %d%s key=%s attempts=%d caller=%s pool=%s %.1fms rid=%s"
"""The access-log line (gateway.py logs it with these arguments, in this order)."""
NONE = "-"

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class JsonFormatter(MaskingFormatter):
    """Formats a record as one JSON object (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._prefix = ""

    def format(self, record: logging.LogRecord) -> str:
        mask = self.mask
        doc: dict[str, object] = {
            "ts": self._timestamp(record.created, record.msecs),
            "level": record.levelname,
            "logger": record.name,
        }
        args = record.args
        if record.msg is ACCESS_FORMAT and isinstance(args, tuple) and len(args) == 10:
            self._access(doc, args)
        else:
            message = record.getMessage()
            doc["msg"] = mask.mask(message) if mask is not None else message
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            doc["exc"] = mask.mask(record.exc_text) if mask is not None else record.exc_text
        if record.stack_info:
            doc["stack"] = mask.mask(record.stack_info) if mask is not None else record.stack_info
        return _encode(doc)

    def access_line(self, created: float, args: tuple[object, ...]) -> str:
        """The line format() makes of an access record with these ACCESS_FORMAT arguments,
        without the record (accesslog.py)."""
        doc: dict[str, object] = {
            "ts": self._timestamp(created, int((created - int(created)) * 1000)),
            "level": "INFO",
            "logger": ACCESS_LOGGER,
        }
        self._access(doc, args)
        return _encode(doc)

    def _access(self, doc: dict[str, object], args: tuple[object, ...]) -> None:
        method, path, status, incomplete, key, attempts, caller, pool, ms, rid = args
        if self.mask is not None:
            path = self.mask.mask(str(path))
        doc["msg"] = ACCESS_FORMAT % (method, path, *args[2:])
        doc.update(
            method=method,
            path=path,
            status=status,
            incomplete=bool(incomplete),
            key=None if key == NONE else key,
            attempts=attempts,
            caller=None if caller == NONE else caller,
            pool=None if pool == NONE else pool,
            ms=round(float(ms), 1),  # type: ignore[arg-type]
            request_id=rid,
        )

    def _timestamp(self, created: float, msecs: float) -> str:
        second = int(created)
        if second != self._second:  # one strftime a second
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{int(msecs):03d}Z"
