"""AsyncPoolSwitchClient against a real proxy: the twins of test_client.py's checks."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from poolswitch_client import (
    AsyncPoolSwitchClient,
    AsyncProxyStream,
    ProxyConnectionError,
    ProxyError,
    ProxyTimeoutError,
    UpstreamError,
)
from poolswitch_testing.fake_upstream import FakeUpstream, blob_bytes

from conftest import Proxy, ProxyFactory, SendCounter, script_all

pytestmark = pytest.mark.anyio

SEED_BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}
EVENTS = [f'{{"i": {i}}}' for i in range(5)]

Counted = Callable[..., tuple[AsyncPoolSwitchClient, SendCounter]]


@pytest.fixture
async def client(proxy: Proxy, upstream: FakeUpstream) -> AsyncIterator[AsyncPoolSwitchClient]:
    async with AsyncPoolSwitchClient(proxy.url) as client:
        yield client


@pytest.fixture
async def counted() -> AsyncIterator[Counted]:
    """counted(url, **options) -> a client whose sends to the proxy are counted."""
    opened: list[httpx.AsyncClient] = []

    def factory(url: str, **options: Any) -> tuple[AsyncPoolSwitchClient, SendCounter]:
        counter = SendCounter()
        opened.append(httpx.AsyncClient(event_hooks={"request": [counter.hook]}))
        return AsyncPoolSwitchClient(url, http_client=opened[-1], **options), counter

    yield factory
    for http in opened:
        await http.aclose()


async def test_the_seed_call_works_with_await(proxy: Proxy, upstream: FakeUpstream) -> None:
    async with AsyncPoolSwitchClient(proxy.url) as client:
        result = await client.post("/v1/chat/completions", json=SEED_BODY)
    assert result["object"] == "chat.completion"
    assert [(a.method, a.path) for a in upstream.attempts] == [("POST", "/v1/chat/completions")]


@pytest.mark.parametrize("verb", ["get", "post", "put", "patch", "delete"])
async def test_each_verb_sends_its_method_and_body(
    client: AsyncPoolSwitchClient, upstream: FakeUpstream, verb: str
) -> None:
    script_all(upstream, {"kind": "echo"})
    seen = await getattr(client, verb)("/v1/things", params={"q": "1"}, json={"n": 1})
    assert (seen["method"], seen["path"], seen["query_string"]) == (
        verb.upper(),
        "/v1/things",
        "q=1",
    )
    assert ["content-type", "application/json"] in seen["headers"]


async def test_request_text_binary_and_empty_bodies(
    client: AsyncPoolSwitchClient, upstream: FakeUpstream
) -> None:
    script_all(upstream, {"kind": "text", "body": "hello"})
    assert await client.request("GET", "/1") == "hello"
    script_all(upstream, {"kind": "blob", "size": 5000})
    assert await client.request("GET", "/2") == blob_bytes(5000)
    script_all(upstream, {"kind": "text", "status": 204})
    assert await client.request("GET", "/3") is None


async def test_send_returns_the_whole_answer(
    client: AsyncPoolSwitchClient, upstream: FakeUpstream
) -> None:
    response = await client.send("GET", "/v1/models")
    assert (response.status, response.attempts) == (200, 1)
    assert response.key_id in ("a", "b")
    assert response.json()["object"] == "chat.completion"


async def test_builtin_endpoints(client: AsyncPoolSwitchClient, upstream: FakeUpstream) -> None:
    assert (await client.health())["status"] == "ok"
    assert [key["id"] for key in (await client.status())["keys"]] == ["a", "b"]
    assert "poolswitch_keys_available" in await client.metrics()


async def test_token_is_sent_and_never_shown(proxy: Proxy, counted: Counted) -> None:
    client, counter = counted(proxy.url, token="tok-SECRET-456")
    await client.health()
    assert counter.requests[0].headers["x-poolswitch-token"] == "tok-SECRET-456"
    assert "SECRET" not in repr(client)


async def test_close_leaves_a_callers_http_client_open(proxy: Proxy) -> None:
    async with httpx.AsyncClient() as http:
        async with AsyncPoolSwitchClient(proxy.url, http_client=http) as client:
            await client.health()
        assert not http.is_closed
    own = AsyncPoolSwitchClient(proxy.url)
    await own.close()
    assert own._http.is_closed


async def test_stream_delivers_each_event_as_it_arrives(
    client: AsyncPoolSwitchClient, upstream: FakeUpstream
) -> None:
    script_all(upstream, {"kind": "sse", "events": EVENTS, "interval": 0.25})
    arrivals: list[float] = []
    data: list[str] = []
    async with client.stream("POST", "/v1/chat/completions", json={"stream": True}) as stream:
        assert isinstance(stream, AsyncProxyStream)
        assert stream.status == 200 and stream.attempts == 1
        async for event in stream:
            arrivals.append(time.monotonic())
            data.append(event.data)
    assert data == [*EVENTS, "[DONE]"]
    # the upstream writes an event every 0.25 s from the moment the request reaches it: it
    # is still streaming for 1.25 s after the first event, which must reach us by then
    finished = upstream.attempts[0].at + 1.25
    assert arrivals[0] < finished - 0.25, "the first event was held back"
    assert arrivals[-1] - arrivals[0] > 0.75, "the stream was buffered"


async def test_stream_aiter_bytes_reads_a_raw_stream(
    client: AsyncPoolSwitchClient, upstream: FakeUpstream
) -> None:
    script_all(upstream, {"kind": "blob", "size": 300_000, "chunked": True})
    async with client.stream("GET", "/v1/files/1/content") as stream:
        body = b"".join([chunk async for chunk in stream.aiter_bytes()])
    assert body == blob_bytes(300_000)


async def test_stream_raises_for_an_error_answer(
    client: AsyncPoolSwitchClient, upstream: FakeUpstream
) -> None:
    script_all(upstream, {"kind": "bad_request"})
    with pytest.raises(UpstreamError) as caught:
        async with client.stream("POST", "/v1/chat/completions"):
            pytest.fail("an error answer must not be yielded")
    assert caught.value.status == 400


async def test_stream_cut_by_the_upstream_raises_connection_error(
    make_proxy: ProxyFactory, upstream: FakeUpstream
) -> None:
    cut = {"kind": "sse", "events": EVENTS[:2], "interval": 0, "cut": True, "done": False}
    upstream.script("a", cut)
    data: list[str] = []
    async with AsyncPoolSwitchClient(make_proxy("a").url) as client:
        with pytest.raises(ProxyConnectionError):
            async with client.stream("GET", "/v1/events") as stream:
                async for event in stream:
                    data.append(event.data)
    assert data == EVENTS[:2]


async def test_upstream_400_raises_upstream_error_with_its_body(
    client: AsyncPoolSwitchClient, upstream: FakeUpstream
) -> None:
    script_all(upstream, {"kind": "bad_request"})
    with pytest.raises(UpstreamError) as caught:
        await client.post("/v1/chat/completions", json={})
    assert caught.value.status == 400
    assert "'messages' is a required property" in caught.value.body
    assert caught.value.json["error"]["type"] == "invalid_request_error"
    assert caught.value.key_id in ("a", "b") and caught.value.attempts == 1


async def test_no_available_keys_raises_proxy_error_with_retry_after(
    make_proxy: ProxyFactory, upstream: FakeUpstream, counted: Counted
) -> None:
    upstream.script("a", {"kind": "rate_limit", "headers": {"retry-after": "30"}})
    client, counter = counted(make_proxy("a", retry_attempts=1).url, timeout=5.0)
    with pytest.raises(UpstreamError):
        await client.get("/v1/models")
    with pytest.raises(ProxyError) as caught:
        await client.get("/v1/models")
    assert caught.value.code == "no_available_keys"  # the code is the contract, not the status
    assert caught.value.retry_after is not None and 28 <= caught.value.retry_after <= 30
    assert counter.count == 2


async def test_no_available_keys_is_retried_when_retry_after_fits(
    make_proxy: ProxyFactory, upstream: FakeUpstream, counted: Counted
) -> None:
    upstream.script("a", {"kind": "rate_limit", "headers": {"retry-after": "1"}}, {"kind": "ok"})
    client, counter = counted(make_proxy("a", retry_attempts=1).url, timeout=10.0)
    with pytest.raises(UpstreamError):
        await client.get("/v1/models")
    assert (await client.get("/v1/models"))["object"] == "chat.completion"
    assert counter.count == 3


async def test_payload_too_large_is_a_proxy_error(client: AsyncPoolSwitchClient) -> None:
    with pytest.raises(ProxyError) as caught:
        await client.put("/v1/files/1", content="x" * 5000)
    assert (caught.value.code, caught.value.status) == ("payload_too_large", 413)


async def test_stopped_proxy_raises_connection_error(make_proxy: ProxyFactory) -> None:
    proxy = make_proxy("a")
    async with AsyncPoolSwitchClient(proxy.url, max_retries=0) as client:
        await client.health()
        proxy.stop()
        with pytest.raises(ProxyConnectionError):
            await client.get("/v1/models")


async def test_connection_failures_are_retried(dead_url: str, counted: Counted) -> None:
    client, counter = counted(dead_url, max_retries=1)
    started = time.monotonic()
    with pytest.raises(ProxyConnectionError):
        await client.get("/v1/models")
    assert counter.count == 2
    assert time.monotonic() - started >= 0.5


async def test_slow_answer_raises_timeout_error(
    proxy: Proxy, upstream: FakeUpstream, counted: Counted
) -> None:
    script_all(upstream, {"kind": "ok", "delay": 1.0})
    client, counter = counted(proxy.url)
    with pytest.raises(ProxyTimeoutError):
        await client.get("/v1/models", timeout=0.3)
    assert counter.count == 1
