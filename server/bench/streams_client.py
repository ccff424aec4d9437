"""The load generator of the many-streams section: N concurrent SSE streams on raw asyncio
(one connection each, no HTTP framework), started evenly over a ramp, each event's delay taken
from the upstream's CLOCK_MONOTONIC stamp (streams_upstream.py) to its arrival here, and each
stream's time from its request to its first event (where waiting for an upstream connection
shows).

A stream is an error when it does not answer 200, ends early, has another number of events
than expected or is not done by its deadline; the kinds are counted.
"""

from __future__ import annotations

import asyncio
import re
import resource
import time
from collections import Counter
from dataclasses import dataclass, field

from payloads import STREAM_REQUEST_JSON

_STAMP = re.compile(rb'"t": *(\d+)')
MAX_HEAD = 64 * 1024


@dataclass
class Load:
    """What the streams of one run saw: per-event delays (ms), errors by kind, and the
    generator's own CPU seconds."""

    streams: int
    completed: int = 0
    events: int = 0
    delays_ms: list[float] = field(default_factory=list)
    first_ms: list[float] = field(default_factory=list)  # request sent -> its first event
    errors: Counter[str] = field(default_factory=Counter)
    wall_s: float = 0.0
    client_cpu_s: float = 0.0


class _Client(asyncio.Protocol):
    def __init__(self, request: bytes, expect: int, load: Load, done: asyncio.Future[None]):
        self.request = request
        self.expect = expect
        self.load = load
        self.done = done
        self.buf = b""
        self.body = b""
        self.head_done = False
        self.chunked = True
        self.need = -1  # bytes of the current chunk still to come (+2 for its CRLF); -1: size
        self.seen = 0
        self.sent_ns = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.sent_ns = time.monotonic_ns()
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish("cut off" if self.head_done else "closed before an answer")

    def _finish(self, error: str | None) -> None:
        if self.done.done():
            return
        if error is None and self.seen != self.expect:
            error = f"{self.seen} events, not {self.expect}"
        if error is None:
            self.load.completed += 1
        else:
            self.load.errors[error] += 1
        self.done.set_result(None)
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        self.buf += data
        if not self.head_done:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > MAX_HEAD:
                    self._finish("answer head too large")
                return
            head = self.buf[:end].lower()
            self.buf = self.buf[end + 4 :]
            if not head.startswith(b"http/1.1 200"):
                self._finish(f"status {head[9:12].decode(errors='replace')}")
                return
            self.chunked = b"transfer-encoding: chunked" in head
            self.head_done = True
        if self.chunked:
            self._dechunk()
        else:
            self.body, self.buf = self.body + self.buf, b""
        self._events(now)

    def _dechunk(self) -> None:
        while True:
            if self.need < 0:
                end = self.buf.find(b"\r\n")
                if end < 0:
                    return
                size = int(self.buf[:end].split(b";")[0], 16)
                self.buf = self.buf[end + 2 :]
                if size == 0:
                    self._events(time.monotonic_ns())
                    self._finish(None)
                    return
                self.need = size + 2
            if len(self.buf) < self.need:
                return
            self.body += self.buf[: self.need - 2]
            self.buf = self.buf[self.need :]
            self.need = -1

    def _events(self, now: int) -> None:
        while (end := self.body.find(b"\n\n")) >= 0:
            event, self.body = self.body[:end], self.body[end + 2 :]
            stamp = _STAMP.search(event)
            if stamp is None:
                continue
            if not self.seen:
                self.load.first_ms.append((now - self.sent_ns) / 1e6)
            self.seen += 1
            self.load.events += 1
            self.load.delays_ms.append((now - int(stamp.group(1))) / 1e6)


async def _one(
    host: str, port: int, request: bytes, expect: int, load: Load, start: float, deadline: float
) -> None:
    loop = asyncio.get_running_loop()
    await asyncio.sleep(max(0.0, start - loop.time()))
    done: asyncio.Future[None] = loop.create_future()
    try:
        transport, _ = await asyncio.wait_for(
            loop.create_connection(lambda: _Client(request, expect, load, done), host, port),
            timeout=max(0.1, deadline - loop.time()),
        )
    except (OSError, asyncio.TimeoutError) as exc:
        load.errors[f"connect: {type(exc).__name__}"] += 1
        return
    try:
        await asyncio.wait_for(done, timeout=max(0.1, deadline - loop.time()))
    except asyncio.TimeoutError:
        load.errors["not done by its deadline"] += 1
        transport.abort()


async def _run(
    url_host: str,
    port: int,
    path: str,
    n: int,
    expect: int,
    span_s: float,
    ramp_s: float,
    slack_s: float,
) -> Load:
    body = STREAM_REQUEST_JSON.encode()
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {url_host}:{port}\r\nContent-Type: application/json\r\n"
        f"Accept: text/event-stream\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    load = Load(streams=n)
    loop = asyncio.get_running_loop()
    t0 = loop.time() + 0.05
    tasks = []
    for i in range(n):
        start = t0 + ramp_s * i / n
        deadline = start + span_s + slack_s
        tasks.append(_one(url_host, port, request, expect, load, start, deadline))
    await asyncio.gather(*tasks)
    return load


def run(
    port: int,
    path: str,
    streams: int,
    events: int,
    interval: float,
    *,
    ramp_s: float,
    slack_s: float = 15.0,
) -> Load:
    """`streams` streams to 127.0.0.1:port, started evenly over `ramp_s`; each must have its
    `events` events within (events - 1) * interval + slack_s of its start."""
    before = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.monotonic()
    span = (events - 1) * interval
    load = asyncio.run(_run("127.0.0.1", port, path, streams, events, span, ramp_s, slack_s))
    after = resource.getrusage(resource.RUSAGE_SELF)
    load.wall_s = time.monotonic() - t0
    load.client_cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return load
