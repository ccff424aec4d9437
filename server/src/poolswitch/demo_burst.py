"""The traffic of `poolswitch demo`: a short burst of chat completions (a few streamed) sent
through the proxy, as a caller would, and what the caller saw of each answer.

Each request asks for the decision trace (`x-poolswitch-trace: 1`, trace.py), so the tally knows
every failover and its cause from the proxy's own headers (`x-poolswitch-key-id`,
`x-poolswitch-attempts`, `x-poolswitch-trace`), not from the demo's script. A caller-visible
error is any answer but a complete 200 (a streamed one must end with `data: [DONE]`), or a
request that failed to go through at all.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from poolswitch import democli
from poolswitch.trace import HEADER as TRACE_HEADER

REQUESTS = democli.REQUESTS
CONCURRENCY = 3
STREAM_EVERY = 5
"""Every fifth request is streamed."""
PAUSE_SECONDS = 0.3
"""Each sender's pause between two requests: the burst lasts long enough to watch (and for the
rate-limited key to come back)."""
REQUEST_TIMEOUT = 15.0
EVENTS_SHOWN = 8
CAUSES = ("quota_exhausted", "rate_limited", "key_invalid")
"""The failover causes the demo's keys produce (classifier outcomes)."""


def parse_trace(value: str) -> list[tuple[str, str]]:
    """`a rate_limited 0ms, b success 3ms` -> [(key id, outcome), ...]; `none` -> []."""
    steps = []
    for part in value.split(","):
        words = part.split()
        if len(words) >= 2:
            steps.append((words[0], words[1]))
    return steps


@dataclass
class Failover:
    """One failover as the caller's answer reports it."""

    at: float
    """Seconds since the burst began."""
    request: int
    key_id: str
    cause: str
    to: str
    """The key tried next."""


@dataclass
class Tally:
    """What the caller saw of the burst so far."""

    total: int
    started: float = 0.0
    done: int = 0
    streams: int = 0
    succeeded: int = 0
    errors: list[str] = field(default_factory=list)
    failovers: int = 0
    by_cause: Counter[str] = field(default_factory=Counter)
    served_by: Counter[str] = field(default_factory=Counter)
    recent: deque[Failover] = field(default_factory=lambda: deque(maxlen=EVENTS_SHOWN))
    first_failover: float | None = None
    finished: float | None = None

    def answered(self, n: int, status: int, headers: Any, complete: bool, now: float) -> None:
        """Count request `n`'s answer: its status, its headers, whether its body was whole."""
        self.done += 1
        steps = parse_trace(headers.get(TRACE_HEADER.decode(), ""))
        for (key_id, outcome), (next_id, _) in itertools.pairwise(steps):
            self.failovers += 1
            self.by_cause[outcome] += 1
            event = Failover(now - self.started, n, key_id, outcome, next_id)
            self.recent.append(event)
            if self.first_failover is None:
                self.first_failover = event.at
        if status == 200 and complete:
            self.succeeded += 1
            self.served_by[headers.get("x-poolswitch-key-id", "?")] += 1
        else:
            error = headers.get("x-poolswitch-error") or ("incomplete" if status == 200 else "")
            self.errors.append(f"request {n}: {status} {error}".rstrip())

    def failed(self, n: int, problem: str) -> None:
        self.done += 1
        self.errors.append(f"request {n}: {problem}")


def request_body(n: int) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": f"Say hello (demo request {n})."}],
    }
    if n % STREAM_EVERY == 0:
        body["stream"] = True
    return body


async def send_one(session: aiohttp.ClientSession, url: str, n: int, tally: Tally) -> None:
    body = request_body(n)
    stream = bool(body.get("stream"))
    headers = {TRACE_HEADER.decode(): "1", "Authorization": "Bearer demo-caller"}
    try:
        async with session.post(
            url + "/v1/chat/completions",
            json=body,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT),
        ) as resp:
            data = await resp.read()
            complete = data.rstrip().endswith(b"data: [DONE]") if stream else bool(data)
            if stream:
                tally.streams += 1
            tally.answered(n, resp.status, resp.headers, complete, time.monotonic())
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        tally.failed(n, type(exc).__name__)


async def burst(
    url: str,
    tally: Tally,
    *,
    concurrency: int = CONCURRENCY,
    pause: float = PAUSE_SECONDS,
    clock: Callable[[], float] = time.monotonic,
) -> Tally:
    """Send `tally.total` requests to the proxy at `url`, `concurrency` at a time."""
    tally.started = clock()
    numbers = iter(range(1, tally.total + 1))

    async def sender(session: aiohttp.ClientSession) -> None:
        for n in numbers:
            await send_one(session, url, n, tally)
            if tally.done < tally.total:
                await asyncio.sleep(pause)

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(sender(session) for _ in range(concurrency)))
    tally.finished = clock()
    return tally


def summary(
    tally: Tally, status: dict[str, Any], scripts: dict[str, str], now: float
) -> dict[str, Any]:
    """The summary (the `--json` document): the burst as the caller saw it, and each key as
    the proxy's `/status` shows it, with what the demo upstream does with it."""
    keys = []
    for key in status.get("keys", []):
        until = key.get("cooldown_until")
        keys.append(
            {
                "id": key["id"],
                "state": key["state"],
                "reason": key.get("reason"),
                "returns_in_seconds": None if until is None else max(round(until - now), 0),
                "requests": key["total_requests"],
                "successes": key["successes"],
                "failovers": key["failovers"],
                "upstream": scripts.get(key["id"], ""),
            }
        )
    seconds = (tally.finished or time.monotonic()) - tally.started
    return {
        "requests": tally.done,
        "streamed": tally.streams,
        "succeeded": tally.succeeded,
        "caller_errors": len(tally.errors),
        "errors": tally.errors,
        "failovers": tally.failovers,
        "failovers_by_cause": {cause: tally.by_cause.get(cause, 0) for cause in CAUSES}
        | {c: n for c, n in tally.by_cause.items() if c not in CAUSES},
        "first_failover_seconds": None
        if tally.first_failover is None
        else round(tally.first_failover, 3),
        "seconds": round(seconds, 3),
        "served_by": dict(tally.served_by),
        "keys": keys,
    }
