"""End to end: the request id (access log, answer headers, error body, upstream request), the
decision trace, and `log_format: json` from a real `poolswitch start` process."""

from __future__ import annotations

import json
import logging
import re
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from poolswitch_testing.fake_upstream import FakeUpstream
from poolswitch_testing.proxy import ProxyProcess

from conftest import KEYS, VALUES, ProxyFactory

FRESH = re.compile(r"^[0-9a-f]{16}$")
TOKEN = "tok-search-0123456789abcdef"
CALLERS = [{"id": "search", "token": TOKEN}]
CHAT = "/v1/chat/completions"


def access_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "poolswitch.access"]


def sent_ids(upstream: FakeUpstream) -> list[list[str]]:
    """Each upstream attempt's x-request-id values."""
    return [[v for n, v in a.headers if n == "x-request-id"] for a in upstream.attempts]


def test_a_fresh_id_is_in_the_answer_the_log_and_the_upstream_request(
    upstream: FakeUpstream, make_proxy: ProxyFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    proxy = make_proxy(ids="a")
    with proxy.client() as client:
        resp = client.post(CHAT, json={})
    rid = resp.headers["x-request-id"]
    assert resp.status_code == 200 and FRESH.match(rid)
    assert resp.headers.get_list("x-request-id") == [rid]
    assert sent_ids(upstream) == [[rid]]
    [line] = access_lines(caplog)
    assert line.startswith(f"POST {CHAT} 200 key=a attempts=1") and line.endswith(f" rid={rid}")


def test_a_callers_sane_id_is_kept_and_forwarded_once(
    upstream: FakeUpstream, make_proxy: ProxyFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    proxy = make_proxy(ids="a")
    with proxy.client() as client:
        resp = client.post(CHAT, json={}, headers={"X-Request-Id": "job-42:step.7"})
    assert resp.headers.get_list("x-request-id") == ["job-42:step.7"]
    assert sent_ids(upstream) == [["job-42:step.7"]]
    assert access_lines(caplog)[0].endswith(" rid=job-42:step.7")


@pytest.mark.parametrize(
    "hostile",
    [
        "x" * 10_000,
        VALUES["b"],  # a key value of the pool
        TOKEN,  # a caller's token
        "a%0d%0aSet-Cookie: evil=1",
        "two words",
    ],
)
def test_a_hostile_id_is_replaced_never_echoed(
    upstream: FakeUpstream,
    make_proxy: ProxyFactory,
    caplog: pytest.LogCaptureFixture,
    hostile: str,
) -> None:
    caplog.set_level(logging.INFO)
    proxy = make_proxy(ids="ab", callers=CALLERS)
    headers = {"Authorization": f"Bearer {TOKEN}", "x-request-id": hostile}
    with proxy.client() as client:
        resp = client.post(CHAT, json={}, headers=headers)
    assert resp.status_code == 200
    rid = resp.headers["x-request-id"]
    assert FRESH.match(rid)
    assert sent_ids(upstream) == [[rid]]
    logged = "\n".join(access_lines(caplog))
    assert f"rid={rid}" in logged and hostile not in logged
    assert hostile not in resp.text


@pytest.mark.parametrize("hostile", [b"a\x01b\tc", "\u00e9t\u00e9".encode()])
def test_a_hostile_id_of_raw_bytes_is_replaced(
    upstream: FakeUpstream, make_proxy: ProxyFactory, hostile: bytes
) -> None:
    proxy = make_proxy(ids="a")
    with proxy.client() as client:
        resp = client.post(CHAT, json={}, headers={b"x-request-id": hostile})
    assert resp.status_code in (200, 400)  # the HTTP parser may refuse it first
    assert FRESH.match(resp.headers["x-request-id"])


def test_a_proxy_made_error_carries_the_id_in_header_and_body(
    upstream: FakeUpstream, make_proxy: ProxyFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    upstream.script("a", {"kind": "quota_exhausted"})
    proxy = make_proxy(ids="a")
    with proxy.client() as client:
        first = client.post(CHAT, json={})
        resp = client.post(CHAT, json={}, headers={"x-request-id": "req-exhausted"})
    assert first.json()["error"]["code"] == "insufficient_quota"
    assert FRESH.match(first.headers["x-request-id"])
    assert resp.headers["x-poolswitch-error"] == "no_available_keys"
    assert resp.headers["x-request-id"] == "req-exhausted"
    assert resp.json()["error"]["request_id"] == "req-exhausted"
    assert access_lines(caplog)[-1].endswith(" rid=req-exhausted")


def test_the_upstreams_own_id_is_relayed_and_the_proxys_beside_it(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    upstream.script("a", {"kind": "ok", "headers": {"x-request-id": "req_openai_1"}})
    proxy = make_proxy(ids="a")
    with proxy.client() as client:
        resp = client.post(CHAT, json={}, headers={"x-request-id": "mine"})
    assert resp.headers.get_list("x-request-id") == ["req_openai_1"]  # relayed as it was
    assert resp.headers.get_list("x-poolswitch-request-id") == ["mine"]


def test_the_trace_lists_both_attempts_of_a_failover(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    upstream.script("a", {"kind": "rate_limit"})
    proxy = make_proxy(ids="ab")
    with proxy.client() as client:
        traced = client.post(CHAT, json={}, headers={"x-poolswitch-trace": "1"})
        plain = client.post(CHAT, json={})
    assert traced.status_code == 200
    assert traced.headers["x-poolswitch-trace"] == "a rate_limited 0ms, b success 0ms"
    assert "x-poolswitch-trace" not in plain.headers
    for attempt in upstream.attempts:
        assert "x-poolswitch-trace" not in dict(attempt.headers)
    trace = traced.headers["x-poolswitch-trace"]
    assert not any(value in trace for value in KEYS)


def test_the_trace_is_on_proxy_made_errors_too(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    upstream.script("a", {"kind": "quota_exhausted"})
    upstream.script("b", {"kind": "quota_exhausted"})
    proxy = make_proxy(ids="ab")
    ask = {"x-poolswitch-trace": "1"}
    with proxy.client() as client:
        relayed = client.post(CHAT, json={}, headers=ask)
        made = client.post(CHAT, json={}, headers=ask)
    assert relayed.headers["x-poolswitch-trace"] == "a quota_exhausted 0ms, b quota_exhausted 0ms"
    assert made.headers["x-poolswitch-error"] == "no_available_keys"
    assert made.headers["x-poolswitch-trace"] == "none"


def test_with_callers_only_an_identified_caller_gets_a_trace(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    proxy = make_proxy(ids="a", callers=CALLERS)
    ask = {"x-poolswitch-trace": "1"}
    with proxy.client() as client:
        stranger = client.post(CHAT, json={}, headers={**ask, "Authorization": "Bearer nope"})
        known = client.post(CHAT, json={}, headers={**ask, "Authorization": f"Bearer {TOKEN}"})
    assert stranger.status_code == 401
    assert stranger.headers["x-poolswitch-error"] == "unauthorized"
    assert "x-poolswitch-trace" not in stranger.headers
    assert FRESH.match(stranger.json()["error"]["request_id"])
    assert known.headers["x-poolswitch-trace"] == "a success 0ms"


def test_json_logs_of_a_real_process_parse_and_hold_no_secret(tmp_path: Path) -> None:
    with FakeUpstream(KEYS) as fake:
        fake.script("a", {"kind": "rate_limit"})
        settings: dict[str, Any] = {
            "upstream_base_url": fake.url,
            "keys": [{"id": i, "value": VALUES[i]} for i in "ab"],
            "callers": CALLERS,
            "log_format": "json",
        }
        proxy = ProxyProcess(sys.executable, tmp_path, settings, log_level="debug")
        with proxy:
            auth = {"Authorization": f"Bearer {TOKEN}"}
            with httpx.Client(base_url=proxy.url, timeout=10) as client:
                ok = client.post(CHAT, json={}, headers={**auth, "x-request-id": "json-1"})
                client.post(f"/v1/files/{VALUES['a']}?key={TOKEN}", json={}, headers=auth)
                client.post(CHAT, json={}, headers={"x-api-key": "not-a-caller-SECRET"})
        text = proxy.log()
    assert ok.status_code == 200
    docs = [json.loads(line) for line in text.splitlines() if line.strip()]
    for doc in docs:
        assert {"ts", "level", "logger", "msg"} <= doc.keys(), doc
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", doc["ts"])
    access = [d for d in docs if d["logger"] == "poolswitch.access"]
    assert len(access) == 3
    first = access[0]
    assert {k: first[k] for k in ("method", "path", "status", "key", "attempts", "caller")} == {
        "method": "POST",
        "path": CHAT,
        "status": 200,
        "key": "b",
        "attempts": 2,
        "caller": "search",
    }
    assert first["request_id"] == "json-1" and first["pool"] == "default"
    assert first["incomplete"] is False and isinstance(first["ms"], float)
    assert access[1]["path"] == "/v1/files/a"  # the key value in the path: masked to its id
    assert access[2]["status"] == 401 and access[2]["caller"] is None
    for secret in (*KEYS, TOKEN, "not-a-caller-SECRET"):
        assert secret not in text
