"""The request loop: select a key -> forward -> classify -> record -> fail over or answer.

A raw ASGI callable (no framework on the hot path). The request body is read once, bounded by
`max_request_body_bytes`, so it can be sent again to another key. Failover is possible until the
first byte of an answer reaches the caller; after that the upstream's body is relayed as it
arrives and nothing is retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import random
import time
from dataclasses import dataclass
from urllib.parse import quote

from poolswitch.classifier import NETWORK_ERROR, SUCCESS, TIMEOUT, Classifier, Verdict
from poolswitch.config import Config
from poolswitch.errors import (
    ClientGone,
    ConnectError,
    NoAvailableKeys,
    ProxyError,
    ReadTimeout,
    TransportError,
    UpstreamTimeout,
    UpstreamUnavailable,
    UpstreamUnreachable,
)
from poolswitch.forwarder import Forwarder, UpstreamResponse
from poolswitch.hints import retry_headers
from poolswitch.metrics import Metrics, method_label, status_class
from poolswitch.pool import Pool
from poolswitch.request import (
    HOP_BY_HOP,
    Receive,
    Scope,
    Send,
    forward_headers,
    read_body,
    request_target,
    without_query_param,
)
from poolswitch.retry import backoff, may_retry, may_reuse

log = logging.getLogger("poolswitch.access")
errlog = logging.getLogger("poolswitch.proxy")

BUFFER_LIMIT = 1024 * 1024
"""Bodies up to this size with a Content-Length are relayed in one piece; error bodies are read
whole up to it to be classified."""

_RESPONSE_DROP = HOP_BY_HOP
FIRST_EVENT_LIMIT = 64 * 1024
"""A 2xx event stream's first event is held back (up to this much) to see if it is an error."""

_BUFFERED_DROP = _RESPONSE_DROP | {b"content-length"}
_QUOTA_HEADERS = ("x-ratelimit-remaining-requests", "anthropic-ratelimit-requests-remaining")


@dataclass(frozen=True, slots=True)
class _Answer:
    """An upstream error answer read whole, kept to relay if no other key does better."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    key: int


class _Exchange:
    """What the access log and metrics need to know about one request."""

    __slots__ = ("attempts", "key_id", "started", "status")

    def __init__(self) -> None:
        self.status = 0
        self.key_id: str | None = None
        self.attempts = 0
        self.started = False


class Proxy:
    def __init__(
        self,
        config: Config,
        pool: Pool,
        forwarder: Forwarder,
        metrics: Metrics,
        *,
        rng: random.Random | None = None,
    ):
        self.config = config
        self.pool = pool
        self.forwarder = forwarder
        self.metrics = metrics
        self.classifier = Classifier.from_config(config)
        self.rng = rng or random.Random()
        self.query_param = config.auth_query_param
        # With auth_query_param the key travels in the query string, not in a header.
        self.auth_header = None if self.query_param else config.auth_header_name
        self._caller_auth = config.auth_header_name.lower().encode("latin-1")
        self._key_ids = [key.id.encode("ascii") for key in pool.keys]
        self._secrets = [(key.secret.encode(), key.id.encode()) for key in pool.keys]
        self._query_keys = [
            f"{self.query_param}={quote(key.secret, safe='')}" if self.query_param else ""
            for key in pool.keys
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        ex = _Exchange()
        try:
            await self._serve(scope, receive, send, ex)
        except ClientGone:
            ex.status = 499
        except ProxyError as err:
            if not ex.started:
                await self._answer_error(send, err, ex)
        except Exception:
            errlog.exception("internal error while proxying %s %s", scope["method"], scope["path"])
            if not ex.started:
                await self._answer_error(send, ProxyError("internal proxy error"), ex)
        finally:
            elapsed = time.perf_counter() - started
            self.metrics.requests.labels(
                method_label(scope["method"]), status_class(ex.status)
            ).inc()
            self.metrics.request_duration.observe(elapsed)
            if log.isEnabledFor(logging.INFO):
                log.info(
                    "%s %s %d key=%s attempts=%d %.1fms",
                    scope["method"],
                    scope["path"],
                    ex.status,
                    ex.key_id or "-",
                    ex.attempts,
                    elapsed * 1000.0,
                )

    async def _serve(self, scope: Scope, receive: Receive, send: Send, ex: _Exchange) -> None:
        target = request_target(scope)
        if self.query_param:
            target = without_query_param(target, self.query_param)
        headers, declared = forward_headers(scope["headers"], self._caller_auth)
        body = await read_body(receive, declared, self.config.max_request_body_bytes)
        guard = self.pool.guard
        if not guard.holds:
            await self._attempts(scope["method"], target, headers, body, receive, send, ex)
            return
        if not guard.admit():
            raise UpstreamUnavailable(
                "the upstream is failing for most keys; requests are held while a probe "
                "checks for its recovery",
                retry_after=guard.retry_after(),
            )
        try:
            await self._attempts(scope["method"], target, headers, body, receive, send, ex)
        finally:
            guard.probe_done()

    async def _attempts(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes,
        receive: Receive,
        send: Send,
        ex: _Exchange,
    ) -> None:
        """Select -> forward -> classify -> record, until an answer is relayed or the request
        runs out of attempts, keys or time; then answer with what was learned."""
        pool, config, classifier = self.pool, self.config, self.classifier
        now = time.monotonic()
        deadline = now + config.request_timeout_seconds
        queue_deadline = min(now + config.queue_timeout_seconds, deadline)
        tried: set[int] = set()
        last_answer: _Answer | None = None
        last_failure: TransportError | None = None
        last_verdict: Verdict | None = None
        rounds = 0
        while True:
            i = pool.select(tried)
            if i is None:
                now = time.monotonic()
                if (
                    tried
                    and last_verdict is not None
                    and may_reuse(last_verdict)
                    and ex.attempts < config.retry_attempts
                ):
                    delay = backoff(rounds, self.rng)
                    rounds += 1
                    if now + delay >= deadline:
                        break
                    await asyncio.sleep(delay)
                    tried.clear()
                    continue
                wait = pool.retry_after()
                if (
                    last_answer is None
                    and last_failure is None
                    and wait is not None
                    and now + wait < queue_deadline
                ):
                    await asyncio.sleep(wait + 0.005)  # a key returns then: serve with it
                    continue
                break
            tried.add(i)
            ex.attempts += 1
            remaining = deadline - time.monotonic()
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
                    if not _is_event_stream(resp):
                        await self._relay(resp, i, ex, send, receive)
                        return
                    head = await _read_event_or_release(resp)
                    verdict = classifier.classify_stream_start(head, resp.headers, pool.clock())
                    if verdict is None:
                        self._record_success(i, resp)
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
                if self._after_attempt(i, last_verdict, ex, method, sent, deadline):
                    continue
                break
            last_verdict = verdict
            again = self._after_attempt(i, verdict, ex, method, True, deadline)
            if not complete and not again:  # too large to hold, or a stream: relay as it comes
                if resp.content_length is None:
                    head = self._redact(head, resp)
                await self._stream(resp, i, ex, send, receive, head)
                return
            resp.release()
            # held whole, maybe redacted: sent with a Content-Length of its own
            last_answer = _Answer(
                resp.status, upstream_headers(resp, _BUFFERED_DROP), self._redact(head, resp), i
            )
            last_failure = None
            if not again:
                break

        if last_answer is not None:
            await self._answer(last_answer, ex, send)
            return
        if last_failure is not None:
            if isinstance(last_failure, ReadTimeout):
                raise UpstreamTimeout(
                    f"the upstream did not answer in time ({ex.attempts} attempt(s))"
                )
            raise UpstreamUnreachable(
                f"the upstream could not be reached ({ex.attempts} attempt(s)): {last_failure}"
            )
        wait = pool.retry_after()
        raise NoAvailableKeys(
            "every key is cooling down or disabled"
            + (f"; the first returns in {wait:.1f}s" if wait is not None else ""),
            retry_after=None if wait is None else max(1, math.ceil(wait)),
        )

    def _target(self, target: str, i: int) -> str:
        if not self.query_param:
            return target
        return target + ("&" if "?" in target else "?") + self._query_keys[i]

    def _headers(self, headers: list[tuple[str, str]], i: int) -> list[tuple[str, str]]:
        if self.auth_header is None:
            return headers
        return [*headers, (self.auth_header, self.pool.keys[i].auth_value)]

    def _after_attempt(
        self, i: int, verdict: Verdict, ex: _Exchange, method: str, sent: bool, deadline: float
    ) -> bool:
        """Record an unsuccessful attempt; True when the request should be tried again."""
        outcome = verdict.outcome.value
        self.metrics.upstream_attempts.labels(self.pool.keys[i].id, outcome).inc()
        again = (
            may_retry(
                verdict,
                ex.attempts,
                self.config.retry_attempts,
                method=method,
                sent=sent,
                retry_non_idempotent=self.config.retry_non_idempotent,
            )
            and time.monotonic() < deadline
        )
        self.pool.record(i, verdict, failover=again)
        if again:
            self.metrics.failovers.labels(outcome).inc()
        return again

    async def _answer(self, answer: _Answer, ex: _Exchange, send: Send) -> None:
        ex.key_id = self.pool.keys[answer.key].id
        headers = [
            *answer.headers,
            (b"content-length", str(len(answer.body)).encode()),
            (b"x-poolswitch-key-id", self._key_ids[answer.key]),
            (b"x-poolswitch-attempts", str(ex.attempts).encode()),
        ]
        ex.status, ex.started = answer.status, True
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})

    def _redact(self, body: bytes, resp: UpstreamResponse) -> bytes:
        """Replace any configured key value in an error body by its key id."""
        if "content-encoding" in resp.headers:
            return body  # compressed: nothing readable to redact
        for secret, key_id in self._secrets:
            if secret in body:
                body = body.replace(secret, key_id)
        return body

    async def _relay(
        self, resp: UpstreamResponse, i: int, ex: _Exchange, send: Send, receive: Receive
    ) -> None:
        """Relay a successful answer. Raises TransportError only before anything was sent."""
        length = resp.content_length
        if length is not None and length <= BUFFER_LIMIT and not _is_event_stream(resp):
            content, _ = await _read_or_release(resp, length)
            resp.release()
            self._record_success(i, resp)
            ex.status, ex.started = resp.status, True
            await send(
                {
                    "type": "http.response.start",
                    "status": resp.status,
                    "headers": self._response_headers(resp, i, ex),
                }
            )
            await send({"type": "http.response.body", "body": content})
            return
        self._record_success(i, resp)
        await self._stream(resp, i, ex, send, receive, b"")

    def _record_success(self, i: int, resp: UpstreamResponse) -> None:
        remaining = None
        for name in _QUOTA_HEADERS:
            value = resp.headers.get(name)
            if value is not None and value.isdigit():
                remaining = int(value)
                break
        self.metrics.upstream_attempts.labels(self.pool.keys[i].id, "success").inc()
        self.pool.record(i, SUCCESS, remaining_quota=remaining)

    async def _stream(
        self,
        resp: UpstreamResponse,
        i: int,
        ex: _Exchange,
        send: Send,
        receive: Receive,
        head: bytes,
    ) -> None:
        """Relay the body piece by piece as it arrives; stop if the caller goes away."""
        ex.status, ex.started = resp.status, True
        await send(
            {
                "type": "http.response.start",
                "status": resp.status,
                "headers": self._response_headers(resp, i, ex),
            }
        )
        gone = asyncio.ensure_future(_disconnected(receive))
        complete = False
        try:
            if head:
                await send({"type": "http.response.body", "body": head, "more_body": True})
            async for chunk in resp.chunks():
                if gone.done():
                    return
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            complete = True
        except TransportError as exc:
            # Too late to fail over: end the caller's answer abruptly so it is not mistaken
            # for a complete one, and count the failure against the key.
            errlog.warning("upstream failed mid-stream on key %s: %s", self.pool.keys[i].id, exc)
            self.pool.record(i, NETWORK_ERROR)
        finally:
            if not complete and gone.done():
                ex.status = 499
            gone.cancel()
            resp.release()

    def _response_headers(
        self, resp: UpstreamResponse, i: int, ex: _Exchange
    ) -> list[tuple[bytes, bytes]]:
        ex.key_id = self.pool.keys[i].id
        headers = upstream_headers(resp, _RESPONSE_DROP)
        headers.append((b"x-poolswitch-key-id", self._key_ids[i]))
        headers.append((b"x-poolswitch-attempts", str(ex.attempts).encode()))
        return headers

    async def _answer_error(self, send: Send, err: ProxyError, ex: _Exchange) -> None:
        status, headers, body = error_response(err)
        if ex.attempts:
            headers.append((b"x-poolswitch-attempts", str(ex.attempts).encode()))
        self.metrics.proxy_errors.labels(err.code).inc()
        ex.status, ex.started = status, True
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def error_response(err: ProxyError) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """The wire contract's envelope for an answer the proxy makes itself, with its retry hint
    (hints.py): the body's `retry_after` is the real wait, the headers only what a client should
    act on."""
    body = json.dumps(
        {
            "error": {
                "type": "poolswitch_error",
                "code": err.code,
                "message": err.message,
                "retry_after": err.retry_after,
            }
        }
    ).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-poolswitch-error", err.code.encode()),
    ]
    headers.extend(retry_headers(err.code, err.retry_after))
    return err.status, headers, body


async def _read_or_release(resp: UpstreamResponse, limit: int = BUFFER_LIMIT) -> tuple[bytes, bool]:
    try:
        return await resp.read(limit)
    except TransportError:
        resp.release()
        raise


def upstream_headers(resp: UpstreamResponse, drop: frozenset[bytes]) -> list[tuple[bytes, bytes]]:
    """The upstream's response headers, names lower-cased, minus those in `drop`."""
    lowered = ((name.lower(), value) for name, value in resp.raw_headers)
    return [(name, value) for name, value in lowered if name not in drop]


async def _read_event_or_release(resp: UpstreamResponse) -> bytes:
    try:
        return await resp.read_event(FIRST_EVENT_LIMIT)
    except TransportError:
        resp.release()
        raise


def _is_event_stream(resp: UpstreamResponse) -> bool:
    return resp.headers.get("content-type", "").startswith("text/event-stream")


async def _disconnected(receive: Receive) -> None:
    """Returns when the caller disconnects."""
    with contextlib.suppress(Exception):
        while (await receive())["type"] != "http.disconnect":
            pass
