"""One pool's request loop inside the app: proxy.py's `_attempts`, over httpx.

select -> send with the key put where the pool puts it (the caller's own credential headers
dropped, as request.py drops them) -> classify -> record -> `after_attempt` / `when_no_key`
(retry.py) with their backoff and queue sleeps -> answer. Everything that decides is the server's
own code: the pool and its strategies, the classifier, the retry plan, the confirmation of
invalid keys (verify.py), the redactor, the envelope and its hints. The loop is a generator of
effects (`_effects.py`), carried out by the sync or the async client.

Bodies go to the classifier and the redactor as the proxy gives them: the raw bytes as the
upstream encoded them, with the upstream's headers (Content-Encoding included), so the server's
bounded decoder reads them. A successful body is left to httpx, which decodes it as the caller
reads it, as it would the proxy's relay of it.

Key state is changed only under `lock` (the sync client is used from many threads; the
async one takes the same lock, never across an effect).
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import AsyncIterator, Callable, Generator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from poolswitch.classifier import NETWORK_ERROR, SUCCESS, TIMEOUT, Classifier, Verdict
from poolswitch.config import PoolConfig
from poolswitch.embedded._answers import drain, in_memory, pool_error, relayed, upstream_error
from poolswitch.embedded._effects import Close, Effect, Next, Reader, Send, Sleep, Verify
from poolswitch.embedded._streams import AsyncBody, SyncBody, async_rest, sync_rest
from poolswitch.errors import ConnectError, ReadTimeout, TransportError
from poolswitch.pool import Pool
from poolswitch.proxy import (
    BUFFER_LIMIT,
    BUFFERED_DROP,
    FIRST_EVENT_LIMIT,
    RESPONSE_DROP,
    gave_up,
    held,
    is_event_stream,
    remaining_quota,
    upstream_headers,
)
from poolswitch.redact import Redactor
from poolswitch.retry import RELAY, TRY, Step, after_attempt, when_no_key
from poolswitch.storage import MemoryStore
from poolswitch.verify import (
    UNKNOWN,
    VERIFY_HEADERS,
    VERIFY_READ,
    VERIFY_TIMEOUT,
    Confirming,
    Judgement,
    Verifier,
    default_path,
    reading,
)
from poolswitch_client import ProxyConnectionError

log = logging.getLogger("poolswitch.embedded")

Gen = Generator[Effect, Any, Any]


@dataclass(slots=True)
class Call:
    """One request, ready to send to any key: `target` is the path and query to append to the
    base URL (any `auth_query_param` of the caller's removed); `request` the caller's own, with
    no key in it, which the answer carries."""

    method: str
    target: str
    headers: list[tuple[bytes, bytes]]
    body: bytes
    request: httpx.Request
    deadline: float
    """Monotonic seconds: the whole call, retries included."""


@dataclass(frozen=True, slots=True)
class Result:
    """A relayed 2xx answer; `upstream`: the upstream's answer its body still comes from."""

    response: httpx.Response
    upstream: httpx.Response | None


@dataclass(frozen=True, slots=True)
class _Answer:
    """An upstream error answer read whole (decoded, redacted), kept to relay if no other key
    does better."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    key: int


class Lane:
    """One pool and its request loop. `clock`: Unix seconds (cooldowns, `/status`);
    `monotonic`: deadlines and the verifier's memory; `sync`: bodies still arriving are read
    by a sync client (else an async one)."""

    def __init__(
        self,
        config: PoolConfig,
        *,
        clock: Callable[[], float],
        monotonic: Callable[[], float],
        rng: random.Random,
        sync: bool,
    ) -> None:
        self.config = config
        self.lock = threading.Lock()
        self.store = MemoryStore()
        self.pool = Pool(config, self.store, clock=clock, rng=rng)
        self.classifier = Classifier.from_config(config)
        self.monotonic = monotonic
        self.rng = rng
        self.sync = sync
        verify_path = config.verify_path
        if verify_path == "auto":
            verify_path = default_path(self.classifier.profile, config.upstream_base_url)
        self.verifier = Verifier(verify_path, monotonic)
        self._verify_headers = [
            (n.encode("latin-1"), v.encode())
            for n, v in VERIFY_HEADERS.get(self.classifier.profile, ())
        ]
        self.query_param = config.auth_query_param
        # With auth_query_param the key travels in the query string, not in a header.
        auth_header = None if self.query_param else config.auth_header_name
        self._auth_header = None if auth_header is None else auth_header.encode("latin-1")
        self._auth_values = [key.auth_value.encode() for key in self.pool.keys]
        self._key_ids = [key.id.encode("ascii") for key in self.pool.keys]
        self.redactor = Redactor((key.secret, key.id) for key in self.pool.keys)
        self._query_keys = [
            f"{self.query_param}={quote(key.secret, safe='')}" if self.query_param else ""
            for key in self.pool.keys
        ]
        self.base_url = config.upstream_base_url.rstrip("/")

    def __repr__(self) -> str:
        return f"Lane({self.config.name!r}, keys={list(self.pool.key_ids)!r})"

    # -- the loop --------------------------------------------------------------------------

    def run(self, call: Call) -> Gen:
        """The answer to `call` (a `Result`), or the proxy client's error for it."""
        guard = self.pool.guard
        with self.lock:
            holds = guard.holds
            refused = held(guard) if holds and not guard.admit() else None
        if refused is not None:
            raise pool_error(refused, 0, call.request)
        try:
            return (yield from self._attempts(call))
        finally:
            if holds:
                with self.lock:
                    guard.probe_done()

    def _attempts(self, call: Call) -> Gen:
        pool, config, classifier, lock = self.pool, self.config, self.classifier, self.lock
        method, deadline = call.method, call.deadline
        now = self.monotonic()
        queue_deadline = min(now + config.queue_timeout_seconds, deadline)
        tried: set[int] = set()
        last_answer: _Answer | None = None
        last_failure: TransportError | None = None
        last_verdict: Verdict | None = None
        confirming: Confirming | None = None
        rounds = attempts = 0
        while True:
            with lock:
                i = pool.select(tried)
                returns_in = pool.retry_after() if i is None and last_verdict is None else None
            if i is None:
                step = when_no_key(
                    last=last_verdict,
                    answered=last_answer is not None,
                    tried=bool(tried),
                    attempts=attempts,
                    retry_attempts=config.retry_attempts,
                    rounds=rounds,
                    now=self.monotonic(),
                    deadline=deadline,
                    queue_deadline=queue_deadline,
                    returns_in=returns_in,
                    jitter=self.rng.random(),
                )
                if step.action == "backoff":
                    rounds += 1
                    yield Sleep(step.delay)
                    tried.clear()
                    continue
                if step.action == "queue":  # a key returns then: serve with it
                    yield Sleep(step.delay)
                    continue
                break
            tried.add(i)
            attempts += 1
            remaining = deadline - self.monotonic()
            if config.attempt_timeout_seconds is not None:
                remaining = min(remaining, config.attempt_timeout_seconds)
            timeout = (
                config.request_timeout_seconds
                if remaining >= config.request_timeout_seconds
                else max(remaining, 0.001)
            )
            resp: httpx.Response | None = None
            reader: Reader | None = None
            try:
                reader = yield Send(
                    self._upstream(method, self._target(call.target, i), call, i, timeout)
                )
                resp = reader.response
                if resp.status_code < 400:
                    if not is_event_stream(resp.headers):
                        if confirming is not None:
                            self._confirm_by_peer(confirming)
                        return (yield from self._relay(call, reader, i, attempts))
                    head = yield from read_event(reader, FIRST_EVENT_LIMIT)
                    verdict = classifier.classify_stream_start(head, resp.headers, pool.clock())
                    if verdict is None:
                        if confirming is not None:
                            self._confirm_by_peer(confirming)
                        self._record_success(i, resp)
                        return self._streaming(call, reader, head, i, attempts)
                    complete = False  # an error as the first event of a stream
                else:
                    head, complete = yield from read(reader, BUFFER_LIMIT)
                    verdict = classifier.classify(
                        resp.status_code, resp.headers, head, pool.clock()
                    )
            except TransportError as exc:
                if reader is not None:
                    yield Close(reader)
                last_failure, last_answer = exc, None
                last_verdict = TIMEOUT if isinstance(exc, ReadTimeout) else NETWORK_ERROR
                sent = not isinstance(exc, ConnectError)
                step = self._after_attempt(i, last_verdict, attempts, method, sent, deadline, False)
                if step is TRY:
                    continue
                break
            if verdict.confirm:  # an invalid key, unless the request is at fault: find out
                if complete:
                    yield Close(reader)  # the connection is not held while a verification runs
                if confirming is None:
                    confirming = Confirming()
                verdict = yield from self._confirm(i, verdict, call, confirming)
            last_verdict = verdict
            step = self._after_attempt(i, verdict, attempts, method, True, deadline, True)
            again = step is TRY
            kept = None
            if complete or again:  # decoded and redacted, with a Content-Length of its own
                coding = resp.headers.get("content-encoding")
                kept = self.redactor.held_error(
                    upstream_headers(resp.headers.raw, BUFFERED_DROP), head, coding
                )
            if not again and (kept is None or not kept.fits):
                # too large to hold, or a stream: relayed decoded and redacted
                if resp.status_code < 400:  # a 2xx stream whose first event was an error
                    return self._error_relay(call, reader, head, i, attempts)
                raise (yield from self._error_body(call, reader, head, i, attempts))
            yield Close(reader)
            assert kept is not None
            last_answer = _Answer(resp.status_code, kept.headers, kept.body, i)
            last_failure = None
            if step is not TRY:
                break

        if step is RELAY and last_answer is not None:
            raise self._answer(last_answer, attempts, call)
        with lock:
            error = gave_up(step, attempts, last_failure, pool)
        raise pool_error(error, attempts, call.request)

    # -- one attempt -----------------------------------------------------------------------

    def _target(self, target: str, i: int) -> str:
        if not self.query_param:
            return target
        return target + ("&" if "?" in target else "?") + self._query_keys[i]

    def _upstream(
        self, method: str, target: str, call: Call | None, i: int, timeout: float
    ) -> httpx.Request:
        """The request to the upstream with key `i` (`call`: the caller's headers and body;
        None: a verification, with no caller header)."""
        headers = list(call.headers) if call is not None else list(self._verify_headers)
        if self._auth_header is not None:
            headers.append((self._auth_header, self._auth_values[i]))
        body = call.body if call is not None else b""
        # as the proxy's forwarder: no body at all for a bodiless GET or HEAD
        content = body if body or method not in ("GET", "HEAD") else None
        request = httpx.Request(method, self.base_url + target, headers=headers, content=content)
        request.extensions["timeout"] = {
            "connect": self.config.connect_timeout_seconds,
            "read": timeout,
            "write": timeout,
            "pool": timeout,
        }
        return request

    def _after_attempt(
        self,
        i: int,
        verdict: Verdict,
        attempts: int,
        method: str,
        sent: bool,
        deadline: float,
        answered: bool,
    ) -> Step:
        """Record an unsuccessful attempt; the next step (TRY: another attempt)."""
        config = self.config
        step = after_attempt(
            verdict,
            answered=answered,
            attempts=attempts,
            retry_attempts=config.retry_attempts,
            method=method,
            sent=sent,
            retry_non_idempotent=config.retry_non_idempotent,
            now=self.monotonic(),
            deadline=deadline,
        )
        with self.lock:
            self.pool.record(i, verdict, failover=step is TRY)
        return step

    def _record_success(self, i: int, resp: httpx.Response) -> None:
        with self.lock:
            self.pool.record(i, SUCCESS, remaining_quota=remaining_quota(resp.headers))

    def _record_cut(self, i: int) -> None:
        """The upstream failed mid-answer, too late to fail over: counted against the key."""
        log.warning(
            "upstream failed mid-stream on key %s; the caller's answer was cut short",
            self.pool.keys[i].id,
        )
        with self.lock:
            self.pool.record(i, NETWORK_ERROR)

    def _response_headers(
        self, resp: httpx.Response, i: int, attempts: int
    ) -> list[tuple[bytes, bytes]]:
        headers = self.redactor.redact_headers(upstream_headers(resp.headers.raw, RESPONSE_DROP))
        headers.append((b"x-poolswitch-key-id", self._key_ids[i]))
        headers.append((b"x-poolswitch-attempts", str(attempts).encode()))
        return headers

    # -- answers ---------------------------------------------------------------------------

    def _relay(self, call: Call, reader: Reader, i: int, attempts: int) -> Gen:
        """A successful answer: read here when it is small and has a length (a failure then is
        still the attempt's, and fails over), else relayed as it arrives."""
        resp = reader.response
        length = _content_length(resp)
        if length is not None and length <= BUFFER_LIMIT:
            content, _ = yield from read(reader, length)
            yield Close(reader)
            self._record_success(i, resp)
            body = httpx.ByteStream(content)
            return Result(
                relayed(
                    resp.status_code, self._response_headers(resp, i, attempts), body, call.request
                ),
                None,
            )
        self._record_success(i, resp)
        return self._streaming(call, reader, b"", i, attempts)

    def _streaming(self, call: Call, reader: Reader, head: bytes, i: int, attempts: int) -> Result:
        resp = reader.response
        body = self._body(self._rest(head, reader), reader, i)
        headers = self._response_headers(resp, i, attempts)
        return Result(relayed(resp.status_code, headers, body, call.request), resp)

    def _rest(self, head: bytes, reader: Reader) -> AsyncIterator[bytes]:
        return sync_rest(head, reader) if self.sync else async_rest(head, reader)

    def _body(
        self, pieces: AsyncIterator[bytes], reader: Reader, i: int
    ) -> httpx.SyncByteStream | httpx.AsyncByteStream:
        kind = SyncBody if self.sync else AsyncBody
        return kind(pieces, reader, lambda: self._record_cut(i))

    def _error_relay(
        self, call: Call, reader: Reader, head: bytes, i: int, attempts: int
    ) -> Result:
        """A 2xx event stream whose first event is an error, from the last key tried: relayed
        as it arrives, decoded and redacted (redact.py's error_stream, as the proxy)."""
        resp = reader.response
        coding = resp.headers.get("content-encoding")
        headers, pieces = self.redactor.error_stream(
            self._response_headers(resp, i, attempts), head, self._rest(b"", reader), coding
        )
        body = self._body(pieces, reader, i)
        return Result(relayed(resp.status_code, headers, body, call.request), resp)

    def _answer(self, answer: _Answer, attempts: int, call: Call) -> Exception:
        headers = [
            *answer.headers,
            (b"content-length", str(len(answer.body)).encode()),
            (b"x-poolswitch-key-id", self._key_ids[answer.key]),
            (b"x-poolswitch-attempts", str(attempts).encode()),
        ]
        return upstream_error(answer.status, headers, answer.body, call.request)

    def _error_body(self, call: Call, reader: Reader, head: bytes, i: int, attempts: int) -> Gen:
        """The last answer, an error too large to hold (or without a length): the proxy relays
        it decoded and redacted piece by piece; here it is read whole (as the proxy client
        reads an error) and goes through the same decoding and redaction (redact.py)."""
        resp = reader.response
        headers = self._response_headers(resp, i, attempts)
        try:
            rest = yield from read_all(reader)
        except TransportError:
            yield Close(reader)
            self._record_cut(i)
            return _cut()
        yield Close(reader)
        coding = resp.headers.get("content-encoding")
        headers, pieces = self.redactor.error_stream(headers, head, in_memory(rest), coding)
        try:
            body = drain(pieces)
        except TransportError:  # corrupt in its coding: the proxy cuts the answer there
            return _cut()
        return upstream_error(resp.status_code, headers, body, call.request)

    # -- confirming an invalid key (verify.py) -----------------------------------------------

    def _confirm(self, i: int, verdict: Verdict, call: Call, confirming: Confirming) -> Gen:
        verifier = self.verifier
        method, path = call.method, call.target.partition("?")[0]
        with self.lock:
            successes = self.pool.states[i].successes
            known = verifier.known(i)
            decision = verifier.decide(i, known, method, path, successes, confirming)
        if decision is Judgement.VERIFY:
            known = yield Verify(i, self._verify(i, call.deadline))
            with self.lock:
                decision = verifier.decide(i, known, method, path, successes, confirming)
        with self.lock:
            return verifier.settle(i, verdict, decision, known, method, path, successes, confirming)

    def _confirm_by_peer(self, confirming: Confirming) -> None:
        """Another key succeeded where one failed with an unconfirmed 401/403: that one is bad."""
        with self.lock:
            i = self.verifier.confirmed_by_peer(confirming)
            if i is not None:
                self.pool.confirmed_invalid(i, "confirmed: another key succeeded")

    def _verify(self, i: int, deadline: float) -> Gen:
        """GET verify_path with key `i` (and no caller header): what it says of the key. The
        answer is never relayed; only the key's id is logged."""
        path = self.verifier.path
        assert path is not None
        timeout = max(min(VERIFY_TIMEOUT, deadline - self.monotonic()), 0.001)
        ends = self.monotonic() + timeout
        result = UNKNOWN
        reader = None
        try:
            reader = yield Send(self._upstream("GET", self._target(path, i), None, i, timeout))
            resp = reader.response
            head, _ = yield from read(reader, VERIFY_READ)
            if self.monotonic() <= ends:
                verdict = self.classifier.classify(
                    resp.status_code, resp.headers, head, self.pool.clock()
                )
                result = reading(verdict.outcome)
        except TransportError:
            result = UNKNOWN
        if reader is not None:
            yield Close(reader)
        log.info("key %s verified with GET %s: %s", self.pool.keys[i].id, path, result)
        return result


# -- reading a body ------------------------------------------------------------------------


def read(reader: Reader, limit: int) -> Generator[Effect, Any, tuple[bytes, bool]]:
    """Up to `limit` raw bytes of the body, and whether that was all of it."""
    data = bytearray(reader.buffer)
    reader.buffer = b""
    while len(data) < limit and not reader.eof:
        piece = yield Next(reader)
        if piece is None:
            reader.eof = True
            break
        reader.received += len(piece)
        data += piece
    if len(data) > limit:
        reader.buffer = bytes(data[limit:])
        del data[limit:]
    length = _content_length(reader.response)
    if not reader.eof and not reader.buffer and length is not None and reader.received >= length:
        # all of it came: see its end, so the connection goes back to the pool for reuse
        piece = yield Next(reader)
        if piece is None:
            reader.eof = True
        else:
            reader.received += len(piece)
            reader.buffer = piece
    complete = not reader.buffer and reader.eof
    return bytes(data), complete


def read_event(reader: Reader, limit: int) -> Generator[Effect, Any, bytes]:
    """Read until the first server-sent event is complete (a blank line), the body ends or
    `limit` bytes have come; all that was read (as the proxy's forwarder does)."""
    data = bytearray(reader.buffer)
    reader.buffer = b""
    while len(data) < limit and not reader.eof:
        if b"\n\n" in data or b"\r\n\r\n" in data:
            break
        piece = yield Next(reader)
        if piece is None:
            reader.eof = True
            break
        reader.received += len(piece)
        data += piece
    return bytes(data)


def read_all(reader: Reader) -> Generator[Effect, Any, list[bytes]]:
    """The rest of the body, in the pieces it came in."""
    pieces = [reader.buffer] if reader.buffer else []
    reader.buffer = b""
    while not reader.eof:
        piece = yield Next(reader)
        if piece is None:
            reader.eof = True
            break
        reader.received += len(piece)
        pieces.append(piece)
    return pieces


def _content_length(resp: httpx.Response) -> int | None:
    value = resp.headers.get("content-length", "")
    return int(value) if value.isascii() and value.isdigit() else None


def _cut() -> Exception:
    return ProxyConnectionError(
        "the upstream's answer broke off mid-way (too late to try another key)"
    )
