"""A fast SSE upstream for many open streams, on raw asyncio (no HTTP framework): any POST
answers `--events` server-sent events `--interval` seconds apart, chunked, each stamped with
the CLOCK_MONOTONIC nanoseconds it was written at (`"t":...`), so that a client on the same
machine measures each event's delay from the upstream's write. Keep-alive: a connection takes
the next request once a stream has ended. `GET /ready` answers 200 `ok` and closes.

Run as: python streams_upstream.py --port PORT [--events 20] [--interval 0.5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import time

HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)
READY = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
MAX_HEAD = 64 * 1024


def templates(events: int) -> list[tuple[bytes, bytes]]:
    """Per event, the bytes before and after its stamp: one chunk holding one event of a chat
    completion stream (the chunk size counts a 19-digit stamp: CLOCK_MONOTONIC nanoseconds
    below 10**19, padded with spaces before it: still JSON)."""
    out = []
    for i in range(events):
        chunk = {
            "id": "chatcmpl-bench-streams",
            "object": "chat.completion.chunk",
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"index": 0, "delta": {"content": f"token{i}"}, "finish_reason": None}],
            "t": 0,
        }
        text = b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"
        before, after = text.split(b'"t":0')
        size = len(before) + len(b'"t":') + 19 + len(after)
        out.append((b'%x\r\n%s"t":' % (size, before), after + b"\r\n"))
    return out


def event(template: tuple[bytes, bytes]) -> bytes:
    """The event stamped with now (CLOCK_MONOTONIC ns, right-aligned in 19 characters)."""
    return b"%s%19d%s" % (template[0], time.monotonic_ns(), template[1])


class Stream(asyncio.Protocol):
    def __init__(self, events: list[tuple[bytes, bytes]], interval: float) -> None:
        self.events = events
        self.interval = interval
        self.buf = b""
        self.streaming = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.streaming:
            self._next_request()

    def _next_request(self) -> None:
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buf) > MAX_HEAD and self.transport is not None:
                self.transport.close()
            return
        head = self.buf[:end].decode("latin-1")
        length = 0
        for line in head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        if len(self.buf) < end + 4 + length:
            return
        self.buf = self.buf[end + 4 + length :]
        if self.transport is None:
            return
        if head.startswith("GET /ready"):
            self.transport.write(READY)
            self.transport.close()
            return
        self.streaming = True
        self.transport.write(HEAD + event(self.events[0]))
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i in range(1, len(self.events)):
            loop.call_at(start + i * self.interval, self._send, i)

    def _send(self, i: int) -> None:
        if self.transport is None:
            return
        data = event(self.events[i])
        if i == len(self.events) - 1:
            self.transport.write(data + b"0\r\n\r\n")
            self.streaming = False
            self._next_request()
        else:
            self.transport.write(data)


async def serve(port: int, events: int, interval: float) -> None:
    loop = asyncio.get_running_loop()
    made = templates(events)
    server = await loop.create_server(
        lambda: Stream(made, interval), "127.0.0.1", port, backlog=4096
    )
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--interval", type=float, default=0.5)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    print(f"streams upstream on port {args.port}, open-file limit {soft}/{hard}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port, args.events, args.interval))


if __name__ == "__main__":
    main()
