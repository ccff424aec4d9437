"""PoolSwitchClient against a real proxy and the fake upstream."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest

from poolswitch_client import (
    PoolSwitchClient,
    ProxyConnectionError,
    ProxyError,
    ProxyResponse,
    ProxyTimeoutError,
    UpstreamError,
)
from poolswitch_testing.fake_upstream import FakeUpstream, blob_bytes

from conftest import Proxy, ProxyFactory, SendCounter, script_all

SEED_BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}


@pytest.fixture
def client(proxy: Proxy, upstream: FakeUpstream) -> Iterator[PoolSwitchClient]:
    with PoolSwitchClient(proxy.url) as client:
        yield client


Counted = Callable[..., tuple[PoolSwitchClient, SendCounter]]


@pytest.fixture
def counted() -> Iterator[Counted]:
    """counted(url, **options) -> a client whose sends to the proxy are counted."""
    opened: list[httpx.Client] = []

    def factory(url: str, **options: Any) -> tuple[PoolSwitchClient, SendCounter]:
        counter = SendCounter()
        opened.append(httpx.Client(event_hooks={"request": [counter]}))
        return PoolSwitchClient(url, http_client=opened[-1], **options), counter

    yield factory
    for http in opened:
        http.close()


# ---- calls and bodies ----


def test_the_seed_call_works_verbatim(proxy: Proxy, upstream: FakeUpstream) -> None:
    client = PoolSwitchClient(proxy.url)
    result = client.post("/v1/chat/completions", json=SEED_BODY)
    client.close()
    assert result["object"] == "chat.completion"
    assert result["choices"][0]["message"]["role"] == "assistant"
    [attempt] = upstream.attempts
    assert (attempt.method, attempt.path) == ("POST", "/v1/chat/completions")


@pytest.mark.parametrize("verb", ["get", "post", "put", "patch", "delete"])
def test_each_verb_sends_its_method_path_query_headers_and_body(
    client: PoolSwitchClient, upstream: FakeUpstream, verb: str
) -> None:
    script_all(upstream, {"kind": "echo"})
    call = getattr(client, verb)
    seen = call(
        "/v1/things/7",
        params={"q": "x y", "n": 2},
        headers={"x-trace": "t-1"},
        content=b"payload",
    )
    assert seen["method"] == verb.upper()
    assert seen["path"] == "/v1/things/7"
    assert parse_qsl(seen["query_string"]) == [("q", "x y"), ("n", "2")]
    assert ["x-trace", "t-1"] in seen["headers"]
    assert seen["body_sha256"] == hashlib.sha256(b"payload").hexdigest()


def test_request_sends_json_and_any_method(
    client: PoolSwitchClient, upstream: FakeUpstream
) -> None:
    script_all(upstream, {"kind": "echo"})
    seen = client.request("OPTIONS", "v1/x", json={"a": [1, 2]})
    assert (seen["method"], seen["path"]) == ("OPTIONS", "/v1/x")
    assert ["content-type", "application/json"] in seen["headers"]
    assert seen["body_length"] > 0


def test_text_body_is_returned_as_str(client: PoolSwitchClient, upstream: FakeUpstream) -> None:
    script_all(upstream, {"kind": "text", "body": "plain words, ünïcode"})
    assert client.get("/v1/text") == "plain words, ünïcode"


@pytest.mark.parametrize("gzip", [False, True])
def test_binary_body_is_returned_as_bytes(
    client: PoolSwitchClient, upstream: FakeUpstream, gzip: bool
) -> None:
    script_all(upstream, {"kind": "blob", "size": 70_000, "gzip": gzip})
    assert client.get("/v1/files/1/content") == blob_bytes(70_000)


def test_empty_body_is_returned_as_none(client: PoolSwitchClient, upstream: FakeUpstream) -> None:
    script_all(upstream, {"kind": "text", "status": 204})
    assert client.delete("/v1/things/7") is None


def test_send_returns_the_whole_answer(client: PoolSwitchClient, upstream: FakeUpstream) -> None:
    response = client.send("POST", "/v1/chat/completions", json=SEED_BODY)
    assert isinstance(response, ProxyResponse)
    assert response.status == 200
    assert response.key_id in ("a", "b")
    assert response.attempts == 1
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["object"] == "chat.completion"
    assert response.text.startswith("{") and response.content.startswith(b"{")
    assert repr(response) == f"<ProxyResponse [200] key_id={response.key_id!r} attempts=1>"


def test_builtin_endpoints(client: PoolSwitchClient, upstream: FakeUpstream) -> None:
    assert client.health() == {"status": "ok", "keys_available": 2, "keys_total": 2}
    status = client.status()
    assert [key["id"] for key in status["keys"]] == ["a", "b"]
    assert "SECRET" not in str(status)
    assert "poolswitch_requests_total" in client.metrics()
    assert upstream.attempts == []


# ---- headers, token, settings ----


def test_token_and_headers_are_sent_and_the_token_is_never_shown(proxy: Proxy) -> None:
    counter = SendCounter()
    http = httpx.Client(event_hooks={"request": [counter]})
    client = PoolSwitchClient(
        proxy.url, token="tok-SECRET-123", headers={"x-team": "search"}, http_client=http
    )
    client.health()
    client.get("/health", headers={"x-team": "ads", "x-call": "1"})
    first, second = counter.requests
    assert first.headers["x-poolswitch-token"] == "tok-SECRET-123"
    assert "authorization" not in first.headers
    assert first.headers["x-team"] == "search"
    assert (second.headers["x-team"], second.headers["x-call"]) == ("ads", "1")
    assert "SECRET" not in repr(client)
    assert repr(client) == f"PoolSwitchClient(base_url={proxy.url!r})"
    http.close()


def test_close_leaves_a_callers_http_client_open(proxy: Proxy) -> None:
    http = httpx.Client()
    with PoolSwitchClient(proxy.url, http_client=http) as client:
        client.health()
    assert not http.is_closed
    http.close()
    with PoolSwitchClient(proxy.url) as own:
        own.health()
    assert own._http.is_closed


# ---- streaming ----

EVENTS = [f'{{"i": {i}}}' for i in range(5)]


def test_stream_delivers_each_event_as_it_arrives(
    client: PoolSwitchClient, upstream: FakeUpstream
) -> None:
    script_all(upstream, {"kind": "sse", "events": EVENTS, "interval": 0.25})
    arrivals: list[float] = []
    data: list[str] = []
    with client.stream("POST", "/v1/chat/completions", json={"stream": True}) as stream:
        assert stream.status == 200
        assert stream.key_id in ("a", "b") and stream.attempts == 1
        for event in stream:
            arrivals.append(time.monotonic())
            data.append(event.data)
    assert data == [*EVENTS, "[DONE]"]
    # the upstream writes an event every 0.25 s from the moment the request reaches it: it
    # is still streaming for 1.25 s after the first event, which must reach us by then
    finished = upstream.attempts[0].at + 1.25
    assert arrivals[0] < finished - 0.25, "the first event was held back"
    assert arrivals[-1] - arrivals[0] > 0.75, "the stream was buffered"


def test_stream_events_carry_name_id_and_multiline_data(
    client: PoolSwitchClient, upstream: FakeUpstream
) -> None:
    events = [
        {"event": "delta", "id": "1", "data": '{"text": "a"}'},
        {"data": "line one\nline two"},
        {"event": "done", "id": "2", "data": "{}"},
    ]
    script_all(upstream, {"kind": "sse", "events": events, "interval": 0, "done": False})
    with client.stream("GET", "/v1/events") as stream:
        got = list(stream)
    assert [(e.event, e.id, e.data) for e in got] == [
        ("delta", "1", '{"text": "a"}'),
        ("message", "1", "line one\nline two"),
        ("done", "2", "{}"),
    ]
    assert got[0].json() == {"text": "a"}


def test_stream_iter_bytes_reads_a_raw_stream(
    client: PoolSwitchClient, upstream: FakeUpstream
) -> None:
    script_all(upstream, {"kind": "blob", "size": 300_000, "chunked": True})
    with client.stream("GET", "/v1/files/1/content") as stream:
        assert b"".join(stream.iter_bytes()) == blob_bytes(300_000)


def test_stream_raises_for_an_error_answer(
    client: PoolSwitchClient, upstream: FakeUpstream
) -> None:
    script_all(upstream, {"kind": "bad_request"})
    with pytest.raises(UpstreamError) as caught, client.stream("POST", "/v1/chat/completions"):
        pytest.fail("an error answer must not be yielded")
    assert caught.value.status == 400
    assert caught.value.json["error"]["type"] == "invalid_request_error"


def test_stream_cut_by_the_upstream_raises_connection_error(
    make_proxy: ProxyFactory, upstream: FakeUpstream
) -> None:
    cut = {"kind": "sse", "events": EVENTS[:2], "interval": 0, "cut": True, "done": False}
    upstream.script("a", cut)
    data: list[str] = []
    with (
        PoolSwitchClient(make_proxy("a").url) as client,
        pytest.raises(ProxyConnectionError),
        client.stream("GET", "/v1/events") as stream,
    ):
        data.extend(event.data for event in stream)
    assert data == EVENTS[:2]


# ---- errors ----
# Upstream failures (5xx, drops, hangs, 429s) go to a fresh one-key proxy with one attempt per
# request, so that no key state or outage detection carries over into other tests.


def test_upstream_400_raises_upstream_error_with_its_body(
    client: PoolSwitchClient, upstream: FakeUpstream
) -> None:
    script_all(upstream, {"kind": "bad_request"})
    with pytest.raises(UpstreamError) as caught:
        client.post("/v1/chat/completions", json={})
    err = caught.value
    assert err.status == 400
    assert err.json == {
        "error": {
            "message": "Invalid request: 'messages' is a required property.",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }
    assert err.body.startswith('{"error": ') and json.loads(err.body) == err.json
    assert err.key_id in ("a", "b") and err.attempts == 1
    assert "HTTP 400" in str(err) and "'messages' is a required property" in str(err)


def test_upstream_503_is_an_upstream_error_not_a_proxy_error(
    make_proxy: ProxyFactory, upstream: FakeUpstream
) -> None:
    upstream.script("a", {"kind": "server_error", "status": 503})
    proxy = make_proxy("a", retry_attempts=1)
    with PoolSwitchClient(proxy.url) as client, pytest.raises(UpstreamError) as caught:
        client.get("/v1/models")
    assert (caught.value.status, caught.value.key_id, caught.value.attempts) == (503, "a", 1)


def test_non_json_upstream_error_keeps_its_text(
    client: PoolSwitchClient, upstream: FakeUpstream
) -> None:
    script_all(upstream, {"kind": "text", "status": 404, "body": "no such thing"})
    with pytest.raises(UpstreamError) as caught:
        client.get("/v1/missing")
    assert (caught.value.status, caught.value.body, caught.value.json) == (
        404,
        "no such thing",
        None,
    )


def test_no_available_keys_raises_proxy_error_with_retry_after(
    make_proxy: ProxyFactory, upstream: FakeUpstream, counted: Counted
) -> None:
    upstream.script("a", {"kind": "rate_limit", "headers": {"retry-after": "30"}})
    client, counter = counted(make_proxy("a", retry_attempts=1).url, timeout=5.0)
    with pytest.raises(UpstreamError) as relayed:
        client.get("/v1/models")
    assert relayed.value.status == 429  # the upstream's own answer, relayed
    started = time.monotonic()
    with pytest.raises(ProxyError) as caught:
        client.get("/v1/models")
    err = caught.value
    assert (
        err.code == "no_available_keys"
    )  # 503 before the contract's 429; the code is the contract
    assert err.retry_after is not None and 28 <= err.retry_after <= 30
    assert "cooling down" in err.message
    assert time.monotonic() - started < 2.0, "30 s does not fit a 5 s timeout: no retry"
    assert counter.count == 2  # neither the relayed 429 nor no_available_keys was retried


def test_no_available_keys_is_retried_when_retry_after_fits(
    make_proxy: ProxyFactory, upstream: FakeUpstream, counted: Counted
) -> None:
    upstream.script("a", {"kind": "rate_limit", "headers": {"retry-after": "1"}}, {"kind": "ok"})
    client, counter = counted(make_proxy("a", retry_attempts=1).url, timeout=10.0)
    with pytest.raises(UpstreamError):
        client.get("/v1/models")
    started = time.monotonic()
    assert client.get("/v1/models")["object"] == "chat.completion"
    assert time.monotonic() - started >= 0.9
    assert counter.count == 3  # 429, then no_available_keys, then the retry
    assert upstream.key_ids() == ["a", "a"]


def test_no_available_keys_is_not_retried_with_max_retries_0(
    make_proxy: ProxyFactory, upstream: FakeUpstream, counted: Counted
) -> None:
    upstream.script("a", {"kind": "rate_limit", "headers": {"retry-after": "1"}})
    client, counter = counted(make_proxy("a", retry_attempts=1).url, max_retries=0)
    with pytest.raises(UpstreamError):
        client.get("/v1/models")
    with pytest.raises(ProxyError, match="no_available_keys"):
        client.get("/v1/models")
    assert counter.count == 2


def test_payload_too_large_is_a_proxy_error(client: PoolSwitchClient) -> None:
    with pytest.raises(ProxyError) as caught:
        client.post("/v1/files", content=b"x" * 5000)
    assert (caught.value.code, caught.value.status, caught.value.retry_after) == (
        "payload_too_large",
        413,
        None,
    )


def test_a_path_climbing_above_the_base_is_a_proxy_bad_request(client: PoolSwitchClient) -> None:
    with pytest.raises(ProxyError) as caught:
        client.get("/%2e%2e/etc/passwd")
    assert (caught.value.code, caught.value.status) == ("bad_request", 400)


def test_unreachable_upstream_is_a_proxy_error(
    make_proxy: ProxyFactory, upstream: FakeUpstream
) -> None:
    upstream.script("a", {"kind": "drop"})
    proxy = make_proxy("a", retry_attempts=1)
    with PoolSwitchClient(proxy.url) as client, pytest.raises(ProxyError) as caught:
        client.get("/v1/models")
    assert (caught.value.code, caught.value.status) == ("upstream_unreachable", 502)


def test_upstream_timeout_is_a_proxy_error(
    make_proxy: ProxyFactory, upstream: FakeUpstream
) -> None:
    upstream.script("a", {"kind": "hang"})
    proxy = make_proxy("a", retry_attempts=1, request_timeout_seconds=0.3)
    with PoolSwitchClient(proxy.url) as client, pytest.raises(ProxyError) as caught:
        client.get("/v1/models")
    assert (caught.value.code, caught.value.status) == ("upstream_timeout", 504)


def test_stopped_proxy_raises_connection_error(make_proxy: ProxyFactory) -> None:
    proxy = make_proxy("a")
    with PoolSwitchClient(proxy.url, max_retries=0) as client:
        assert client.health()["status"] == "ok"
        proxy.stop()
        with pytest.raises(ProxyConnectionError, match="cannot connect to the proxy"):
            client.post("/v1/chat/completions", json=SEED_BODY)
        with pytest.raises(ProxyConnectionError), client.stream("GET", "/v1/events"):
            pass


def test_connection_failures_are_retried_with_backoff(dead_url: str, counted: Counted) -> None:
    client, counter = counted(dead_url, max_retries=2)
    started = time.monotonic()
    with pytest.raises(ProxyConnectionError):
        client.get("/v1/models")
    assert counter.count == 3
    assert time.monotonic() - started >= 1.5  # 0.5 s, then 1 s


def test_connection_retries_stop_at_the_timeout(dead_url: str, counted: Counted) -> None:
    client, counter = counted(dead_url, max_retries=5, timeout=1.0)
    with pytest.raises(ProxyConnectionError):
        client.get("/v1/models")
    assert counter.count == 2  # 0.5 s fits in 1 s, another 1 s does not


def test_upstream_errors_are_never_retried(
    make_proxy: ProxyFactory, upstream: FakeUpstream, counted: Counted
) -> None:
    upstream.script("a", {"kind": "server_error"})
    retrying, counter = counted(make_proxy("a", retry_attempts=1).url, max_retries=5)
    with pytest.raises(UpstreamError):
        retrying.get("/v1/models")
    assert counter.count == 1


def test_slow_answer_raises_timeout_error(
    proxy: Proxy, upstream: FakeUpstream, counted: Counted
) -> None:
    script_all(upstream, {"kind": "ok", "delay": 1.0})
    client, counter = counted(proxy.url, timeout=0.3)
    started = time.monotonic()
    with pytest.raises(ProxyTimeoutError):
        client.get("/v1/models")
    assert time.monotonic() - started < 0.9
    assert counter.count == 1  # timeouts are not retried


def test_per_call_timeout_overrides_the_clients(proxy: Proxy, upstream: FakeUpstream) -> None:
    script_all(upstream, {"kind": "ok", "delay": 0.5})
    with PoolSwitchClient(proxy.url, timeout=60.0) as client, pytest.raises(ProxyTimeoutError):
        client.get("/v1/models", timeout=0.2)
    with PoolSwitchClient(proxy.url, timeout=0.2) as client:
        assert client.get("/v1/models", timeout=5.0)["object"] == "chat.completion"


def test_stream_timeout_bounds_the_wait_between_events(
    client: PoolSwitchClient, upstream: FakeUpstream
) -> None:
    script_all(upstream, {"kind": "sse", "events": EVENTS, "interval": 1.0})
    with (
        pytest.raises(ProxyTimeoutError),
        client.stream("GET", "/v1/events", timeout=0.3) as stream,
    ):
        for _ in stream:
            pass
