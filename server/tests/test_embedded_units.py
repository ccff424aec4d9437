"""The embedded clients' pure parts: options -> PoolConfig (the server's messages), httpx's
failures as the server's, pool-made errors as the envelope, the sync drain of redact.py's
error stream, verify.py's two steps; and what importing the package pulls in."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from poolswitch.classifier import KEY_INVALID
from poolswitch.embedded._answers import drain, in_memory, pool_error
from poolswitch.embedded._effects import transport_error
from poolswitch.embedded._options import DEFAULT, key_entries, pool_config
from poolswitch.envelope import error_response
from poolswitch.errors import (
    ConfigError,
    ConnectError,
    NoAvailableKeys,
    ReadTimeout,
    TransportError,
    UpstreamTimeout,
)
from poolswitch.redact import Redactor
from poolswitch.verify import INVALID, VALID, Confirming, Judgement, Verifier
from poolswitch_client import ProxyError

SECRET = "sk-live-0123456789abcdef"
URL = "https://api.openai.com"


@pytest.mark.parametrize(
    ("keys", "entries"),
    [
        (["x1", "x2"], [{"id": "key-1", "value": "x1"}, {"id": "key-2", "value": "x2"}]),
        (
            [{"id": "main", "value": "x1", "weight": 3}],
            [{"id": "main", "value": "x1", "weight": 3}],
        ),
        (
            ["x1", {"id": "b", "value": "x2"}],
            [{"id": "key-1", "value": "x1"}, {"id": "b", "value": "x2"}],
        ),
        ([7], [7]),  # left for the schema to name
        ("x1", "x1"),  # a string is not a list of keys
    ],
)
def test_key_entries(keys: Any, entries: Any) -> None:
    assert key_entries(keys) == entries


def test_options_make_the_servers_pool_config() -> None:
    config = pool_config(
        {
            "upstream_base_url": URL,
            "keys": [SECRET, {"id": "spare", "value": SECRET + "x", "weight": 2}],
            "strategy": "quota_failover",
            "auth_scheme": None,
            "attempt_timeout_seconds": None,
            "on_status": [{"status": 400, "match": "quota", "action": "cooldown 60"}],
            "retry_attempts": DEFAULT,
        }
    )
    assert (config.name, config.route, config.strategy, config.retry_attempts) == (
        "default",
        "/",
        "quota_failover",
        3,
    )
    assert [k.id for k in config.keys] == ["key-1", "spare"]
    assert config.auth_scheme is None and config.on_status[0].seconds == 60
    assert SECRET not in repr(config)


@pytest.mark.parametrize(
    ("options", "problems"),
    [
        ({"keys": [SECRET]}, ["upstream_base_url: missing"]),
        ({"upstream_base_url": URL, "keys": []}, ["keys: must be a non-empty list"]),
        ({"upstream_base_url": URL, "keys": SECRET}, ["keys: must be a non-empty list"]),
        (
            {"upstream_base_url": URL, "keys": [SECRET, SECRET]},
            ["keys[1].value: same value as keys[0]"],
        ),
        ({"upstream_base_url": URL, "keys": [f"{SECRET} x"]}, ["keys[0].value: must not contain"]),
        ({"upstream_base_url": f"ftp://{SECRET}@h", "keys": ["k"]}, ["upstream_base_url: must be"]),
        (
            {"upstream_base_url": URL, "keys": ["k"], "strategy": SECRET},
            ["strategy: unknown value"],
        ),
        (
            {"upstream_base_url": URL, "keys": ["k"], "retry_attempts": 0},
            ["retry_attempts: must be"],
        ),
        (
            {"upstream_base_url": URL, "keys": ["k"], "cooldown_seconds": "1h"},
            ["cooldown_seconds:"],
        ),
        (
            {"upstream_base_url": URL, "keys": ["k"], "auth_header_name": "a b"},
            ["auth_header_name:"],
        ),
        (
            {"upstream_base_url": URL, "keys": ["k"], "on_status": [{"status": 999}]},
            ["on_status[0]"],
        ),
    ],
)
def test_a_bad_option_gets_the_servers_message_naming_it(
    options: dict[str, Any], problems: list[str]
) -> None:
    with pytest.raises(ConfigError) as caught:
        pool_config(options)
    lines = caught.value.problems
    for line, problem in zip(lines, problems, strict=False):
        assert line.startswith(problem), lines
    assert len(lines) >= len(problems)
    assert SECRET not in str(caught.value)


REQUEST = httpx.Request("GET", "https://h/x?key=" + SECRET)


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (httpx.ConnectError("refused", request=REQUEST), ConnectError),
        (httpx.ConnectTimeout("slow", request=REQUEST), ConnectError),
        (httpx.PoolTimeout("full", request=REQUEST), ConnectError),
        (httpx.ReadTimeout("late", request=REQUEST), ReadTimeout),
        (httpx.WriteTimeout("late", request=REQUEST), ReadTimeout),
        (httpx.ReadError("reset", request=REQUEST), TransportError),
        (httpx.RemoteProtocolError("cut", request=REQUEST), TransportError),
    ],
)
def test_httpx_failures_as_the_servers(exc: httpx.HTTPError, kind: type[TransportError]) -> None:
    err = transport_error(exc)
    assert type(err) is kind
    assert SECRET not in str(err)
    if kind is not ReadTimeout:
        assert type(exc).__name__ in str(err)


@pytest.mark.parametrize("wait", [None, 0.2, 30.0, 7200.0])
@pytest.mark.parametrize("attempts", [0, 2])
def test_a_pool_made_error_is_the_envelope(wait: float | None, attempts: int) -> None:
    made = NoAvailableKeys("every key is cooling down or disabled", retry_after=wait)
    err = pool_error(made, attempts, httpx.Request("GET", "https://h/v1/x"))
    assert isinstance(err, ProxyError) and err.response is not None
    assert err.request_id is not None  # a fresh one: the same envelope, its own id
    status, headers, body = error_response(made, err.request_id)
    assert (err.code, err.status, err.retry_after) == ("no_available_keys", 429, wait)
    expected = headers + ([(b"x-poolswitch-attempts", str(attempts).encode())] if attempts else [])
    assert err.response.headers.raw == expected
    assert (err.response.status, err.response.content) == (status, body)


def test_drain_steps_an_in_memory_error_stream_without_a_loop() -> None:
    redactor = Redactor([(SECRET, "k1")])
    pieces = [b'{"error": "bad ', SECRET[:5].encode(), SECRET[5:].encode(), b'"}']
    headers, out = redactor.error_stream([(b"etag", b"x")], b"", in_memory(pieces), None)
    assert drain(out) == b'{"error": "bad k1"}' and headers == []


def test_drain_refuses_an_iterator_that_waits() -> None:
    async def waits() -> AsyncIterator[bytes]:
        await asyncio.sleep(0)
        yield b"x"

    with pytest.raises(RuntimeError):
        drain(waits())


def test_pool_made_timeout_keeps_its_code() -> None:
    err = pool_error(UpstreamTimeout("late"), 3, httpx.Request("GET", "https://h/"))
    assert isinstance(err, ProxyError) and (err.code, err.status) == ("upstream_timeout", 504)


@pytest.mark.parametrize(
    ("known", "disabled", "method", "path", "decision", "source"),
    [
        (VALID, False, "POST", "/v1/chat", Judgement.RELAY, "verified"),
        (None, True, "POST", "/v1/chat", Judgement.FAIL_OVER, "unconfirmed"),
        (None, False, "GET", "/v1/models", Judgement.DISABLE, "confirmed: verify_path"),
        (INVALID, False, "POST", "/v1/chat", Judgement.DISABLE, "confirmed: verify_path"),
        (None, False, "POST", "/v1/chat", Judgement.VERIFY, None),
    ],
)
def test_decide_and_settle_are_confirm_in_two_steps(
    known: str | None,
    disabled: bool,
    method: str,
    path: str,
    decision: Judgement,
    source: str | None,
) -> None:
    verifier = Verifier("/v1/models", lambda: 100.0)
    confirming = Confirming()
    confirming.disabled = disabled
    assert verifier.decide(0, known, method, path, 0, confirming) is decision
    if decision is Judgement.VERIFY:
        return
    settled = verifier.settle(0, KEY_INVALID, decision, known, method, path, 0, confirming)
    assert settled.source == source and not settled.confirm

    async def run() -> str:
        return known or "unknown"

    other = Confirming()
    other.disabled = disabled
    fresh = Verifier("/v1/models", lambda: 100.0)
    if known is not None:
        fresh.remember(0, known)
    confirmed = asyncio.run(
        fresh.confirm(
            0, KEY_INVALID, method=method, path=path, successes=0, confirming=other, run=run
        )
    )
    if known != INVALID:  # an invalid result is not remembered (the key is disabled instead)
        assert confirmed == settled


def test_importing_the_embedded_clients_pulls_in_no_server_framework() -> None:
    code = (
        "import sys, poolswitch.embedded\n"
        "heavy = ('aiohttp', 'starlette', 'uvicorn', 'prometheus_client', 'redis')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
