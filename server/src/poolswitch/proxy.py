"""One pool's request loop: select a key -> forward -> classify -> record -> fail over or answer.

The gateway (gateway.py) has already checked the request's Host, Origin and caller and picked
this pool; `Proxy.handle` takes it from there. The request body is read once, bounded by
`max_request_body_bytes`, so it can be sent again to another key. Failover is possible until the
first byte of an answer reaches the caller; after that the upstream's body is relayed as it
arrives and nothing is retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from poolswitch.callers import NO_CALLER
from poolswitch.classifier import NETWORK_ERROR, SUCCESS, TIMEOUT, Classifier, Verdict
from poolswitch.config import PoolConfig
from poolswitch.errors import (
    ConnectError,
    NoAvailableKeys,
    ProxyError,
    ReadTimeout,
    TransportError,
    UpstreamTimeout,
    UpstreamUnavailable,
    UpstreamUnreachable,
)
from poolswitch.guard import OutageGuard
from poolswitch.keys import KeyState
from poolswitch.pool import Pool
from poolswitch.profiles import RULES
from poolswitch.redact import Redactor
from poolswitch.request import (
    HOP_BY_HOP,
    BodyBudget,
    Receive,
    Scope,
    Send,
    dropped_headers,
    forward_headers,
    read_body,
    request_target,
    without_query_param,
)
from poolswitch.requestid import HEADER as REQUEST_ID
from poolswitch.requestid import HEADER_NAME as REQUEST_ID_NAME
from poolswitch.requestid import OWN_HEADER as OWN_REQUEST_ID
from poolswitch.retry import (
    RELAY,
    TIMED_OUT,
    TRY,
    UNREACHABLE,
    Step,
    after_attempt,
    when_no_key,
)
from poolswitch.trace import HEADER as TRACE
from poolswitch.trace import Trace
from poolswitch.verify import (
    UNKNOWN,
    VERIFY_HEADERS,
    VERIFY_READ,
    VERIFY_TIMEOUT,
    Confirming,
    Verifier,
    default_path,
    reading,
)

if TYPE_CHECKING:  # types only: the embedded clients import this module without aiohttp and
    # prometheus_client (the helpers at the end are theirs too)
    from poolswitch.forwarder import Response, Upstream
    from poolswitch.metrics import Metrics

errlog = logging.getLogger("poolswitch.proxy")

BUFFER_LIMIT = 1024 * 1024
"""Bodies up to this size with a Content-Length are relayed in one piece; error bodies are read
whole up to it to be classified."""

RESPONSE_DROP = HOP_BY_HOP
FIRST_EVENT_LIMIT = 64 * 1024
"""A 2xx event stream's first event is held back (up to this much) to see if it is an error."""

BUFFERED_DROP = RESPONSE_DROP | {b"content-length"}
QUOTA_HEADERS = RULES.remaining_quota_headers
RECENT_OUTCOMES = 40
"""Each key's last attempt outcomes kept for the dashboard's chart (`Proxy.recent`)."""

STREAM_CUT: ContextVar[bool] = ContextVar("poolswitch_stream_cut", default=False)
"""Set in the request's task when the proxy ended a caller's stream abruptly on purpose (the
upstream died mid-way): the server's own "response not completed" error is then not logged,
the proxy has already logged the cut (see cli.py)."""

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class _Answer:
    """An upstream error answer read whole, kept to relay if no other key does better."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    key: int


class Exchange:
    """What the access log and metrics need to know about one request."""

    __slots__ = (
        "attempts",
        "caller",
        "cors",
        "incomplete",
        "key_id",
        "lane",
        "pool",
        "request_id",
        "started",
        "status",
        "trace",
        "using",
    )

    def __init__(self) -> None:
        self.status = 0
        self.key_id: str | None = None
        self.attempts = 0
        self.started = False
        self.caller = NO_CALLER
        self.pool = NO_CALLER  # the pool's name once routed ("-" before)
        self.lane: Proxy | None = None  # the pool's request loop once routed
        self.cors: bytes | None = None  # the allowed browser origin, if any
        self.incomplete = False  # the answer started but was cut (the upstream died mid-way)
        self.request_id = ""  # sane (requestid.py): the caller's or a fresh one
        self.trace: Trace | None = None  # the decision trace, when asked for (trace.py)
        self.using: KeyState | None = None  # the key of the attempt in progress

    def use(self, state: KeyState | None) -> None:
        """The attempt in progress is now on `state`'s key (None: none): its `in_flight`."""
        if self.using is not None:
            self.using.in_flight -= 1
        if state is not None:
            state.in_flight += 1
        self.using = state


class Proxy:
    """One pool's request loop. `forwarder` talks to the pool's upstream; `redactor` knows every
    key value of the gateway; `clock` (monotonic seconds, for deadlines) and `sleep` are
    injected so tests need no real time."""

    def __init__(
        self,
        config: PoolConfig,
        pool: Pool,
        forwarder: Upstream,
        metrics: Metrics,
        *,
        redactor: Redactor | None = None,
        max_request_body_bytes: int = 32 * 1024 * 1024,
        budget: BodyBudget | None = None,
        rng: random.Random | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ):
        self.config = config
        self.pool = pool
        self.forwarder = forwarder
        self.metrics = metrics
        self.in_flight = 0  # requests in handle(), counted by the gateway (for a reload)
        self.classifier = Classifier.from_config(config)
        self.rng = rng or random.Random()
        self.clock = clock
        self.sleep = sleep
        verify_path = config.verify_path
        if verify_path == "auto":
            verify_path = default_path(self.classifier.profile, config.upstream_base_url)
        self.verifier = Verifier(verify_path, clock)
        self._verify_headers = VERIFY_HEADERS.get(self.classifier.profile, ())
        self.query_param = config.auth_query_param
        # With auth_query_param the key travels in the query string, not in a header.
        self.auth_header = None if self.query_param else config.auth_header_name
        # the caller's x-request-id goes as the request's (sane) id; the trace ask is ours
        self._drop = dropped_headers(config.auth_header_name) | {REQUEST_ID, TRACE}
        self._key_ids = [key.id.encode("ascii") for key in pool.keys]
        self.redactor = redactor or Redactor((key.secret, key.id) for key in pool.keys)
        self._max_body = max_request_body_bytes
        self._budget = budget or BodyBudget(256 * 1024 * 1024)
        self._attempt_counters: list[dict[str, Any]] = [{} for _ in pool.keys]
        self.recent = [deque[str]((), RECENT_OUTCOMES) for _ in pool.keys]  # oldest first
        self._query_keys = [
            f"{self.query_param}={quote(key.secret, safe='')}" if self.query_param else ""
            for key in pool.keys
        ]

    async def handle(
        self, scope: Scope, raw_path: bytes, receive: Receive, send: Send, ex: Exchange
    ) -> None:
        """Serve a request already admitted to this pool; `raw_path` is the path to forward
        (the pool's route removed). Raises ProxyError for an answer the gateway makes."""
        target = request_target(scope, raw_path)
        if self.query_param:
            target = without_query_param(target, self.query_param)
        headers, declared = forward_headers(scope["headers"], self._drop)
        headers.append((REQUEST_ID_NAME, ex.request_id))
        body = await read_body(receive, declared, self._max_body, self._budget)
        try:
            guard = self.pool.guard
            if not guard.holds:
                await self._attempts(scope["method"], target, headers, body, receive, send, ex)
                return
            if not guard.admit():
                raise held(guard)
            try:
                await self._attempts(scope["method"], target, headers, body, receive, send, ex)
            finally:
                guard.probe_done()
        finally:
            if ex.using is not None:  # its attempt (a relayed stream too) is over
                ex.use(None)
            self._budget.give(len(body))

    async def _attempts(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes,
        receive: Receive,
        send: Send,
        ex: Exchange,
    ) -> None:
        """Select -> forward -> classify -> record, until an answer is relayed or the request
        runs out of attempts, keys or time; then answer with what was learned. What to do next
        is retry.py's to decide; this only carries it out."""
        pool, config, classifier, clock = self.pool, self.config, self.classifier, self.clock
        now = clock()
        deadline = now + config.request_timeout_seconds
        queue_deadline = min(now + config.queue_timeout_seconds, deadline)
        tried: set[int] = set()
        last_answer: _Answer | None = None
        last_failure: TransportError | None = None
        last_verdict: Verdict | None = None
        confirming: Confirming | None = None
        rounds = 0
        while True:
            if ex.using is not None:  # the last attempt is over
                ex.use(None)
            i = pool.select(tried)
            if i is None:
                step = when_no_key(
                    last=last_verdict,
                    answered=last_answer is not None,
                    tried=bool(tried),
                    attempts=ex.attempts,
                    retry_attempts=config.retry_attempts,
                    rounds=rounds,
                    now=clock(),
                    deadline=deadline,
                    queue_deadline=queue_deadline,
                    returns_in=pool.retry_after() if last_verdict is None else None,
                    jitter=self.rng.random(),
                )
                if ex.trace is not None and step.action in ("backoff", "queue"):
                    ex.trace.wait(step.delay)
                if step.action == "backoff":
                    rounds += 1
                    await self.sleep(step.delay)
                    tried.clear()
                    continue
                if step.action == "queue":  # a key returns then: serve with it
                    await self.sleep(step.delay)
                    continue
                break
            tried.add(i)
            ex.use(pool.states[i])
            ex.attempts += 1
            remaining = deadline - clock()
            if config.attempt_timeout_seconds is not None:
                remaining = min(remaining, config.attempt_timeout_seconds)
            sent_at = time.perf_counter()
            resp = None
            try:
                resp = await self.forwarder.send(
                    method,
                    self._target(target, i),
                    self._headers(headers, i),
                    body,
                    None if remaining >= config.request_timeout_seconds else max(remaining, 0.001),
                )
                self.metrics.upstream_duration.observe(time.perf_counter() - sent_at)
                if resp.status < 400:
                    if not is_event_stream(resp.headers):
                        if confirming is not None:
                            self._confirm_by_peer(confirming)
                        await self._relay(resp, i, ex, send, receive)
                        return
                    head = await _read_event_or_release(resp)
                    verdict = classifier.classify_stream_start(head, resp.headers, pool.clock())
                    if verdict is None:
                        if confirming is not None:
                            self._confirm_by_peer(confirming)
                        self._record_success(i, resp, ex)
                        await self._stream(resp, i, ex, send, receive, head)
                        return
                    complete = False  # an error as the first event of a stream
                else:
                    head, complete = await _read_or_release(resp)
                    verdict = classifier.classify(resp.status, resp.headers, head, pool.clock())
            except TransportError as exc:
                if resp is None:
                    self.metrics.upstream_duration.observe(time.perf_counter() - sent_at)
                last_failure, last_answer = exc, None
                last_verdict = TIMEOUT if isinstance(exc, ReadTimeout) else NETWORK_ERROR
                sent = not isinstance(exc, ConnectError)
                step = self._after_attempt(i, last_verdict, ex, method, sent, deadline, False)
                if step is TRY:
                    continue
                break
            if verdict.confirm:  # an invalid key, unless the request is at fault: find out
                if complete:
                    resp.release()  # the connection is not held while a verification runs
                if confirming is None:
                    confirming = Confirming()
                verdict = await self.verifier.confirm(
                    i,
                    verdict,
                    method=method,
                    path=target.partition("?")[0],
                    successes=pool.states[i].successes,
                    confirming=confirming,
                    run=functools.partial(self._verify, i, deadline),
                )
            last_verdict = verdict
            step = self._after_attempt(i, verdict, ex, method, True, deadline, True)
            again = step is TRY
            held = None
            if complete or again:  # decoded and redacted, sent with a Content-Length of its own
                coding = resp.headers.get("content-encoding")
                held = self.redactor.held_error(
                    upstream_headers(resp.raw_headers, BUFFERED_DROP, ex.request_id.encode()),
                    head,
                    coding,
                )
            if not again and (held is None or not held.fits):
                # too large to hold, or a stream: relayed as it comes, decoded and redacted
                await self._stream(resp, i, ex, send, receive, head, error=True)
                return
            resp.release()
            assert held is not None
            last_answer = _Answer(resp.status, held.headers, held.body, i)
            last_failure = None
            if step is not TRY:
                break

        if step is RELAY and last_answer is not None:
            await self._answer(last_answer, ex, send)
            return
        raise gave_up(step, ex.attempts, last_failure, pool)

    def _target(self, target: str, i: int) -> str:
        if not self.query_param:
            return target
        return target + ("&" if "?" in target else "?") + self._query_keys[i]

    def _headers(self, headers: list[tuple[str, str]], i: int) -> list[tuple[str, str]]:
        if self.auth_header is None:
            return headers
        return [*headers, (self.auth_header, self.pool.keys[i].auth_value)]

    def _after_attempt(
        self,
        i: int,
        verdict: Verdict,
        ex: Exchange,
        method: str,
        sent: bool,
        deadline: float,
        answered: bool,
    ) -> Step:
        """Record an unsuccessful attempt; the next step (TRY: another attempt)."""
        outcome = verdict.outcome.value
        self._count_attempt(i, outcome)
        if ex.trace is not None:
            ex.trace.attempt(self.pool.keys[i].id, outcome)
        config = self.config
        step = after_attempt(
            verdict,
            answered=answered,
            attempts=ex.attempts,
            retry_attempts=config.retry_attempts,
            method=method,
            sent=sent,
            retry_non_idempotent=config.retry_non_idempotent,
            now=self.clock(),
            deadline=deadline,
        )
        again = step is TRY
        self.pool.record(i, verdict, failover=again)
        if again:
            self.metrics.failovers.labels(self.pool.name, outcome).inc()
        return step

    def _count_attempt(self, i: int, outcome: str) -> None:
        """`poolswitch_upstream_attempts_total{pool, key_id, outcome}` += 1 (children cached)."""
        counters = self._attempt_counters[i]
        counter = counters.get(outcome)
        if counter is None:
            counter = counters[outcome] = self.metrics.upstream_attempts.labels(
                self.pool.name, self.pool.keys[i].id, outcome
            )
        counter.inc()
        self.recent[i].append(outcome)

    def _confirm_by_peer(self, confirming: Confirming) -> None:
        """Another key succeeded where one failed with an unconfirmed 401/403: that one is bad."""
        i = self.verifier.confirmed_by_peer(confirming)
        if i is not None:
            self.pool.confirmed_invalid(i, "confirmed: another key succeeded")

    async def _verify(self, i: int, deadline: float) -> str:
        """GET verify_path with key `i` (and no caller header): what it says of the key. The
        answer is never relayed; only the key's id is logged."""
        path = self.verifier.path
        assert path is not None
        timeout = max(min(VERIFY_TIMEOUT, deadline - self.clock()), 0.001)
        try:
            result = reading((await self.probe(i, path, timeout))[1].outcome)
        except (TransportError, asyncio.TimeoutError):
            result = UNKNOWN
        errlog.info("key %s verified with GET %s: %s", self.pool.keys[i].id, path, result)
        return result

    async def probe(self, i: int, path: str, timeout: float) -> tuple[int, Verdict]:
        """GET `path` with key `i` (put where every request puts it, with the provider's own
        headers and no caller header) within `timeout`: the status and its verdict. The answer
        is read (up to VERIFY_READ) and dropped. Raises TransportError or TimeoutError."""
        headers = list(self._verify_headers)
        if self.auth_header is not None:
            headers.append((self.auth_header, self.pool.keys[i].auth_value))

        async def exchange() -> tuple[int, Verdict]:
            resp = await self.forwarder.send("GET", self._target(path, i), headers, b"", timeout)
            try:
                head, _ = await resp.read(VERIFY_READ)
            finally:
                resp.release()
            clock = self.pool.clock
            return resp.status, self.classifier.classify(resp.status, resp.headers, head, clock())

        return await asyncio.wait_for(exchange(), timeout)

    async def _answer(self, answer: _Answer, ex: Exchange, send: Send) -> None:
        ex.key_id = self.pool.keys[answer.key].id
        headers = [
            *answer.headers,
            (b"content-length", str(len(answer.body)).encode()),
            (b"x-poolswitch-key-id", self._key_ids[answer.key]),
            (b"x-poolswitch-attempts", str(ex.attempts).encode()),
        ]
        if ex.trace is not None:
            headers.append(ex.trace.header())
        ex.status, ex.started = answer.status, True
        if self.pool.transitions_pending:  # this answer parked a key: durable before it goes
            await self.pool.commit_transitions()
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})

    async def _relay(
        self, resp: Response, i: int, ex: Exchange, send: Send, receive: Receive
    ) -> None:
        """Relay a successful answer. Raises TransportError only before anything was sent."""
        length = resp.content_length
        if length is not None and length <= BUFFER_LIMIT and not is_event_stream(resp.headers):
            content, _ = await _read_or_release(resp, length)
            resp.release()
            self._record_success(i, resp, ex)
            ex.status, ex.started = resp.status, True
            if self.pool.transitions_pending:  # a key parked on the way: durable first
                await self.pool.commit_transitions()
            await send(
                {
                    "type": "http.response.start",
                    "status": resp.status,
                    "headers": self._response_headers(resp, i, ex),
                }
            )
            await send({"type": "http.response.body", "body": content})
            return
        self._record_success(i, resp, ex)
        await self._stream(resp, i, ex, send, receive, b"")

    def _record_success(self, i: int, resp: Response, ex: Exchange) -> None:
        self._count_attempt(i, "success")
        if ex.trace is not None:
            ex.trace.attempt(self.pool.keys[i].id, "success")
        self.pool.record(i, SUCCESS, remaining_quota=remaining_quota(resp.headers))

    async def _stream(
        self,
        resp: Response,
        i: int,
        ex: Exchange,
        send: Send,
        receive: Receive,
        head: bytes,
        *,
        error: bool = False,
    ) -> None:
        """Relay the body piece by piece as it arrives; stop if the caller goes away. An
        `error` answer's body is decoded and redacted on the way (and goes chunked)."""
        headers = self._response_headers(resp, i, ex)
        chunks = resp.chunks()
        if error:
            coding = resp.headers.get("content-encoding")
            headers, chunks = self.redactor.error_stream(headers, head, chunks, coding)
            head = b""
        ex.status, ex.started = resp.status, True
        if self.pool.transitions_pending:  # a key parked on the way: durable first
            await self.pool.commit_transitions()
        await send({"type": "http.response.start", "status": resp.status, "headers": headers})
        gone = asyncio.ensure_future(_disconnected(receive))
        complete = False
        try:
            if head:
                await send({"type": "http.response.body", "body": head, "more_body": True})
            async for chunk in chunks:
                if gone.done():
                    return
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            complete = True
        except TransportError as exc:
            # Too late to fail over: end the caller's answer abruptly so it is not mistaken
            # for a complete one, and count the failure against the key.
            errlog.warning(
                "upstream failed mid-stream on key %s: %s; the caller's answer was cut short",
                self.pool.keys[i].id,
                exc,
            )
            ex.incomplete = True
            STREAM_CUT.set(True)  # logged here, once: not again as a server error
            self.pool.record(i, NETWORK_ERROR)
        finally:
            if not complete and gone.done():
                ex.status = 499
            gone.cancel()
            resp.release()

    def _response_headers(self, resp: Response, i: int, ex: Exchange) -> list[tuple[bytes, bytes]]:
        ex.key_id = self.pool.keys[i].id
        headers = self.redactor.redact_headers(
            upstream_headers(resp.raw_headers, RESPONSE_DROP, ex.request_id.encode())
        )
        headers.append((b"x-poolswitch-key-id", self._key_ids[i]))
        headers.append((b"x-poolswitch-attempts", str(ex.attempts).encode()))
        if ex.trace is not None:
            headers.append(ex.trace.header())
        return headers


async def _read_or_release(resp: Response, limit: int = BUFFER_LIMIT) -> tuple[bytes, bool]:
    try:
        return await resp.read(limit)
    except BaseException:  # a transport error, or the caller left (CancelledError)
        resp.release()
        raise


def upstream_headers(
    raw_headers: Iterable[tuple[bytes, bytes]],
    drop: frozenset[bytes],
    request_id: bytes | None = None,
) -> list[tuple[bytes, bytes]]:
    """The upstream's response headers, names lower-cased, minus those in `drop` and those
    that the upstream's own `Connection` header names (hop-by-hop, RFC 9110 7.6.1). With
    `request_id` (the proxy's answers) plus `x-poolswitch-request-id: <it>`, and
    `x-request-id: <it>` unless the upstream sent its own (relayed as it is: OpenAI's, say)."""
    out = []
    listed = None
    theirs = False
    for name, value in raw_headers:
        name = name.lower()
        if name in drop:
            if name == b"connection":
                listed = value if listed is None else listed + b"," + value
            continue
        if name == REQUEST_ID:
            theirs = True
        out.append((name, value))
    if listed is not None:
        named = {token.strip().lower() for token in listed.split(b",")}
        out = [(name, value) for name, value in out if name not in named]
        theirs = theirs and REQUEST_ID not in named
    if request_id is not None:
        out.append((OWN_REQUEST_ID, request_id))
        if not theirs:
            out.append((REQUEST_ID, request_id))
    return out


async def _read_event_or_release(resp: Response) -> bytes:
    try:
        return await resp.read_event(FIRST_EVENT_LIMIT)
    except BaseException:  # a transport error, or the caller left (CancelledError)
        resp.release()
        raise


def held(guard: OutageGuard) -> UpstreamUnavailable:
    """The answer to a request the outage guard holds."""
    return UpstreamUnavailable(
        "the upstream is failing for most keys; requests are held while a probe "
        "checks for its recovery",
        retry_after=guard.retry_after(),
    )


def gave_up(
    step: Step, attempts: int, last_failure: TransportError | None, pool: Pool
) -> ProxyError:
    """The proxy's own answer when a request stops with no upstream answer to relay: `step`
    is TIMED_OUT, UNREACHABLE or NO_KEYS (retry.py)."""
    if step is TIMED_OUT:
        return UpstreamTimeout(f"the upstream did not answer in time ({attempts} attempt(s))")
    if step is UNREACHABLE:
        return UpstreamUnreachable(
            f"the upstream could not be reached ({attempts} attempt(s)): {last_failure}"
        )
    wait = pool.retry_after()
    return NoAvailableKeys(
        "every key is cooling down or disabled"
        + (f"; the first returns in {wait:.1f}s" if wait is not None else ""),
        retry_after=None if wait is None else max(1, math.ceil(wait)),
    )


def is_event_stream(headers: Mapping[str, str]) -> bool:
    return headers.get("content-type", "").startswith("text/event-stream")


def remaining_quota(headers: Mapping[str, str]) -> int | None:
    """What a successful answer says is left of the key's quota (`estimated_remaining_quota`)."""
    for name in QUOTA_HEADERS:
        value = headers.get(name)
        if value is not None and value.isdigit():
            return int(value)
    return None


async def _disconnected(receive: Receive) -> None:
    """Returns when the caller disconnects."""
    with contextlib.suppress(Exception):
        while (await receive())["type"] != "http.disconnect":
            pass
