"""Settings, request building and retry decisions shared by both clients (no network)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from poolswitch_client import (
    AsyncPoolSwitchClient,
    PoolSwitchClient,
    ProxyConnectionError,
    ProxyError,
    ProxyResponse,
    ProxyTimeoutError,
    UpstreamError,
)
from poolswitch_client._base import RetryPolicy

# ---- settings ----


def test_defaults() -> None:
    with PoolSwitchClient("http://127.0.0.1:8080/") as client:
        assert (client.base_url, client.timeout, client.max_retries) == (
            "http://127.0.0.1:8080",
            60.0,
            2,
        )


@pytest.mark.parametrize(
    "url",
    ["127.0.0.1:8080", "ftp://host", "http://", "http://h/?q=1", "http://h/#f", "http://h:x/"],
)
def test_bad_base_urls(url: str) -> None:
    with pytest.raises(ValueError, match="base_url"):
        PoolSwitchClient(url)


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"timeout": 0}, ValueError),
        ({"timeout": -1.0}, ValueError),
        ({"timeout": float("nan")}, ValueError),
        ({"timeout": True}, TypeError),
        ({"timeout": "5"}, TypeError),
        ({"max_retries": -1}, ValueError),
        ({"max_retries": 1.5}, ValueError),
        ({"token": ""}, ValueError),
        ({"token": " t"}, ValueError),
        ({"token": "a\nb"}, ValueError),
    ],
)
def test_bad_settings(options: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        PoolSwitchClient("http://127.0.0.1:8080", **options)


def test_each_client_wants_its_own_kind_of_http_client() -> None:
    with httpx.Client() as http, pytest.raises(TypeError, match="AsyncClient"):
        AsyncPoolSwitchClient("http://127.0.0.1:8080", http_client=http)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"httpx\.Client"):
        PoolSwitchClient("http://127.0.0.1:8080", http_client=httpx.AsyncClient())  # type: ignore[arg-type]


def test_no_timeout() -> None:
    with PoolSwitchClient("http://h", timeout=None) as client:
        timeout = client._timeout_for(None)
        request = client._build_request(client._http, "GET", "/", **no_body(timeout=timeout))
    assert timeout is None
    assert request.extensions["timeout"] == httpx.Timeout(None).as_dict()


def test_secrets_never_show() -> None:
    client = PoolSwitchClient("http://user:hunter2@h:1/gw", token="tok-SECRET")
    assert client.base_url == "http://[secure]@h:1/gw"
    assert repr(client) == "PoolSwitchClient(base_url='http://[secure]@h:1/gw')"
    assert "SECRET" not in repr(vars(client)) and "hunter2" not in repr(client)
    client.close()


# ---- request building ----


def no_body(**overrides: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "json": None,
        "params": None,
        "headers": None,
        "content": None,
        "timeout": 5.0,
    }
    options.update(overrides)
    return options


@pytest.mark.parametrize(
    ("base_url", "path", "url"),
    [
        ("http://h:1", "/v1/models", "http://h:1/v1/models"),
        ("http://h:1/", "v1/models", "http://h:1/v1/models"),
        ("https://gw.example/openai/", "/v1/x?a=1", "https://gw.example/openai/v1/x?a=1"),
    ],
)
def test_url_keeps_the_base_path(base_url: str, path: str, url: str) -> None:
    with PoolSwitchClient(base_url) as client:
        request = client._build_request(client._http, "get", path, **no_body())
    assert (request.method, str(request.url)) == ("GET", url)


def test_absolute_urls_are_refused_as_paths() -> None:
    with PoolSwitchClient("http://h") as client, pytest.raises(ValueError, match="relative"):
        client._build_request(client._http, "GET", "http://elsewhere/x", **no_body())


def test_json_and_content_are_exclusive() -> None:
    with PoolSwitchClient("http://h") as client, pytest.raises(TypeError):
        client._build_request(client._http, "POST", "/", **no_body(json={}, content=b"x"))


def test_token_comes_from_the_environment_unless_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POOLSWITCH_TOKEN", "tok-ENV-SECRET")
    with PoolSwitchClient("http://h") as client, PoolSwitchClient("http://h", token="mine") as own:
        from_env = client._build_request(client._http, "GET", "/", **no_body())
        given = own._build_request(own._http, "GET", "/", **no_body())
        assert "ENV-SECRET" not in repr(client) + repr(vars(client))
    assert from_env.headers["x-poolswitch-token"] == "tok-ENV-SECRET"
    assert given.headers["x-poolswitch-token"] == "mine"
    monkeypatch.setenv("POOLSWITCH_TOKEN", "")
    with PoolSwitchClient("http://h") as client:
        request = client._build_request(client._http, "GET", "/", **no_body())
    assert "x-poolswitch-token" not in request.headers


def test_an_invalid_token_in_the_environment_is_named_not_shown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("POOLSWITCH_TOKEN", " tok-ENV-SECRET\n")
    with pytest.raises(ValueError, match=r"^POOLSWITCH_TOKEN: ") as caught:
        AsyncPoolSwitchClient("http://h")
    assert "SECRET" not in str(caught.value)


def test_headers_merge_client_then_token_then_call() -> None:
    with PoolSwitchClient(
        "http://h", token="t0k", headers={"Authorization": "old", "X-A": "1", "X-B": "1"}
    ) as client:
        request = client._build_request(
            client._http,
            "GET",
            "/",
            **no_body(headers={"x-b": "2"}, timeout=client._timeout_for(None)),
        )
    assert request.headers["x-poolswitch-token"] == "t0k"
    assert request.headers["authorization"] == "old"  # the token has its own header
    assert (request.headers["x-a"], request.headers["x-b"]) == ("1", "2")
    assert request.headers["user-agent"].startswith("poolswitch-client-python/")
    assert request.extensions["timeout"] == httpx.Timeout(60.0).as_dict()


# ---- retry decisions ----


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def connect_error() -> httpx.ConnectError:
    return httpx.ConnectError("refused", request=httpx.Request("GET", "http://h/"))


def proxy_answer(
    code: str, retry_after: float | None, status: int = 503, should_retry: str | None = None
) -> ProxyResponse:
    error = {"type": "poolswitch_error", "code": code, "message": "m", "retry_after": retry_after}
    headers = {"x-poolswitch-error": code}
    if should_retry is not None:
        headers["x-should-retry"] = should_retry
    return ProxyResponse(httpx.Response(status, headers=headers, json={"error": error}))


def test_connection_failures_back_off_exponentially_up_to_max_retries() -> None:
    policy = RetryPolicy(6, None, clock=Clock())
    delays = [policy.after_failure(connect_error()) for _ in range(6)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    with pytest.raises(ProxyConnectionError) as caught:
        policy.after_failure(connect_error())
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert policy.retries == 6


def test_connection_retries_must_fit_the_timeout() -> None:
    clock = Clock()
    policy = RetryPolicy(5, 2.0, clock=clock)
    assert policy.after_failure(connect_error()) == 0.5
    clock.now += 0.5
    assert policy.after_failure(connect_error()) == 1.0
    clock.now += 1.0
    with pytest.raises(ProxyConnectionError):
        policy.after_failure(connect_error())  # 2 s more would end past the 2 s timeout


@pytest.mark.parametrize(
    ("exc", "cls"),
    [
        (httpx.ReadError("reset"), ProxyConnectionError),
        (httpx.RemoteProtocolError("cut"), ProxyConnectionError),
        (httpx.ConnectTimeout("slow"), ProxyTimeoutError),
        (httpx.ReadTimeout("slow"), ProxyTimeoutError),
    ],
)
def test_other_failures_are_never_retried(exc: httpx.HTTPError, cls: type[Exception]) -> None:
    with pytest.raises(cls):
        RetryPolicy(5, None).after_failure(exc)


def test_no_available_keys_is_retried_when_it_fits() -> None:
    clock = Clock()
    policy = RetryPolicy(2, 10.0, clock=clock)
    assert policy.after_error(proxy_answer("no_available_keys", 3)) == 3.0
    clock.now += 3
    assert policy.after_error(proxy_answer("no_available_keys", 6)) == 6.0
    clock.now += 6
    with pytest.raises(ProxyError):  # out of retries
        policy.after_error(proxy_answer("no_available_keys", 0))


@pytest.mark.parametrize(
    "response",
    [
        proxy_answer("no_available_keys", 2.0, 429, "true"),
        proxy_answer("no_available_keys", 0.0, 429, "true"),
        proxy_answer("no_available_keys", 60.0, 429),  # the longest wait the client takes
        proxy_answer("overloaded", 1.0, 503, "true"),
        proxy_answer("upstream_unavailable", 1.0, 503, "true"),
    ],
)
def test_proxy_answers_that_may_be_retried(response: ProxyResponse) -> None:
    policy = RetryPolicy(2, None, clock=Clock())
    assert policy.after_error(response) == response.json()["error"]["retry_after"]
    assert policy.retries == 1


@pytest.mark.parametrize(
    "response",
    [
        proxy_answer("no_available_keys", 2.0, 429, "false"),  # the proxy says: do not
        proxy_answer("no_available_keys", 2.0, 429, " FALSE "),
        proxy_answer("no_available_keys", 3600.0, 429, "false"),
        proxy_answer("no_available_keys", 60.5, 429),  # over MAX_RETRY_WAIT: raised at once
        proxy_answer("no_available_keys", 2617953.0, 503),  # a month, from an older proxy
        proxy_answer("overloaded", 1.0, 503, "false"),
        proxy_answer("unauthorized", 1.0, 401, "true"),  # only the three codes are retried
        proxy_answer("headers_too_large", None, 431),
    ],
)
def test_proxy_answers_that_are_raised_at_once_even_without_a_timeout(
    response: ProxyResponse,
) -> None:
    policy = RetryPolicy(5, None, clock=Clock())
    with pytest.raises(ProxyError) as caught:
        policy.after_error(response)
    assert (caught.value.status, policy.retries) == (response.status, 0)


@pytest.mark.parametrize(
    "response",
    [
        proxy_answer("no_available_keys", 10.0),  # does not fit in the 10 s timeout
        proxy_answer("no_available_keys", None),  # no key returns by itself
        proxy_answer("upstream_unreachable", 1.0, 502),
        proxy_answer("upstream_timeout", 1.0, 504),
    ],
)
def test_other_proxy_errors_are_not_retried(response: ProxyResponse) -> None:
    with pytest.raises(ProxyError):
        RetryPolicy(2, 10.0, clock=Clock()).after_error(response)


def test_upstream_errors_are_never_retried() -> None:
    response = ProxyResponse(httpx.Response(429, headers={"retry-after": "1"}, json={}))
    with pytest.raises(UpstreamError):
        RetryPolicy(5, None).after_error(response)
