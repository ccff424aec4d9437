"""PoolSwitchClient against scripted answers (httpx.MockTransport): calls, bodies, the pool
header, `send` raising on non-2xx, streams, and the call's deadline with its retries.

Behaviour that needs a real proxy lives in the conformance suite (conformance/cases).
"""

from __future__ import annotations

import gzip
import json
from typing import Any

import httpx
import pytest
from scripted import (
    URL,
    Clock,
    Fixed,
    Pieces,
    Script,
    proxy_answer,
    refused,
    relayed,
    sync_client,
)

from poolswitch_client import (
    PoolSwitchClient,
    ProxyConnectionError,
    ProxyError,
    ProxyResponse,
    ProxyTimeoutError,
    UpstreamError,
)

OK = relayed(200, {"object": "chat.completion"})


def echo(request: httpx.Request) -> httpx.Response:
    """The facts of the request, as the upstream would have seen them."""
    facts = {
        "method": request.method,
        "path": request.url.path,
        "query": request.url.query.decode(),
        "headers": dict(request.headers),
        "body": request.read().decode(),
    }
    return httpx.Response(200, json=facts)


# ---- calls and bodies ----


@pytest.mark.parametrize("verb", ["get", "post", "put", "patch", "delete"])
def test_each_verb_sends_its_method_path_query_headers_and_body(verb: str) -> None:
    client = sync_client(Script(echo))
    seen = getattr(client, verb)(
        "/v1/things/7", params={"q": "x y", "n": 2}, headers={"x-trace": "t-1"}, content=b"data"
    )
    assert (seen["method"], seen["path"], seen["query"]) == (
        verb.upper(),
        "/v1/things/7",
        "q=x+y&n=2",
    )
    assert (seen["headers"]["x-trace"], seen["body"]) == ("t-1", "data")


def test_request_sends_json_and_any_method() -> None:
    seen = sync_client(Script(echo)).request("OPTIONS", "v1/x", json={"a": [1, 2]})
    assert (seen["method"], seen["path"]) == ("OPTIONS", "/v1/x")
    assert seen["headers"]["content-type"] == "application/json"
    assert json.loads(seen["body"]) == {"a": [1, 2]}


@pytest.mark.parametrize(
    ("answer", "value"),
    [
        (httpx.Response(200, text="plain words, ünïcode"), "plain words, ünïcode"),
        (
            httpx.Response(200, content=b"\x00\x01", headers={"content-type": "image/png"}),
            b"\x00\x01",
        ),
        (
            httpx.Response(
                200,
                content=gzip.compress(b"\x00" * 70_000),
                headers={"content-type": "application/octet-stream", "content-encoding": "gzip"},
            ),
            b"\x00" * 70_000,
        ),
        (httpx.Response(204), None),
    ],
)
def test_bodies_come_back_by_kind(answer: httpx.Response, value: Any) -> None:
    assert sync_client(Script(answer)).get("/v1/x") == value


def test_send_returns_the_whole_answer() -> None:
    response = sync_client(Script(relayed(200, {"ok": 1}, "primary", 2))).send("POST", "/v1/x")
    assert isinstance(response, ProxyResponse)
    assert (response.status, response.key_id, response.attempts) == (200, "primary", 2)
    assert response.json() == {"ok": 1} and response.content == b'{"ok":1}'
    assert repr(response) == "<ProxyResponse [200] key_id='primary' attempts=2>"


def test_send_raises_a_relayed_non_2xx_as_upstream_error_and_never_retries_it() -> None:
    body = {"error": {"message": "'messages' is a required property.", "type": "invalid"}}
    script = Script(relayed(400, body, "b", 1), OK)
    with pytest.raises(UpstreamError) as caught:
        sync_client(script, max_retries=5).send("POST", "/v1/chat/completions", json={})
    err = caught.value
    assert (err.status, err.json, err.key_id, err.attempts) == (400, body, "b", 1)
    assert err.response is not None and err.response.json() == body
    assert "'messages' is a required property" in str(err)
    assert script.count == 1


def test_send_raises_a_proxy_made_answer_as_proxy_error() -> None:
    script = Script(proxy_answer(404, "no_such_pool"))
    with pytest.raises(ProxyError) as caught:
        sync_client(script).send("GET", "/nowhere/v1/models")
    assert (caught.value.code, caught.value.status, caught.value.retry_after) == (
        "no_such_pool",
        404,
        None,
    )


def test_builtin_endpoints_send_the_token_but_never_the_pool() -> None:
    health = {"status": "ok", "keys_available": 2, "keys_total": 2, "pools": []}
    script = Script(
        httpx.Response(200, json=health),
        httpx.Response(200, json={"storage": "memory", "pools": []}),
        httpx.Response(200, text="poolswitch_requests_total 1\n"),
    )
    client = sync_client(script, pool="openai", token="tok")
    assert client.health() == health
    assert client.status()["storage"] == "memory"
    assert "poolswitch_requests_total" in client.metrics()
    assert [r.url.path for r in script.requests] == ["/health", "/status", "/metrics"]
    for request in script.requests:
        assert "x-poolswitch-pool" not in request.headers
        assert request.headers["x-poolswitch-token"] == "tok"


def test_a_builtin_endpoint_that_is_not_an_object_is_an_error() -> None:
    with pytest.raises(Exception, match="expected a JSON object"):
        sync_client(Script(httpx.Response(200, json=[1]))).health()


# ---- the pool ----


def test_the_pool_goes_out_on_every_proxied_request() -> None:
    script = Script(OK)
    client = sync_client(script, pool="openai")
    client.get("/v1/models")
    client.send("POST", "/v1/chat/completions", json={})
    with client.stream("POST", "/v1/chat/completions", json={}) as stream:
        list(stream.iter_bytes())
    assert [r.headers["x-poolswitch-pool"] for r in script.requests] == ["openai"] * 3
    assert script.requests[0].url.path == "/v1/models"  # the path is not prefixed


def test_a_call_can_name_another_pool_or_none() -> None:
    script = Script(OK)
    client = sync_client(script, pool="openai")
    client.get("/v1/models", pool="anthropic")
    with client.stream("GET", "/v1/models", pool="gemini"):
        pass
    client.get("/anthropic/v1/models", pool=None)
    assert [r.headers.get("x-poolswitch-pool") for r in script.requests] == [
        "anthropic",
        "gemini",
        None,
    ]


def test_no_pool_no_header() -> None:
    script = Script(OK)
    sync_client(script).get("/v1/models")
    assert "x-poolswitch-pool" not in script.requests[0].headers


# ---- one deadline for the whole call ----


def test_the_default_deadline_is_600_s_for_the_whole_call() -> None:
    script = Script(proxy_answer(503, "overloaded", 3.0), OK)
    sync_client(script, random=Fixed(0.0)).get("/v1/models")
    assert [t["read"] for t in script.timeouts] == [600.0, 597.0]
    assert script.timeouts[1] == httpx.Timeout(597.0).as_dict()  # connect, write, pool too


def test_each_attempt_gets_what_is_left_of_a_calls_timeout() -> None:
    script = Script(proxy_answer(429, "caller_rate_limited", 2.0), refused(), OK)
    client = sync_client(script, timeout=60.0, random=Fixed(0.0))
    client.get("/v1/models", timeout=10.0)
    assert [t["read"] for t in script.timeouts] == [10.0, 8.0, 7.5]  # backoff n=1: 1 s * 0.5


def test_without_a_deadline_no_attempt_has_a_timeout() -> None:
    script = Script(proxy_answer(503, "upstream_unavailable", 1.0), OK)
    sync_client(script, timeout=None).get("/v1/models")
    assert script.timeouts == [httpx.Timeout(None).as_dict()] * 2


def test_a_call_can_have_no_deadline_of_its_own() -> None:
    script = Script(OK)
    sync_client(script, timeout=5.0).get("/v1/models", timeout=None)
    assert script.timeouts == [httpx.Timeout(None).as_dict()]


def test_the_deadline_covers_reading_the_body() -> None:
    clock = Clock()

    def slow(request: httpx.Request) -> httpx.Response:
        def tick(_: int) -> None:
            clock.now += 4.0

        return httpx.Response(200, stream=Pieces([b'{"a":', b" 1", b"}"], tick))

    with pytest.raises(ProxyTimeoutError, match="timeout ran out"):
        sync_client(Script(slow), clock, timeout=10.0).get("/v1/models")
    assert sync_client(Script(slow), Clock(), timeout=13.0).get("/v1/models") == {"a": 1}


def test_a_wait_past_the_deadline_raises_the_last_error_at_once() -> None:
    clock = Clock()
    script = Script(proxy_answer(503, "overloaded", 3.0), OK)
    with pytest.raises(ProxyError) as caught:
        sync_client(script, clock, timeout=3.0).get("/v1/models")
    assert (caught.value.code, script.count, clock.sleeps) == ("overloaded", 1, [])


def test_connection_failures_are_retried_with_jittered_backoff() -> None:
    clock = Clock()
    script = Script(refused())
    with pytest.raises(ProxyConnectionError, match="cannot connect to the proxy"):
        sync_client(script, clock, random=Fixed(1.0)).get("/v1/models")
    assert (script.count, clock.sleeps) == (3, [0.5, 1.0])
    clock = Clock()
    script = Script(httpx.RemoteProtocolError("Server disconnected"), OK)
    assert sync_client(script, clock, random=Fixed(0.0)).get("/v1/models") == {
        "object": "chat.completion"
    }
    assert clock.sleeps == [0.25]


def test_max_retries_0_sends_once() -> None:
    script = Script(refused())
    with pytest.raises(ProxyConnectionError):
        sync_client(script, max_retries=0).get("/v1/models")
    assert script.count == 1


def test_timeouts_are_not_retried() -> None:
    script = Script(httpx.ReadTimeout("timed out"), OK)
    with pytest.raises(ProxyTimeoutError, match="timed out waiting for the proxy"):
        sync_client(script, max_retries=5).get("/v1/models")
    assert script.count == 1


def test_a_body_that_breaks_is_a_connection_error_and_not_retried() -> None:
    def cut(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=Pieces([b"{"], error=httpx.ReadError("reset")))

    script = Script(cut, OK)
    with pytest.raises(ProxyConnectionError):
        sync_client(script).get("/v1/models")
    assert script.count == 1


# ---- streams ----

SSE = [b"data: one\n\n", b"event: x\nid: 7\ndata: two\n", b"data: 2b\n\n", b"data: [DONE]\n\n"]


def sse(*, error: Exception | None = None) -> httpx.Response:
    head = {"content-type": "text/event-stream", "x-poolswitch-key-id": "a"}
    return httpx.Response(200, headers=head, stream=Pieces(SSE, error=error))


def test_stream_yields_events_as_they_come() -> None:
    client = sync_client(Script(lambda _: sse()))
    with client.stream("POST", "/v1/chat/completions", json={"stream": True}) as stream:
        assert (stream.status, stream.key_id) == (200, "a")
        got = [(e.event, e.id, e.data) for e in stream]
    assert got == [("message", None, "one"), ("x", "7", "two\n2b"), ("message", "7", "[DONE]")]


def test_stream_iter_bytes() -> None:
    with sync_client(Script(lambda _: sse())).stream("GET", "/v1/events") as stream:
        assert list(stream.iter_bytes()) == SSE


def test_a_stream_raises_an_error_answer_before_yielding() -> None:
    for answer, cls in (
        (relayed(400), UpstreamError),
        (proxy_answer(403, "forbidden"), ProxyError),
    ):
        client = sync_client(Script(answer))
        with pytest.raises(cls), client.stream("POST", "/v1/x"):
            pytest.fail("an error answer must not be yielded")


def test_a_stream_retries_like_a_call_then_waits_up_to_timeout_between_pieces() -> None:
    clock = Clock()
    script = Script(proxy_answer(503, "overloaded", 4.0), lambda _: sse())
    client = sync_client(script, clock, timeout=10.0, random=Fixed(0.0))
    with client.stream("GET", "/v1/events") as stream:
        assert [t["read"] for t in script.timeouts] == [10.0, 6.0]  # the head: within the deadline
        # then each piece may take up to the whole timeout: the deadline is over for a stream
        assert script.requests[-1].extensions["timeout"] == httpx.Timeout(10.0).as_dict()
        clock.now += 60.0
        assert len(list(stream)) == 3


def test_a_stream_cut_mid_way_is_a_connection_error() -> None:
    client = sync_client(Script(lambda _: sse(error=httpx.RemoteProtocolError("incomplete"))))
    data: list[str] = []
    with pytest.raises(ProxyConnectionError), client.stream("GET", "/v1/events") as stream:
        data.extend(event.data for event in stream)
    assert data == ["one", "two\n2b", "[DONE]"]


# ---- the http client ----


def test_close_leaves_a_callers_http_client_open() -> None:
    http = httpx.Client(transport=httpx.MockTransport(Script(OK)))
    with PoolSwitchClient(URL, http_client=http) as client:
        client.get("/v1/models")
    assert not http.is_closed
    http.close()
    with PoolSwitchClient(URL) as own:
        pass
    assert own._http.is_closed
