"""The request loop driven as an ASGI callable with a fake forwarder: no sockets, no sleeps.

The clock is injected (the proxy's deadlines and the pool's cooldowns read the same fake time)
and `sleep` only moves it on, so backoffs, queueing and timeouts are checked instantly.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import random
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from poolswitch.config import parse_config
from poolswitch.errors import ConnectError, ReadTimeout, TransportError
from poolswitch.gateway import Gateway
from poolswitch.metrics import Metrics
from poolswitch.pool import Pool
from poolswitch.proxy import STREAM_CUT, Proxy
from poolswitch.storage import MemoryStore

KEYS = {"sk-a-0001-SECRET": "a", "sk-b-0002-SECRET": "b", "sk-c-0003-SECRET": "c"}
VALUES = {key_id: value for value, key_id in KEYS.items()}


class Clock:
    """Fake time for both the proxy (monotonic) and the pool (wall clock)."""

    def __init__(self) -> None:
        self.now = 1_000_000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class FakeResponse:
    def __init__(
        self,
        status: int,
        body: bytes = b"",
        headers: Sequence[tuple[str, str]] = (),
        *,
        chunks: Sequence[bytes] | None = None,
        cut: bool = False,
    ) -> None:
        self.status = status
        self._body = body
        self.raw_headers = [(k.encode(), v.encode()) for k, v in headers]
        self.headers: Mapping[str, str] = {k.lower(): v for k, v in headers}
        self._chunks = list(chunks) if chunks is not None else None
        self.content_length = None if chunks is not None else len(body)
        self._cut = cut
        self.released = False

    async def read(self, limit: int) -> tuple[bytes, bool]:
        return self._body[:limit], len(self._body) <= limit

    async def read_event(self, limit: int) -> bytes:
        assert self._chunks is not None
        return self._chunks.pop(0) if self._chunks else b""

    async def chunks(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks or [self._body]:
            yield chunk
        if self._cut:
            raise TransportError("upstream connection failed: ClientPayloadError")

    def release(self) -> None:
        self.released = True


Behaviour = Callable[[str, str], FakeResponse | TransportError]


def ok(method: str = "", path: str = "") -> FakeResponse:
    return FakeResponse(200, b'{"ok": true}', [("Content-Type", "application/json")])


def error(status: int, body: dict[str, Any], *, gzipped: bool = False) -> Behaviour:
    data = json.dumps(body).encode()
    headers = [("Content-Type", "application/json")]
    if gzipped:
        data = gzip.compress(data)
        headers.append(("Content-Encoding", "gzip"))
    return lambda method, path: FakeResponse(status, data, headers)


INVALID = error(401, {"error": {"code": "invalid_api_key", "message": "Incorrect API key"}})
RATE = error(429, {"error": {"code": "rate_limit_exceeded", "message": "slow down"}})
SERVER = error(500, {"error": {"type": "server_error"}})


def hang(method: str, path: str) -> TransportError:
    return ReadTimeout("upstream did not answer in time")


@dataclass
class Sent:
    method: str
    path: str
    key_id: str | None
    read_timeout: float | None
    headers: list[tuple[str, str]]


@dataclass
class FakeForwarder:
    """Answers per key with a behaviour (a function of method and path); records every send."""

    clock: Clock
    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    sent: list[Sent] = field(default_factory=list)

    async def send(
        self,
        method: str,
        target: str,
        headers: Iterable[tuple[str, str]],
        body: bytes,
        read_timeout: float | None = None,
    ) -> FakeResponse:
        headers = list(headers)
        auth = dict(headers).get("Authorization", "").removeprefix("Bearer ")
        key_id = KEYS.get(auth)
        path = target.partition("?")[0]
        self.sent.append(Sent(method, path, key_id, read_timeout, headers))
        await asyncio.sleep(0)  # let others run, as a real exchange would
        if key_id is None:
            return FakeResponse(400, b'{"error": "no key"}')
        got = self.behaviours.get(key_id, ok)(method, path)
        if isinstance(got, ReadTimeout):
            self.clock.now += read_timeout or 600.0
        if isinstance(got, TransportError):
            raise got
        return got

    def keys(self, path: str | None = None) -> list[str | None]:
        return [s.key_id for s in self.sent if path is None or s.path == path]


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Harness:
    def __init__(self, ids: str = "abc", **settings: Any) -> None:
        doc: dict[str, Any] = {
            "upstream_base_url": "http://upstream.test",
            "keys": [{"id": i, "value": VALUES[i]} for i in ids],
        }
        doc.update(settings)
        self.config = parse_config(doc, env={})
        self.clock = Clock()
        self.pool = Pool(self.config.pools[0], MemoryStore(), clock=self.clock)
        self.upstream = FakeForwarder(self.clock)
        metrics = Metrics(
            CollectorRegistry(), lambda: [("default", self.pool.snapshot(), False)], self.clock
        )
        self.lane = Proxy(
            self.config.pools[0],
            self.pool,
            self.upstream,
            metrics,
            rng=random.Random(7),
            clock=self.clock,
            sleep=self.clock.sleep,
        )
        self.proxy = Gateway(self.config, {"default": self.lane}, metrics, clock=self.clock)

    def script(self, key_id: str, behaviour: Behaviour) -> None:
        self.upstream.behaviours[key_id] = behaviour

    def state(self, key_id: str) -> str:
        return {k.id: k.state for k in self.pool.snapshot()}[key_id]

    async def call(
        self, method: str = "POST", path: str = "/v1/chat/completions", body: bytes = b"{}"
    ) -> Answer:
        scope = {
            "type": "http",
            "method": method,
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "headers": [(b"content-type", b"application/json")],
        }
        first = True
        never: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def receive() -> dict[str, Any]:
            nonlocal first
            if first:
                first = False
                return {"type": "http.request", "body": body, "more_body": False}
            await never  # the caller stays until the answer is complete
            raise AssertionError("unreachable")

        messages: list[dict[str, Any]] = []

        async def send(message: Any) -> None:
            messages.append(message)

        await self.proxy(scope, receive, send)
        never.cancel()
        start = messages[0]
        headers = {k.decode(): v.decode() for k, v in start["headers"]}
        return Answer(start["status"], headers, b"".join(m.get("body", b"") for m in messages[1:]))

    def run(self, *calls: tuple[str, str]) -> list[Answer]:
        async def go() -> list[Answer]:
            return [await self.call(method, path) for method, path in calls]

        return asyncio.run(go())


def test_a_success_takes_one_attempt_and_names_the_key() -> None:
    h = Harness()
    (answer,) = h.run(("POST", "/v1/chat/completions"))
    assert answer.status == 200 and answer.json() == {"ok": True}
    assert answer.headers["x-poolswitch-key-id"] == "a"
    assert answer.headers["x-poolswitch-attempts"] == "1"
    assert h.upstream.keys() == ["a"] and h.clock.slept == []


def test_a_rate_limit_fails_over_at_once_and_parks_the_key() -> None:
    h = Harness()
    h.script("a", RATE)
    (answer,) = h.run(("POST", "/x"))
    assert (answer.status, answer.headers["x-poolswitch-key-id"]) == (200, "b")
    assert h.state("a") == "cooling_down" and h.clock.slept == []


def test_5xx_everywhere_reuses_keys_after_a_backoff_then_relays_the_last() -> None:
    h = Harness("ab", retry_attempts=4)
    h.script("a", SERVER)
    h.script("b", SERVER)
    (answer,) = h.run(("GET", "/x"))
    assert answer.status == 500 and answer.headers["x-poolswitch-attempts"] == "4"
    assert h.upstream.keys() == ["a", "b", "a", "b"]
    assert len(h.clock.slept) == 1 and 0 <= h.clock.slept[0] < 0.1  # one backoff, jittered
    assert "x-poolswitch-error" not in answer.headers


def test_no_key_free_answers_no_available_keys_without_an_attempt() -> None:
    h = Harness("a")
    h.pool.disable("a")
    (answer,) = h.run(("GET", "/x"))
    assert answer.status == 429 and answer.json()["error"]["code"] == "no_available_keys"
    assert h.upstream.sent == []


def test_queue_waits_for_the_first_key_to_return() -> None:
    h = Harness("a", queue_timeout_seconds=30)
    h.pool.record(0, h.lane.classifier.classify(429, {"retry-after": "10"}, b"", h.clock()))
    (answer,) = h.run(("GET", "/x"))
    assert answer.status == 200
    assert h.clock.slept == [pytest.approx(10.005)]


def test_a_post_that_timed_out_is_not_sent_again_a_get_is() -> None:
    h = Harness("ab", attempt_timeout_seconds=2, strategy="quota_failover")
    h.script("a", hang)
    post, get = h.run(("POST", "/x"), ("GET", "/x"))
    assert post.status == 504 and post.json()["error"]["code"] == "upstream_timeout"
    assert get.status == 200 and get.headers["x-poolswitch-attempts"] == "2"
    assert [s.read_timeout for s in h.upstream.sent] == [2, 2, 2]


def test_a_connect_error_is_retried_even_for_a_post() -> None:
    h = Harness("ab")
    h.script("a", lambda m, p: ConnectError("cannot connect to upstream"))
    (answer,) = h.run(("POST", "/x"))
    assert answer.status == 200 and answer.headers["x-poolswitch-key-id"] == "b"


def test_a_hanging_key_is_parked_while_the_other_answers() -> None:
    h = Harness("ab", attempt_timeout_seconds=2)
    h.script("a", hang)
    first = h.run(*[("GET", "/v1/models")] * 3)
    assert [a.headers["x-poolswitch-attempts"] for a in first] == ["2", "2", "2"]
    assert h.state("a") == "cooling_down"
    reason = {k.id: (k.reason, k.source) for k in h.pool.snapshot()}["a"]
    assert reason == ("timeout", "3 consecutive timeouts")
    before = h.clock.now
    later = h.run(*[("GET", "/v1/models")] * 5, *[("POST", "/v1/chat/completions")] * 5)
    assert all(a.status == 200 and a.headers["x-poolswitch-attempts"] == "1" for a in later)
    assert h.clock.now == before  # no attempt waited for the hanging key


def test_an_upstream_hanging_for_every_key_blames_no_key() -> None:
    h = Harness("ab", attempt_timeout_seconds=2)
    h.script("a", hang)
    h.script("b", hang)
    answers = h.run(*[("POST", "/x")] * 6)
    assert {a.status for a in answers} <= {503, 504}
    assert {k.state for k in h.pool.snapshot()} == {"available"}


def test_a_gzip_quota_error_is_read_as_a_quota() -> None:
    h = Harness("ab", cooldown_seconds=500)
    h.script("a", error(429, {"error": {"code": "insufficient_quota"}}, gzipped=True))
    (answer,) = h.run(("POST", "/x"))
    assert answer.status == 200
    parked = {k.id: k for k in h.pool.snapshot()}["a"]
    assert parked.reason == "quota_exhausted"
    assert parked.cooldown_until == pytest.approx(h.clock.now + 500)


# -- 401/403: the key's fault only once confirmed (verify.py) ---------------------------------


def forbidden_on(path: str) -> Behaviour:
    """A path every key may not use; everything else works."""
    return lambda method, p: INVALID(method, p) if p == path else ok()


def test_a_401_storm_on_one_path_disables_nothing_with_a_verify_path() -> None:
    h = Harness(provider="openai")
    for key in "abc":
        h.script(key, forbidden_on("/v1/fine_tuning/jobs"))
    storm = h.run(*[("POST", "/v1/fine_tuning/jobs")] * 20)
    assert {a.status for a in storm} == {401}
    assert {a.headers["x-poolswitch-attempts"] for a in storm} == {"1"}  # the caller's own
    assert storm[0].json()["error"]["code"] == "invalid_api_key"  # relayed as sent
    assert sorted(map(str, h.upstream.keys("/v1/models"))) == [
        "a",
        "b",
        "c",
    ]  # one verification each
    assert {k.state for k in h.pool.snapshot()} == {"available"}
    after = h.run(*[("POST", "/v1/chat/completions")] * 50)
    assert {a.status for a in after} == {200}


def test_a_401_storm_on_one_path_disables_nothing_without_a_verify_path() -> None:
    h = Harness()  # generic: no verify path
    for key in "abc":
        h.script(key, forbidden_on("/admin"))
    storm = h.run(*[("GET", "/admin")] * 10)
    assert {a.status for a in storm} == {401}
    assert {k.state for k in h.pool.snapshot()} == {"available"}
    after = h.run(*[("POST", "/v1/chat/completions")] * 50)
    assert {a.status for a in after} == {200}


def test_a_key_invalid_everywhere_is_disabled_after_verification() -> None:
    h = Harness(provider="openai")
    h.script("a", INVALID)
    (answer,) = h.run(("POST", "/v1/chat/completions"))
    assert answer.status == 200 and answer.headers["x-poolswitch-key-id"] == "b"
    assert h.upstream.keys() == ["a", "a", "b"]  # the attempt, the verification, the failover
    assert h.upstream.sent[1].method == "GET" and h.upstream.sent[1].path == "/v1/models"
    disabled = {k.id: k for k in h.pool.snapshot()}["a"]
    assert (disabled.state, disabled.reason) == ("disabled", "key_invalid")
    assert disabled.source == "confirmed: verify_path"


def test_a_key_invalid_everywhere_is_disabled_by_a_peer_or_a_second_path() -> None:
    h = Harness()  # generic
    h.script("a", INVALID)
    (answer,) = h.run(("POST", "/v1/chat/completions"))
    assert answer.status == 200 and h.state("a") == "disabled"  # b succeeded where a failed
    assert {k.id: k.source for k in h.pool.snapshot()}["a"] == "confirmed: another key succeeded"

    h = Harness("a")  # alone: no peer, so a second path confirms it
    h.script("a", INVALID)
    first, second = h.run(("POST", "/v1/chat/completions"), ("POST", "/v1/embeddings"))
    assert first.status == second.status == 401
    assert h.state("a") == "disabled"
    assert {k.id: k.source for k in h.pool.snapshot()}["a"] == "confirmed: invalid on two paths"


def test_a_request_disables_at_most_one_key() -> None:
    h = Harness()  # generic; every key answers 401 on two paths, alternately asked
    for key in "abc":
        h.script(key, lambda m, p: INVALID(m, p) if p in ("/p", "/q") else ok())
    for n, path in enumerate(["/p", "/q", "/p", "/q"]):
        before = sum(k.state == "disabled" for k in h.pool.snapshot())
        h.run(("GET", path))
        after = sum(k.state == "disabled" for k in h.pool.snapshot())
        assert after - before <= 1, f"request {n} disabled {after - before} keys"


def test_a_verified_key_is_not_verified_again_for_a_while() -> None:
    h = Harness(provider="openai")
    for key in "abc":
        h.script(key, forbidden_on("/v1/x"))

    async def storm() -> list[Answer]:
        return list(await asyncio.gather(*[h.call("POST", "/v1/x") for _ in range(30)]))

    answers = asyncio.run(storm())
    assert {a.status for a in answers} == {401}
    assert len(h.upstream.keys("/v1/models")) <= 3  # one at a time per key, then cached
    h.clock.now += 31  # the cache has expired
    h.run(("POST", "/v1/x"))
    assert len(h.upstream.keys("/v1/models")) <= 4


def test_the_verification_sends_only_the_key_and_is_never_relayed() -> None:
    h = Harness("ab", provider="anthropic", auth_header_name="x-api-key", auth_scheme=None)
    echo = json.dumps({"error": {"type": "authentication_error"}, "key": "sk-a-0001-SECRET"})

    def a(method: str, path: str) -> FakeResponse:
        return FakeResponse(401, echo.encode(), [("Content-Type", "application/json")])

    h.script("a", a)
    h.upstream.send = _by_header(h.upstream, "x-api-key")  # type: ignore[method-assign]
    (answer,) = h.run(("POST", "/v1/messages"))
    assert answer.status == 200 and b"SECRET" not in answer.body
    verification = h.upstream.sent[1]
    assert (verification.method, verification.path) == ("GET", "/v1/models")
    assert dict(verification.headers) == {
        "anthropic-version": "2023-06-01",
        "x-api-key": VALUES["a"],
    }


def _by_header(upstream: FakeForwarder, name: str) -> Callable[..., Any]:
    """The fake forwarder, reading the key from another header."""
    send = upstream.send

    async def by_header(
        method: str,
        target: str,
        headers: Iterable[tuple[str, str]],
        body: bytes,
        read_timeout: float | None = None,
    ) -> FakeResponse:
        moved = [("Authorization", "Bearer " + v) if n == name else (n, v) for n, v in headers]
        resp = await send(method, target, moved, body, read_timeout)
        upstream.sent[-1].headers = list(headers)
        return resp

    return by_header


# -- streams ----------------------------------------------------------------------------------


def test_a_stream_cut_by_the_upstream_is_marked_incomplete(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    h = Harness("a")
    h.script(
        "a",
        lambda m, p: FakeResponse(
            200,
            headers=[("Content-Type", "text/event-stream")],
            chunks=[b"data: 1\n\n", b"data: 2\n\n"],
            cut=True,
        ),
    )

    async def go() -> tuple[Answer, bool]:
        answer = await h.call("POST", "/v1/chat/completions")
        return answer, STREAM_CUT.get()

    answer, cut = asyncio.run(go())
    assert answer.status == 200 and answer.body == b"data: 1\n\ndata: 2\n\n"
    assert cut  # tells the server not to log an error of its own
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "mid-stream" in warnings[0].getMessage()
    access = [r.getMessage() for r in caplog.records if r.name == "poolswitch.access"]
    assert access and " 200 incomplete " in access[0]


def test_response_headers_named_by_connection_are_not_relayed() -> None:
    h = Harness("a")
    h.script(
        "a",
        lambda m, p: FakeResponse(
            200,
            b"{}",
            [("Connection", "keep-alive, X-Hop"), ("X-Hop", "1"), ("X-Kept", "2")],
        ),
    )
    (answer,) = h.run(("GET", "/x"))
    assert answer.headers.get("x-kept") == "2"
    assert "x-hop" not in answer.headers and "connection" not in answer.headers
