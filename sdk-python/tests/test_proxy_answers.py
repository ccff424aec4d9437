"""The wire contract the clients read, against scripted answers (httpx.MockTransport, no
network): the caller token on every request, and the proxy's own answers (429
`no_available_keys` with `x-should-retry`, 401, 403, 431, 503 `overloaded`) as `ProxyError`.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from poolswitch_client import AsyncPoolSwitchClient, PoolSwitchClient, ProxyError

TOKEN = "tok-caller-SECRET-789"


class Script:
    """A MockTransport handler: answers in order (the last one repeats), requests recorded."""

    def __init__(self, *answers: httpx.Response) -> None:
        self.answers = list(answers) or [httpx.Response(200, json={})]
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)


def proxy_answer(
    status: int,
    code: str,
    retry_after: float | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    error = {"type": "poolswitch_error", "code": code, "message": "m", "retry_after": retry_after}
    head = {"x-poolswitch-error": code, **(headers or {})}
    return httpx.Response(status, headers=head, json={"error": error})


def sync_client(script: Script, **options: Any) -> PoolSwitchClient:
    http = httpx.Client(transport=httpx.MockTransport(script))
    return PoolSwitchClient("http://proxy.test", http_client=http, **options)


def async_client(script: Script, **options: Any) -> AsyncPoolSwitchClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(script))
    return AsyncPoolSwitchClient("http://proxy.test", http_client=http, **options)


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
    client = sync_client(script, **({} if from_env else {"token": TOKEN}))
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


@pytest.mark.parametrize(
    ("answer", "code", "status", "retry_after"),
    [
        (proxy_answer(401, "unauthorized"), "unauthorized", 401, None),
        (proxy_answer(403, "forbidden"), "forbidden", 403, None),
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
    with pytest.raises(ProxyError):
        sync_client(script, timeout=None).get("/v1/models")
    assert len(script.requests) == 1


def test_exhaustion_with_x_should_retry_true_is_retried_after_its_wait() -> None:
    soon = proxy_answer(
        429, "no_available_keys", 0.0, {"retry-after": "0", "x-should-retry": "true"}
    )
    script = Script(soon, httpx.Response(200, json={"ok": True}))
    assert sync_client(script).get("/v1/models") == {"ok": True}
    assert len(script.requests) == 2


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
