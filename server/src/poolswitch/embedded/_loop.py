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
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx

from poolswitch.classifier import NETWORK_ERROR, TIMEOUT, Verdict
from poolswitch.embedded._answers import drain, in_memory, pool_error, relayed, upstream_error
from poolswitch.embedded._effects import Close, Loop, Reader, Send, Sleep
from poolswitch.embedded._lane import Call, LaneBase
from poolswitch.embedded._reading import content_length, read, read_all, read_event
from poolswitch.embedded._streams import AsyncBody, SyncBody, async_rest, sync_rest
from poolswitch.errors import ConnectError, ReadTimeout, TransportError
from poolswitch.proxy import (
    BUFFER_LIMIT,
    BUFFERED_DROP,
    FIRST_EVENT_LIMIT,
    gave_up,
    held,
    is_event_stream,
    upstream_headers,
)
from poolswitch.retry import RELAY, TRY, when_no_key
from poolswitch.verify import (
    Confirming,
)
from poolswitch_client import ProxyConnectionError

log = logging.getLogger("poolswitch.embedded")


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


class Lane(LaneBase):
    """One pool and its request loop (the state and the pieces of an attempt: `LaneBase`)."""

    # -- the loop --------------------------------------------------------------------------

    def run(self, call: Call) -> Loop:
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

    def _attempts(self, call: Call) -> Loop:
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

    # -- answers ---------------------------------------------------------------------------

    def _relay(self, call: Call, reader: Reader, i: int, attempts: int) -> Loop:
        """A successful answer: read here when it is small and has a length (a failure then is
        still the attempt's, and fails over), else relayed as it arrives."""
        resp = reader.response
        length = content_length(resp)
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

    def _error_body(self, call: Call, reader: Reader, head: bytes, i: int, attempts: int) -> Loop:
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


def _cut() -> Exception:
    return ProxyConnectionError(
        "the upstream's answer broke off mid-way (too late to try another key)"
    )
