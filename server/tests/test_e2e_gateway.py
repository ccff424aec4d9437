"""One proxy, several pools and callers, over loopback HTTP: routing by route prefix and by
`x-poolswitch-pool`, `404 no_such_pool`, failover inside a pool only, per-pool `/status`,
`/health` and metrics, and callers' pools, `rpm` and `max_concurrency`."""

from __future__ import annotations

import concurrent.futures
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from poolswitch.config import parse_config
from poolswitch_testing.fake_upstream import FakeUpstream

from conftest import RunningProxy

EXAMPLE_STATUS = Path(__file__).resolve().parents[2] / "docs" / "status.example.json"

OPENAI_KEYS = {"sk-openai-one-SECRET-0001": "one", "sk-openai-two-SECRET-0002": "two"}
# the same key ids in another pool, with other values: pools share nothing
CLAUDE_KEYS = {"sk-ant-one-SECRET-0003": "one", "sk-ant-two-SECRET-0004": "two"}
WEB = "tok-web-0123456789abcdef"
BATCH = "tok-batch-0123456789abcdef"


def pool(name: str, url: str, keys: dict[str, str], **settings: Any) -> dict[str, Any]:
    return {
        "name": name,
        "upstream_base_url": url,
        "keys": [{"id": key_id, "value": value} for value, key_id in keys.items()],
        **settings,
    }


def claude_pool(url: str, **settings: Any) -> dict[str, Any]:
    """The Anthropic pool: its keys go in `x-api-key`, raw."""
    return pool(
        "anthropic", url, CLAUDE_KEYS, auth_header_name="x-api-key", auth_scheme=None, **settings
    )


@pytest.fixture
def openai_fake() -> Iterator[FakeUpstream]:
    with FakeUpstream(OPENAI_KEYS) as fake:
        yield fake


@pytest.fixture
def claude_fake() -> Iterator[FakeUpstream]:
    with FakeUpstream(CLAUDE_KEYS, auth_header="x-api-key", auth_scheme=None) as fake:
        yield fake


def start(doc: dict[str, Any]) -> RunningProxy:
    return RunningProxy(parse_config(doc, env={})).start()


@pytest.fixture
def gateway(openai_fake: FakeUpstream, claude_fake: FakeUpstream) -> Iterator[RunningProxy]:
    proxy = start(
        {
            "pools": [
                pool("openai", openai_fake.url + "/base", OPENAI_KEYS),
                claude_pool(claude_fake.url, strategy="least_used"),
            ]
        }
    )
    yield proxy
    proxy.stop()


def test_each_route_reaches_its_pool_with_the_prefix_stripped(
    gateway: RunningProxy, openai_fake: FakeUpstream, claude_fake: FakeUpstream
) -> None:
    with gateway.client() as client:
        a = client.post("/openai/v1/chat/completions?x=1", json={})
        b = client.post("/anthropic/v1/messages", json={})
    assert a.status_code == b.status_code == 200
    assert [(t.path, t.query_string) for t in openai_fake.attempts] == [
        ("/base/v1/chat/completions", "x=1")
    ]
    assert [t.path for t in claude_fake.attempts] == ["/v1/messages"]
    assert a.headers["x-poolswitch-key-id"] == "one" == b.headers["x-poolswitch-key-id"]


def test_the_pool_header_names_a_pool_and_the_path_goes_unchanged(
    gateway: RunningProxy, claude_fake: FakeUpstream
) -> None:
    with gateway.client() as client:
        resp = client.get("/v1/models", headers={"x-poolswitch-pool": "anthropic"})
    assert resp.status_code == 200
    assert [t.path for t in claude_fake.attempts] == ["/v1/models"]
    assert all(name != "x-poolswitch-pool" for name, _ in claude_fake.attempts[0].headers)


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/v1/models", {}),
        ("/openaiX/v1/models", {}),
        ("/gemini/v1beta/models", {}),
        ("/openai/v1/models", {"x-poolswitch-pool": "gemini"}),
    ],
)
def test_no_such_pool_is_404_and_nothing_goes_upstream(
    gateway: RunningProxy,
    openai_fake: FakeUpstream,
    claude_fake: FakeUpstream,
    path: str,
    headers: dict[str, str],
) -> None:
    with gateway.client() as client:
        resp = client.get(path, headers=headers)
    assert resp.status_code == 404
    assert resp.headers["x-poolswitch-error"] == "no_such_pool"
    assert resp.json()["error"]["code"] == "no_such_pool"
    assert openai_fake.attempts == [] and claude_fake.attempts == []


def test_failover_stays_inside_the_pool_and_key_ids_are_per_pool(
    gateway: RunningProxy, openai_fake: FakeUpstream, claude_fake: FakeUpstream
) -> None:
    openai_fake.script("one", {"kind": "quota_exhausted"})
    with gateway.client() as client:
        first = client.post("/openai/v1/chat/completions", json={})
        other = client.post("/anthropic/v1/messages", json={})
        status = client.get("/status").json()
    assert (first.status_code, first.headers["x-poolswitch-key-id"]) == (200, "two")
    assert first.headers["x-poolswitch-attempts"] == "2"
    assert (other.status_code, other.headers["x-poolswitch-key-id"]) == (200, "one")
    pools = {p["name"]: {k["id"]: k for k in p["keys"]} for p in status["pools"]}
    assert pools["openai"]["one"]["state"] == "cooling_down"
    assert pools["anthropic"]["one"]["state"] == "available"  # same id, another pool
    assert len(claude_fake.attempts) == 1


def shape(value: Any) -> Any:
    """A JSON document's keys, recursively (lists: the union of their items' shapes)."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list) and any(isinstance(item, dict) for item in value):
        merged: dict[str, Any] = {}
        for item in value:
            merged.update(shape(item))
        return [merged]
    return None  # a scalar, null, an empty list or a list of scalars


def test_status_health_and_metrics_list_every_pool(
    openai_fake: FakeUpstream, claude_fake: FakeUpstream
) -> None:
    proxy = start(
        {
            "callers": [
                {"id": "web", "token": WEB, "pools": ["openai"], "rpm": 600, "max_concurrency": 8},
                {"id": "batch", "token": BATCH},
            ],
            "pools": [
                pool("openai", openai_fake.url, OPENAI_KEYS, provider="openai"),
                claude_pool(claude_fake.url),
            ],
        }
    )
    try:
        with proxy.client(headers={"authorization": f"Bearer {WEB}"}) as client:
            assert client.post("/openai/v1/chat/completions", json={}).status_code == 200
            status = client.get("/status").json()
            health = client.get("/health").json()
            metrics = client.get("/metrics").text
    finally:
        proxy.stop()
    assert [p["name"] for p in status["pools"]] == ["openai", "anthropic"]
    assert [p["route"] for p in status["pools"]] == ["/openai", "/anthropic"]
    assert "keys" not in status and "strategy" not in status  # several pools: no 0.x fields
    web = status["callers"][0]
    assert web == {
        "id": "web",
        "pools": ["openai"],
        "rpm": 600,
        "max_concurrency": 8,
        "requests_last_minute": 1,
        "in_flight": 0,
        "rejected": 0,
    }
    assert status["callers"][1]["pools"] is None and status["callers"][1]["rpm"] is None
    # the documented example has exactly the fields the server sends (plus the single-pool ones)
    example = shape(json.loads(EXAMPLE_STATUS.read_text()))
    single = {"strategy", "upstream_base_url", "provider", "outage", "keys"}
    assert shape(status) == {k: v for k, v in example.items() if k not in single}
    assert health["status"] == "ok" and health["keys_total"] == 4
    assert [(p["name"], p["keys_available"]) for p in health["pools"]] == [
        ("openai", 2),
        ("anthropic", 2),
    ]
    assert 'poolswitch_key_state{key_id="one",pool="anthropic",state="available"} 1.0' in metrics
    assert 'poolswitch_keys_available{pool="openai"} 2.0' in metrics
    assert (
        'poolswitch_upstream_attempts_total{key_id="one",outcome="success",pool="openai"} 1.0'
        in metrics
    )
    assert (
        'poolswitch_requests_total{caller="web",method="POST",pool="openai",status_class="2xx"}'
        in metrics
    )
    assert WEB not in metrics + json.dumps(status) and "SECRET" not in metrics


def test_a_single_pool_status_keeps_the_0x_fields(openai_fake: FakeUpstream) -> None:
    proxy = start(
        {
            "upstream_base_url": openai_fake.url,
            "keys": [{"id": "one", "value": "sk-openai-one-SECRET-0001"}],
        }
    )
    try:
        with proxy.client() as client:
            status = client.get("/status").json()
    finally:
        proxy.stop()
    example = shape(json.loads(EXAMPLE_STATUS.read_text()))
    assert shape(status) == {**example, "callers": None}
    assert status["pools"][0]["name"] == "default" and status["pools"][0]["route"] == "/"
    assert status["keys"] == status["pools"][0]["keys"]


def callers_gateway(openai_fake: FakeUpstream, claude_fake: FakeUpstream) -> RunningProxy:
    return start(
        {
            "callers": [
                {"id": "runaway", "token": BATCH, "rpm": 5, "max_concurrency": 2},
                {"id": "steady", "token": WEB},
                {"id": "narrow", "token": "tok-narrow-0123456789abcdef", "pools": ["openai"]},
            ],
            "pools": [
                pool("openai", openai_fake.url, OPENAI_KEYS),
                claude_pool(claude_fake.url),
            ],
        }
    )


def test_a_caller_not_allowed_on_a_pool_gets_403(
    openai_fake: FakeUpstream, claude_fake: FakeUpstream
) -> None:
    proxy = callers_gateway(openai_fake, claude_fake)
    try:
        with proxy.client(headers={"x-api-key": "tok-narrow-0123456789abcdef"}) as client:
            denied = client.post("/anthropic/v1/messages", json={})
            allowed = client.post("/openai/v1/chat/completions", json={})
            nowhere = client.get("/nowhere")
        with proxy.client() as client:
            stranger = client.get("/nowhere")  # strangers learn nothing about pools
    finally:
        proxy.stop()
    assert (denied.status_code, denied.headers["x-poolswitch-error"]) == (403, "forbidden")
    assert allowed.status_code == 200
    assert nowhere.headers["x-poolswitch-error"] == "no_such_pool"
    assert stranger.headers["x-poolswitch-error"] == "unauthorized"
    assert claude_fake.attempts == [] and len(openai_fake.attempts) == 1


def test_one_caller_over_its_limits_while_another_is_served_without_an_error(
    openai_fake: FakeUpstream, claude_fake: FakeUpstream
) -> None:
    proxy = callers_gateway(openai_fake, claude_fake)
    try:
        runaway = httpx.Client(
            base_url=proxy.url, timeout=10, headers={"authorization": f"Bearer {BATCH}"}
        )
        steady = httpx.Client(
            base_url=proxy.url, timeout=10, headers={"authorization": f"Bearer {WEB}"}
        )
        with runaway, steady:
            # max_concurrency 2: three slow requests at once, one is refused at once
            openai_fake.script("one", {"kind": "ok", "delay": 0.8})
            openai_fake.script("two", {"kind": "ok", "delay": 0.8})
            with concurrent.futures.ThreadPoolExecutor(max_workers=24) as pool_:
                slow = [
                    pool_.submit(runaway.post, "/openai/v1/chat/completions", json={})
                    for _ in range(3)
                ]
                served = [
                    pool_.submit(steady.post, "/openai/v1/chat/completions", json={})
                    for _ in range(20)
                ]
                slow_answers = [f.result() for f in slow]
                served_answers = [f.result() for f in served]
            statuses = sorted(a.status_code for a in slow_answers)
            assert statuses == [200, 200, 429]
            refused = next(a for a in slow_answers if a.status_code == 429)
            assert refused.headers["x-poolswitch-error"] == "caller_rate_limited"
            assert refused.headers["retry-after"] == "1"
            assert refused.headers["x-should-retry"] == "true"
            openai_fake.script("one")
            openai_fake.script("two")
            # rpm 5: two were counted above; three more pass, the sixth is refused
            sent_before = len(openai_fake.attempts)
            answers = [runaway.post("/openai/v1/chat/completions", json={}) for _ in range(4)]
            assert [a.status_code for a in answers] == [200, 200, 200, 429]
            over = answers[-1]
            assert over.json()["error"]["code"] == "caller_rate_limited"
            wait = int(over.headers["retry-after"])
            assert 1 <= wait <= 60 and over.json()["error"]["retry_after"] == wait
            assert len(openai_fake.attempts) == sent_before + 3  # nothing sent for the refusal
            # the other caller keeps being served, on both pools, without a single error
            later = [steady.post("/openai/v1/chat/completions", json={}) for _ in range(10)]
            later.append(steady.post("/anthropic/v1/messages", json={}))
            status = steady.get("/status").json()
            metrics = steady.get("/metrics").text
    finally:
        proxy.stop()
    assert [a.status_code for a in served_answers + later] == [200] * 31
    callers = {c["id"]: c for c in status["callers"]}
    assert callers["runaway"]["rejected"] == 2 and callers["runaway"]["requests_last_minute"] == 5
    assert callers["steady"]["rejected"] == 0
    assert 'poolswitch_caller_rejections_total{caller="runaway",reason="rpm"} 1.0' in metrics
    assert (
        'poolswitch_caller_rejections_total{caller="runaway",reason="concurrency"} 1.0' in metrics
    )
    assert 'poolswitch_caller_rejections_total{caller="steady",reason="rpm"} 0.0' in metrics


def test_rpm_refusal_says_when_the_window_frees(
    openai_fake: FakeUpstream, claude_fake: FakeUpstream
) -> None:
    proxy = start(
        {
            "callers": [{"id": "one-a-minute", "token": WEB, "rpm": 1}],
            "pools": [pool("openai", openai_fake.url, OPENAI_KEYS)],
        }
    )
    try:
        with proxy.client(headers={"x-poolswitch-token": WEB}) as client:
            assert client.get("/openai/v1/models").status_code == 200
            started = time.time()
            over = client.get("/openai/v1/models")
    finally:
        proxy.stop()
    assert over.status_code == 429
    wait = int(over.headers["retry-after"])
    # the window frees a minute after the first request: the wait is a minute, rounded up
    assert wait == 60, wait
    assert over.json()["error"]["retry_after"] == wait
    assert time.time() - started < 5


ADMIN = "adm-0123456789abcdef0123"


def test_the_admin_api_names_the_pool_when_key_ids_repeat(
    openai_fake: FakeUpstream, claude_fake: FakeUpstream
) -> None:
    proxy = start(
        {
            "admin_token": ADMIN,
            "pools": [
                pool("openai", openai_fake.url, OPENAI_KEYS),
                claude_pool(claude_fake.url),
            ],
        }
    )
    admin = "/poolswitch/admin"
    try:
        with proxy.client(headers={"authorization": f"Bearer {ADMIN}"}) as client:
            ambiguous = client.post(f"{admin}/keys/one/disable")
            done = client.post(f"{admin}/pools/anthropic/keys/one/disable")
            no_pool = client.post(f"{admin}/pools/gemini/keys/one/disable")
            listed = client.get(f"{admin}/keys").json()["keys"]
            served = client.post("/anthropic/v1/messages", json={})
    finally:
        proxy.stop()
    assert ambiguous.status_code == 404 and "several pools" in ambiguous.json()["error"]["message"]
    assert done.json()["pool"] == "anthropic" and done.json()["state"] == "disabled"
    assert no_pool.status_code == 404
    states = {(k["pool"], k["id"]): k["state"] for k in listed}
    assert states[("anthropic", "one")] == "disabled" and states[("openai", "one")] == "available"
    assert (served.status_code, served.headers["x-poolswitch-key-id"]) == (200, "two")
