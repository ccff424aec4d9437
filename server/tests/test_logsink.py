"""logsink: INFO lines flushed in batches from the event loop; warnings, and lines logged off
the loop, at once."""

from __future__ import annotations

import asyncio
import io
import logging

from poolswitch.logsink import FLUSH_SECONDS, BatchedHandler


class Stream(io.StringIO):
    """A stream that shows what has been flushed (what a reader of the file would see)."""

    def __init__(self) -> None:
        super().__init__()
        self.flushed = ""

    def flush(self) -> None:
        self.flushed = self.getvalue()


def logger(stream: Stream) -> logging.Logger:
    log = logging.getLogger(f"test.logsink.{id(stream)}")
    log.propagate = False
    log.setLevel(logging.INFO)
    handler = BatchedHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    log.handlers = [handler]
    return log


def test_info_lines_on_the_loop_are_flushed_together_a_moment_later() -> None:
    stream = Stream()
    log = logger(stream)

    async def scenario() -> list[str]:
        seen = []
        for n in range(3):
            log.info("request %d", n)
        seen.append(stream.flushed)  # nothing yet: one batch, one timer
        await asyncio.sleep(FLUSH_SECONDS * 2)
        seen.append(stream.flushed)
        log.info("request 3")
        seen.append(stream.flushed)
        await asyncio.sleep(FLUSH_SECONDS * 2)
        seen.append(stream.flushed)
        return seen

    before, batch, pending, later = asyncio.run(scenario())
    assert before == ""
    assert batch == "INFO request 0\nINFO request 1\nINFO request 2\n"
    assert pending == batch  # a new batch waits for its own timer
    assert later.endswith("INFO request 3\n")


def test_warnings_and_lines_off_the_loop_are_flushed_at_once() -> None:
    stream = Stream()
    log = logger(stream)
    log.info("starting")  # no event loop running: nothing would flush it later
    assert stream.flushed == "INFO starting\n"

    async def scenario() -> str:
        log.info("queued")
        log.warning("key a disabled")  # flushes everything so far
        return stream.flushed

    assert asyncio.run(scenario()) == "INFO starting\nINFO queued\nWARNING key a disabled\n"
