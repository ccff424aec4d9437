"""The wire contract the clients read, against scripted answers (httpx.MockTransport, no
network): the caller token on every request, and the proxy's own answers (every code, 429
`no_available_keys` and `caller_rate_limited` with `x-should-retry`) as `ProxyError`.
"""

from __future__ import annotations

import httpx
import pytest
from scripted import Clock, Script, async_client, proxy_answer, sync_client

from poolswitch_client import ErrorCode, PoolSwitchClient, ProxyError

TOKEN = "tok-caller-SECRET-789"


def assert_no_token(*things: object) -> None:
    for thing in things:
        shown = repr(thing) + str(thing) + repr(getattr(thing, "__dict__", {}))
        assert TOKEN not in shown and "SECRET" not in shown, shown


# ---- the caller token ----


def every_call(client: PoolSwitchClient) -> None:
    client.get("/v1/models")
    client.post("/v1/chat/completions", json={})
    client.send("DELETE", "/v1/files/1")
    with client.stream("POST", "/v1/chat/completions", json={}) as stream:
        b"".join(stream.iter_bytes())
    client.health()
    client.status()
    client.metrics()


@pytest.mark.parametrize("from_env", [False, True])
def test_the_token_goes_out_as_x_poolswitch_token_on_every_request(
    monkeypatch: pytest.MonkeyPatch, from_env: bool
) -> None:
    script = Script()
    if from_env:
        monkeypatch.setenv("POOLSWITCH_TOKEN", TOKEN)
    client = sync_client(script) if from_env else sync_client(script, token=TOKEN)
    every_call(client)
    assert len(script.requests) == 7
    for request in script.requests:
        assert request.headers["x-poolswitch-token"] == TOKEN
        assert "authorization" not in request.headers
    assert_no_token(client)


def test_without_a_token_no_token_header_is_sent() -> None:
    script = Script()
    every_call(sync_client(script))
    assert all("x-poolswitch-token" not in r.headers for r in script.requests)


@pytest.mark.anyio
async def test_the_async_client_sends_the_token_on_every_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("POOLSWITCH_TOKEN", TOKEN)
    script = Script()
    client = async_client(script)
    await client.get("/v1/models")
    async with client.stream("GET", "/v1/events") as stream:
        [chunk async for chunk in stream.aiter_bytes()]
    await client.health()
    await client.status()
    await client.metrics()
    assert [r.headers["x-poolswitch-token"] for r in script.requests] == [TOKEN] * 5
    assert_no_token(client)


def test_the_token_never_shows_in_an_error() -> None:
    script = Script(proxy_answer(401, "unauthorized"))
    with pytest.raises(ProxyError) as caught:
        sync_client(script, token=TOKEN).get("/v1/models")
    assert caught.value.code == "unauthorized"
    assert_no_token(caught.value, caught.value.response)


# ---- proxy answers ----


STATUS_OF = {
    ErrorCode.NO_AVAILABLE_KEYS: 429,
    ErrorCode.UPSTREAM_UNAVAILABLE: 503,
    ErrorCode.OVERLOADED: 503,
    ErrorCode.UPSTREAM_UNREACHABLE: 502,
    ErrorCode.UPSTREAM_TIMEOUT: 504,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.BAD_REQUEST: 400,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.HEADERS_TOO_LARGE: 431,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.NO_SUCH_POOL: 404,
    ErrorCode.CALLER_RATE_LIMITED: 429,
    ErrorCode.INTERNAL_ERROR: 500,
}


def test_every_code_has_its_status() -> None:
    assert set(STATUS_OF) == ErrorCode.ALL


@pytest.mark.parametrize("code", sorted(ErrorCode.ALL))
def test_every_proxy_code_is_a_proxy_error_from_send(code: str) -> None:
    script = Script(proxy_answer(STATUS_OF[code], code, None, {"x-should-retry": "false"}))
    with pytest.raises(ProxyError) as caught:
        sync_client(script).send("POST", "/v1/chat/completions", json={})
    assert (caught.value.code, caught.value.status) == (code, STATUS_OF[code])
    assert script.count == 1


@pytest.mark.parametrize(
    ("answer", "code", "status", "retry_after"),
    [
        (proxy_answer(401, "unauthorized"), "unauthorized", 401, None),
        (proxy_answer(403, "forbidden"), "forbidden", 403, None),
        (proxy_answer(404, "no_such_pool"), "no_such_pool", 404, None),
        (
            proxy_answer(
                429, "caller_rate_limited", 0.25, {"retry-after": "1", "x-should-retry": "true"}
            ),
            "caller_rate_limited",
            429,
            0.25,
        ),
        (proxy_answer(431, "headers_too_large"), "headers_too_large", 431, None),
        (
            proxy_answer(503, "overloaded", 1.0, {"retry-after": "1", "x-should-retry": "true"}),
            "overloaded",
            503,
            1.0,
        ),
        (
            proxy_answer(429, "no_available_keys", 2617953.5, {"x-should-retry": "false"}),
            "no_available_keys",
            429,
            2617953.5,
        ),
        (
            proxy_answer(429, "no_available_keys", None, {"x-should-retry": "false"}),
            "no_available_keys",
            429,
            None,
        ),
    ],
)
def test_proxy_answers_are_proxy_errors(
    answer: httpx.Response, code: str, status: int, retry_after: float | None
) -> None:
    script = Script(answer)
    with pytest.raises(ProxyError) as caught:
        sync_client(script, max_retries=0).post("/v1/chat/completions", json={})
    err = caught.value
    assert (err.code, err.status, err.retry_after) == (code, status, retry_after)
    assert "e+" not in str(err)  # 2617953.5 s reads as such, not 2.61795e+06
    assert err.response is not None and err.response.status == status


@pytest.mark.parametrize("timeout", [None, 600.0])
def test_exhaustion_with_x_should_retry_false_is_raised_at_once(timeout: float | None) -> None:
    far = proxy_answer(429, "no_available_keys", 3600.0, {"x-should-retry": "false"})
    script = Script(far, httpx.Response(200, json={}))
    with pytest.raises(ProxyError) as caught:
        sync_client(script, timeout=timeout, max_retries=5).get("/v1/models")
    assert (caught.value.code, caught.value.status, caught.value.retry_after) == (
        "no_available_keys",
        429,
        3600.0,
    )
    assert len(script.requests) == 1
    assert str(caught.value) == "m (no_available_keys, HTTP 429, retry after 3600s)"


def test_a_wait_over_60_s_is_never_taken_even_without_x_should_retry() -> None:
    old = proxy_answer(503, "no_available_keys", 90.0, {"retry-after": "90"})
    script = Script(old, httpx.Response(200, json={}))
    clock = Clock()
    with pytest.raises(ProxyError):
        sync_client(script, clock, timeout=None).get("/v1/models")
    assert len(script.requests) == 1
    assert clock.sleeps == []  # the unbounded wait of timeout=None is gone


def test_exhaustion_with_x_should_retry_true_is_retried_after_its_wait() -> None:
    soon = proxy_answer(
        429, "no_available_keys", 0.0, {"retry-after": "0", "x-should-retry": "true"}
    )
    script = Script(soon, httpx.Response(200, json={"ok": True}))
    assert sync_client(script).get("/v1/models") == {"ok": True}
    assert len(script.requests) == 2


def test_caller_rate_limited_is_retried_after_its_retry_after() -> None:
    limited = proxy_answer(
        429, "caller_rate_limited", 1.4, {"retry-after": "2", "x-should-retry": "true"}
    )
    clock = Clock()
    script = Script(limited, httpx.Response(200, json={"ok": True}))
    assert sync_client(script, clock).get("/v1/models") == {"ok": True}
    assert script.count == 2
    [wait] = clock.sleeps
    assert 2.0 <= wait <= 2.2  # Retry-After (whole seconds) times U(1.0, 1.1)


def test_caller_rate_limited_over_60_s_is_raised_at_once() -> None:
    limited = proxy_answer(429, "caller_rate_limited", 90.0, {"x-should-retry": "false"})
    clock = Clock()
    script = Script(limited, httpx.Response(200, json={}))
    with pytest.raises(ProxyError) as caught:
        sync_client(script, clock, timeout=None, max_retries=5).get("/v1/models")
    assert (caught.value.code, caught.value.retry_after) == ("caller_rate_limited", 90.0)
    assert (script.count, clock.sleeps) == (1, [])


@pytest.mark.anyio
async def test_the_async_client_obeys_x_should_retry() -> None:
    far = proxy_answer(429, "no_available_keys", 3600.0, {"x-should-retry": "false"})
    soon = proxy_answer(503, "upstream_unavailable", 0.0, {"x-should-retry": "true"})
    script = Script(soon, far, httpx.Response(200, json={}))
    client = async_client(script, token=TOKEN, timeout=None, max_retries=5)
    with pytest.raises(ProxyError) as caught:
        await client.get("/v1/models")
    assert (caught.value.code, caught.value.status) == ("no_available_keys", 429)
    assert len(script.requests) == 2
    assert_no_token(caught.value)


def test_a_stream_raises_exhaustion_before_anything_is_read() -> None:
    far = proxy_answer(429, "no_available_keys", None, {"x-should-retry": "false"})
    script = Script(far)
    client = sync_client(script)
    with pytest.raises(ProxyError) as caught, client.stream("POST", "/v1/x", json={}):
        pytest.fail("the stream must not open")
    assert caught.value.status == 429
    assert len(script.requests) == 1
