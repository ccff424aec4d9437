"""The access log: one line per request, written without the `logging` module's per-record cost.

`logger.info()` spends most of its time before a byte is written: it looks up the caller's frame
(`findCaller`), builds a `LogRecord` (thread and process names among its twenty attributes),
runs the filters, and formats the time with `strftime` for every record. Measured with the
proxy's CPU per request (wrk at c=16 against nginx): the access log took a fifth of it. So, when
the process logs the way `poolswitch start` sets it up — the root logger's only handler is the
batched one (logsink.py) and nothing else listens on `poolswitch.access` — `AccessLog.write`
renders the line itself, byte for byte the line `logging` would have written (text or JSON, the
time cached per second), masks it with the handler's own mask (logmask.py), and hands it to
that handler's buffer, which flushes at most 0.1 s later and at exit. In any other set-up (a
test's `caplog`, a second handler, the logger silenced), it logs through `logging` as before.
"""

from __future__ import annotations

import logging
import time

from poolswitch.logjson import ACCESS_FORMAT, ACCESS_LOGGER, JsonFormatter
from poolswitch.logmask import LogMask
from poolswitch.logsink import BatchedHandler

PREFIX = " INFO " + ACCESS_LOGGER + ": "


class _LocalSecond:
    """`logging.Formatter`'s default `asctime` (local time, `,` and milliseconds), with one
    `strftime` per second rather than one per line."""

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def __call__(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._second = second
            self._text = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        return f"{self._text},{int((created - second) * 1000):03d}"


class AccessLog:
    """Writes the access line of each request (see the module docstring)."""

    def __init__(self) -> None:
        self._logger = logging.getLogger(ACCESS_LOGGER)
        self._root = logging.getLogger()
        self._asctime = _LocalSecond()

    def write(self, *args: object) -> None:
        """One line; `args` are ACCESS_FORMAT's, in its order."""
        logger = self._logger
        if not logger.isEnabledFor(logging.INFO):
            return
        handler = self._fast_handler()
        if handler is None:
            logger.info(ACCESS_FORMAT, *args)
            return
        created = time.time()
        formatter = handler.formatter
        if isinstance(formatter, JsonFormatter):
            line = formatter.access_line(created, args)
        else:
            message = ACCESS_FORMAT % args
            for mask in handler.filters:  # two for a moment during a reload: both apply
                if isinstance(mask, LogMask):
                    message = mask.mask(message)
            line = self._asctime(created) + PREFIX + message
        handler.write_line(line)

    def _fast_handler(self) -> BatchedHandler | None:
        """The batched handler when it is the only place a record would go, else None."""
        handlers = self._root.handlers
        if len(handlers) != 1 or self._logger.handlers or self._logger.filters:
            return None
        handler = handlers[0]
        if not isinstance(handler, BatchedHandler) or handler.level > logging.INFO:
            return None
        if not self._logger.propagate or self._root.filters:
            return None
        return handler
