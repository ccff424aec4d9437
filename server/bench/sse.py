"""SSE client probe: time to the first and to the last complete event of a stream."""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any

import aiohttp

from payloads import STREAM_REQUEST_JSON
from proc import BenchError


@dataclass
class SseResult:
    url: str
    samples: int
    events_per_stream: int
    first_event_ms_median: float
    first_event_ms_min: float
    first_event_ms_max: float
    last_event_ms_median: float
    first_event_ms: list[float]
    last_event_ms: list[float]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


async def _one(session: aiohttp.ClientSession, url: str) -> tuple[float, float, int]:
    """One streamed request: (ms to first event, ms to last event, events seen)."""
    t0 = time.perf_counter()
    first: float | None = None
    last = 0.0
    events = 0
    buf = b""
    async with session.post(
        url,
        data=STREAM_REQUEST_JSON,
        headers={"Content-Type": "application/json", "Accept": "text/event-stream"},
    ) as resp:
        if resp.status != 200:
            raise BenchError(f"SSE request to {url} answered {resp.status}")
        async for chunk in resp.content.iter_any():
            buf += chunk
            while True:
                # An event ends with a blank line.
                end = buf.find(b"\n\n")
                if end < 0:
                    break
                buf = buf[end + 2 :]
                now = time.perf_counter()
                events += 1
                last = now - t0
                if first is None:
                    first = last
    if first is None:
        raise BenchError(f"SSE stream from {url} had no complete event")
    return first * 1000, last * 1000, events


async def _measure(url: str, samples: int, expect_events: int, timeout: float) -> SseResult:
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(timeout=client_timeout, connector=connector) as session:
        await _one(session, url)  # warm-up: opens the connections, not counted
        firsts: list[float] = []
        lasts: list[float] = []
        for _ in range(samples):
            first, last, events = await _one(session, url)
            if events != expect_events:
                raise BenchError(f"SSE stream from {url} had {events} events, want {expect_events}")
            firsts.append(first)
            lasts.append(last)
    return SseResult(
        url=url,
        samples=samples,
        events_per_stream=expect_events,
        first_event_ms_median=statistics.median(firsts),
        first_event_ms_min=min(firsts),
        first_event_ms_max=max(firsts),
        last_event_ms_median=statistics.median(lasts),
        first_event_ms=firsts,
        last_event_ms=lasts,
    )


def measure(
    url: str, samples: int = 20, expect_events: int = 20, timeout: float = 10.0
) -> SseResult:
    """Median over `samples` sequential streams (after one warm-up stream)."""
    try:
        return asyncio.run(_measure(url, samples, expect_events, timeout))
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise BenchError(f"SSE request to {url} failed: {exc!r}") from exc
