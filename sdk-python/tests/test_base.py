"""Settings and request building shared by both clients (no network)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from poolswitch_client import USE_CLIENT_DEFAULT, AsyncPoolSwitchClient, PoolSwitchClient

# ---- settings ----


def test_defaults() -> None:
    with PoolSwitchClient("http://127.0.0.1:8080/") as client:
        assert (client.base_url, client.timeout, client.max_retries, client.pool) == (
            "http://127.0.0.1:8080",
            600.0,
            2,
            None,
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
        ({"pool": ""}, ValueError),
        ({"pool": " openai"}, ValueError),
        ({"pool": "a\r\nx-evil: 1"}, ValueError),
        ({"pool": "café"}, ValueError),
        ({"pool": 7}, TypeError),
        ({"random": 7}, TypeError),
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


def test_a_calls_timeout_and_pool_are_its_own_or_the_clients() -> None:
    with PoolSwitchClient("http://h", timeout=30.0, pool="openai") as client:
        assert client._timeout_for(USE_CLIENT_DEFAULT) == 30.0
        assert client._timeout_for(5) == 5.0
        assert client._timeout_for(None) is None  # no deadline for this call
        assert client._pool_for(USE_CLIENT_DEFAULT) == "openai"
        assert client._pool_for("anthropic") == "anthropic"
        assert client._pool_for(None) is None  # no pool header for this call
        with pytest.raises(ValueError):
            client._timeout_for(0)
        with pytest.raises(ValueError):
            client._pool_for("")
    with PoolSwitchClient("http://h", timeout=None) as client:
        assert client.timeout is None and client._timeout_for(USE_CLIENT_DEFAULT) is None


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
        "pool": None,
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
            **no_body(headers={"x-b": "2"}, pool="openai"),
        )
    assert request.headers["x-poolswitch-token"] == "t0k"
    assert request.headers["x-poolswitch-pool"] == "openai"
    assert request.headers["authorization"] == "old"  # the token has its own header
    assert (request.headers["x-a"], request.headers["x-b"]) == ("1", "2")
    assert request.headers["user-agent"].startswith("poolswitch-client-python/")


def test_the_calls_own_headers_win_over_the_pool() -> None:
    with PoolSwitchClient("http://h", pool="openai") as client:
        request = client._build_request(
            client._http, "GET", "/", **no_body(headers={"X-PoolSwitch-Pool": "mine"}, pool="x")
        )
    assert request.headers.get_list("x-poolswitch-pool") == ["mine"]
