"""AsyncPoolSwitchClient against scripted answers: the twins of test_client.py's checks."""

from __future__ import annotations

import httpx
import pytest
from scripted import URL, Clock, Fixed, Pieces, Script, async_client, proxy_answer, refused, relayed
from test_client import OK, SSE, echo, sse

from poolswitch_client import (
    AsyncPoolSwitchClient,
    AsyncProxyStream,
    ProxyConnectionError,
    ProxyError,
    ProxyTimeoutError,
    UpstreamError,
)

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("verb", ["get", "post", "put", "patch", "delete"])
async def test_each_verb_sends_its_method_and_body(verb: str) -> None:
    client = async_client(Script(echo))
    seen = await getattr(client, verb)("/v1/things", params={"q": "1"}, json={"n": 1})
    assert (seen["method"], seen["path"], seen["query"]) == (verb.upper(), "/v1/things", "q=1")
    assert seen["headers"]["content-type"] == "application/json"


async def test_request_text_binary_and_empty_bodies() -> None:
    blob = httpx.Response(200, content=b"\x00", headers={"content-type": "image/png"})
    script = Script(httpx.Response(200, text="hello"), blob, httpx.Response(204))
    client = async_client(script)
    assert [await client.request("GET", f"/{i}") for i in range(3)] == ["hello", b"\x00", None]


async def test_send_returns_the_whole_answer_or_raises() -> None:
    client = async_client(Script(relayed(200, {"ok": 1}, "b", 1), relayed(503, {}, "a", 3)))
    response = await client.send("GET", "/v1/models")
    assert (response.status, response.key_id, response.attempts) == (200, "b", 1)
    with pytest.raises(UpstreamError) as caught:  # an upstream 503 is never a proxy 503
        await client.send("GET", "/v1/models")
    assert (caught.value.status, caught.value.key_id, caught.value.attempts) == (503, "a", 3)


async def test_the_pool_goes_to_proxied_requests_only() -> None:
    health = {"status": "ok", "keys_available": 1, "keys_total": 1, "pools": []}
    script = Script(OK, OK, OK, httpx.Response(200, json=health))
    client = async_client(script, pool="openai")
    await client.get("/v1/models")
    await client.get("/v1/models", pool="anthropic")
    async with client.stream("GET", "/v1/models", pool=None):
        pass
    assert await client.health() == health
    assert [r.headers.get("x-poolswitch-pool") for r in script.requests] == [
        "openai",
        "anthropic",
        None,
        None,
    ]


async def test_each_attempt_gets_what_is_left_of_the_deadline() -> None:
    clock = Clock()
    script = Script(proxy_answer(503, "no_available_keys", 5.0), refused(), OK)
    client = async_client(script, clock, timeout=20.0, random=Fixed(0.0))
    assert await client.get("/v1/models") == {"object": "chat.completion"}
    assert [t["read"] for t in script.timeouts] == [20.0, 15.0, 14.5]
    assert clock.sleeps == [5.0, 0.5]


async def test_the_deadline_covers_reading_the_body() -> None:
    clock = Clock()

    def slow(request: httpx.Request) -> httpx.Response:
        def tick(_: int) -> None:
            clock.now += 6.0

        return httpx.Response(200, stream=Pieces([b"{", b"}"], tick))

    with pytest.raises(ProxyTimeoutError):
        await async_client(Script(slow), clock, timeout=10.0).get("/v1/models")


async def test_no_unbounded_wait_without_a_deadline() -> None:
    clock = Clock()
    far = proxy_answer(429, "no_available_keys", 3600.0, {"x-should-retry": "false"})
    script = Script(far, OK)
    with pytest.raises(ProxyError):
        await async_client(script, clock, timeout=None, max_retries=5).get("/v1/models")
    assert (script.count, clock.sleeps) == (1, [])


async def test_connection_failures_are_retried_then_raised() -> None:
    clock = Clock()
    script = Script(refused())
    with pytest.raises(ProxyConnectionError):
        await async_client(script, clock, max_retries=1, random=Fixed(1.0)).get("/v1/models")
    assert (script.count, clock.sleeps) == (2, [0.5])


async def test_timeouts_are_not_retried() -> None:
    script = Script(httpx.ReadTimeout("timed out"), OK)
    with pytest.raises(ProxyTimeoutError):
        await async_client(script).get("/v1/models", timeout=0.3)
    assert script.count == 1


async def test_stream_events_bytes_errors_and_cuts() -> None:
    client = async_client(Script(lambda _: sse()))
    async with client.stream("POST", "/v1/chat/completions", json={}) as stream:
        assert isinstance(stream, AsyncProxyStream) and stream.key_id == "a"
        assert [e.data async for e in stream] == ["one", "two\n2b", "[DONE]"]
    async with client.stream("GET", "/v1/events") as stream:
        assert [chunk async for chunk in stream.aiter_bytes()] == SSE
    with pytest.raises(ProxyError):
        async with async_client(Script(proxy_answer(403, "forbidden"))).stream("GET", "/"):
            pytest.fail("an error answer must not be yielded")
    cut = async_client(Script(lambda _: sse(error=httpx.ReadError("reset"))))
    data: list[str] = []
    with pytest.raises(ProxyConnectionError):
        async with cut.stream("GET", "/v1/events") as stream:
            async for event in stream:
                data.append(event.data)
    assert data == ["one", "two\n2b", "[DONE]"]


async def test_close_leaves_a_callers_http_client_open() -> None:
    async with httpx.AsyncClient(transport=httpx.MockTransport(Script(OK))) as http:
        async with AsyncPoolSwitchClient(URL, http_client=http) as client:
            await client.get("/v1/models")
        assert not http.is_closed
    own = AsyncPoolSwitchClient(URL)
    await own.close()
    assert own._http.is_closed
