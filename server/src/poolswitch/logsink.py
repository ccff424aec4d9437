"""Where `poolswitch start` writes its log: stderr, in batches.

At INFO the proxy logs one access line per request, its most frequent I/O. `logging`'s
StreamHandler flushes after every record, and stderr is line-buffered anyway, so each line was a
`write()` system call of its own on the request's path (measured with `nox -s bench`: the access
log cost about a fifth of the throughput). `BatchedHandler` writes into a buffer instead and
flushes it:

- at most `FLUSH_SECONDS` after the first line of a batch, from the event loop (one timer per
  batch, armed by that line), so `tail -f` lags by at most that much;
- at once for a record at WARNING or above, and for one logged off the event loop (the store's
  worker thread, start-up and shutdown);
- when the buffer is full, and at exit (`logging.shutdown`).

Lines are text (`FORMAT`) or, with `log_format: json`, one JSON object each (logjson.py); the
batching is the same.

A `kill -9` can lose the last `FLUSH_SECONDS` of INFO lines; never a warning or an error.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import TextIO

from poolswitch.logjson import JsonFormatter

FLUSH_SECONDS = 0.1
BUFFER_BYTES = 64 * 1024
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class BatchedHandler(logging.StreamHandler[TextIO]):
    """A StreamHandler that flushes in batches (see the module docstring)."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._armed = False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.stream.write(self.format(record) + self.terminator)
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)
            return
        if record.levelno >= logging.WARNING:
            self.flush()
            return
        self._arm()

    def write_line(self, line: str) -> None:
        """A line already formatted and masked (accesslog.py), at INFO: batched like a record."""
        with self.lock:  # type: ignore[union-attr]  # created by Handler.__init__
            try:
                self.stream.write(line + self.terminator)
            except RecursionError:
                raise
            except Exception:  # as emit(): a broken stderr must not break the request
                return
        self._arm()

    def _arm(self) -> None:
        if self._armed:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on the event loop: nothing would flush it later
            self.flush()
            return
        self._armed = True
        loop.call_later(FLUSH_SECONDS, self._flush_batch)

    def _flush_batch(self) -> None:
        self._armed = False
        self.flush()


def buffered_stderr() -> TextIO:
    """A text stream on file descriptor 2 with a buffer of its own (sys.stderr flushes every
    line). Not closed with the handler: the descriptor stays the process's stderr."""
    sys.stderr.flush()
    return open(
        sys.stderr.fileno(),
        "w",
        buffering=BUFFER_BYTES,
        encoding="utf-8",
        errors="backslashreplace",
        closefd=False,
    )


def setup(level: str, stream: TextIO | None = None, fmt: str = "text") -> BatchedHandler:
    """Send every logger's records at `level` and above to `stream` (default: stderr), batched,
    as `fmt` (`text` or `json`)."""
    handler = BatchedHandler(stream if stream is not None else buffered_stderr())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    return handler
