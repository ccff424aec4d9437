"""The admin API and `poolswitch keys` against a live proxy and the fake upstream: every action
over HTTP and through the command line, a drain with a slow request in flight, a timed disable
that ends by itself, a key test, one access-log line per call, and no secret anywhere."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from typing import Any

import httpx
import pytest

from poolswitch_testing.fake_upstream import FakeUpstream

from conftest import VALUES, ProxyFactory, RunningProxy

ADMIN = "admin-token-e2e-0123456789"
AUTH = {"Authorization": f"Bearer {ADMIN}"}
SECRETS = [ADMIN, *VALUES.values()]


def admin_proxy(make_proxy: ProxyFactory, ids: str = "abc") -> RunningProxy:
    return make_proxy(ids, admin_token=ADMIN, strategy="quota_failover", verify_path="/v1/models")


def act(client: httpx.Client, key: str, action: str, **body: Any) -> httpx.Response:
    return client.post(f"/poolswitch/admin/keys/{key}/{action}", headers=AUTH, json=body or None)


def state(client: httpx.Client, key: str) -> dict[str, Any]:
    keys: dict[str, dict[str, Any]] = {k["id"]: k for k in client.get("/status").json()["keys"]}
    return keys[key]


def no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


def access_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "poolswitch.access" and "/poolswitch/admin" in r.getMessage()
    ]


def cli(proxy: RunningProxy, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "poolswitch", "keys", *args, "--url", proxy.url],
        capture_output=True,
        text=True,
        timeout=30,
        env={"POOLSWITCH_ADMIN_TOKEN": ADMIN, "PATH": ""},
        check=False,
    )


def test_every_action_over_http(
    upstream: FakeUpstream, make_proxy: ProxyFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="poolswitch.access")
    proxy = admin_proxy(make_proxy)
    answers = []
    with proxy.client() as client:
        listed = client.get("/poolswitch/admin/keys", headers=AUTH)
        assert [(k["pool"], k["id"]) for k in listed.json()["keys"]] == [
            ("default", "a"),
            ("default", "b"),
            ("default", "c"),
        ]
        off = act(client, "a", "disable")
        assert (off.status_code, off.json()["state"]) == (200, "disabled")
        assert off.json()["pool"] == "default"
        timed = act(client, "b", "disable", seconds=600)
        assert timed.json()["state"] == "cooling_down"
        assert timed.json()["reason"] == "disabled_by_operator"
        assert timed.json()["cooldown_source"] == "admin"
        assert timed.json()["cooldown_until"] == pytest.approx(time.time() + 600, abs=5)
        query = client.post(
            "/poolswitch/admin/pools/default/keys/c/disable?seconds=60", headers=AUTH
        )
        assert query.json()["state"] == "cooling_down"
        assert client.get("/v1/models").status_code == 429  # every key out
        assert act(client, "a", "enable").json()["state"] == "available"
        assert client.get("/v1/models").headers["x-poolswitch-key-id"] == "a"
        reset = act(client, "b", "reset")
        assert (reset.json()["state"], reset.json()["total_requests"]) == ("available", 0)
        assert act(client, "a", "reset").json()["total_requests"] == 1  # history stays
        assert act(client, "a", "reset", counters=True).json()["total_requests"] == 0
        drained = act(client, "a", "drain")
        assert drained.json()["state"] == "drained"
        assert state(client, "a")["state"] == "drained"
        assert client.get("/v1/models").headers["x-poolswitch-key-id"] == "b"
        assert act(client, "a", "enable").json()["state"] == "available"
        tested = act(client, "c", "test")
        assert tested.json()["test"]["outcome"] == "success"
        answers = [listed, off, timed, query, reset, drained, tested]
        refused = [
            (act(client, "zz", "enable"), 404),
            (act(client, "a", "explode"), 404),
            (client.post("/poolswitch/admin/pools/nope/keys/a/enable", headers=AUTH), 404),
            (act(client, "a", "disable", seconds="soon"), 400),
            (act(client, "a", "disable", seconds=-1), 400),
            (act(client, "a", "enable", extra=1), 400),
            (act(client, "a", "reset", counters="maybe"), 400),
            (client.post("/poolswitch/admin/keys/a/disable", headers=AUTH, content=b"[1]"), 400),
            (client.post("/poolswitch/admin/keys/a/disable", headers=AUTH, content=b"{"), 400),
            (client.post("/poolswitch/admin/keys/a/disable"), 401),
            (client.post(f"/poolswitch/admin/keys/{VALUES['a']}/enable", headers=AUTH), 404),
        ]
        for resp, status in refused:
            assert resp.status_code == status, resp.text
            assert resp.json()["error"]["type"] == "poolswitch_error"
        assert state(client, "a")["state"] == "available"  # nothing refused changed it
    lines = access_lines(caplog)
    no_secret(*(r.text for r in answers), *(r.text for r, _ in refused), *lines)
    assert (
        "POST /poolswitch/admin/keys/a/disable 200 caller=admin action=disable key=a pool=default"
        in lines
    )
    assert (
        "POST /poolswitch/admin/keys/b/disable 200 caller=admin action=disable key=b "
        "pool=default seconds=600" in lines
    )
    assert "GET /poolswitch/admin/keys 200 caller=admin action=list" in lines
    assert any(line.endswith("action=test key=c pool=default outcome=success") for line in lines)
    assert "POST /poolswitch/admin/keys/a/disable 401 caller=-" in lines
    assert len(lines) == 11 + len(refused)  # one per call


def test_every_action_through_the_command_line(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    proxy = admin_proxy(make_proxy)
    outputs = []
    for args, expect in (
        (("disable", "a", "--json"), "disabled"),
        (("disable", "b", "--for", "10m", "--json"), "cooling_down"),
        (("enable", "b", "--json"), "available"),
        (("reset", "a", "--counters", "--json"), "available"),
        (("drain", "c", "--json"), "drained"),
        (("enable", "c", "--json"), "available"),
    ):
        run = cli(proxy, *args)
        assert run.returncode == 0, run.stderr
        doc = json.loads(run.stdout)
        assert (doc["id"], doc["state"]) == (args[1], expect)
        outputs += [run.stdout, run.stderr]
    timed = cli(proxy, "disable", "b", "--for", "90s", "--json")
    assert json.loads(timed.stdout)["cooldown_until"] == pytest.approx(time.time() + 90, abs=5)
    tested = cli(proxy, "test", "b", "--json")
    assert json.loads(tested.stdout)["test"]["outcome"] == "success"
    listed = cli(proxy, "list", "--json")
    assert {k["id"] for k in json.loads(listed.stdout)["keys"]} == {"a", "b", "c"}
    table = cli(proxy, "list")
    assert table.returncode == 0 and "disabled_by_operator" in table.stdout
    line = cli(proxy, "disable", "c", "--for", "1h")
    assert line.returncode == 0 and line.stdout.startswith("c: cooling_down (returns in 36")
    readable = cli(proxy, "test", "a")
    assert readable.returncode == 0 and readable.stdout.startswith("a: valid")
    unknown = cli(proxy, "enable", "zz", "--json")
    assert unknown.returncode == 1 and "no key with id 'zz'" in unknown.stderr
    assert cli(proxy, "enable", "a", "--for", "1m").returncode == 2
    assert cli(proxy, "disable", "a", "--for", "soon").returncode == 2
    assert cli(proxy, "drain").returncode == 2
    gone = subprocess.run(
        [sys.executable, "-m", "poolswitch", "keys", "list", "--url", "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
        timeout=30,
        env={"POOLSWITCH_ADMIN_TOKEN": ADMIN, "PATH": ""},
        check=False,
    )
    assert gone.returncode == 1 and "cannot reach the proxy" in gone.stderr
    runs = [timed, tested, listed, table, line, readable, unknown, gone]
    no_secret(*outputs, *(r.stdout + r.stderr for r in runs))


def test_a_drained_key_finishes_its_request_then_gets_none(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    proxy = admin_proxy(make_proxy, "ab")
    upstream.script("a", {"kind": "ok", "delay": 1.5}, {"kind": "ok"})
    slow: list[httpx.Response] = []

    def slow_request() -> None:
        with proxy.client() as own:
            slow.append(own.get("/v1/models"))

    with proxy.client() as client:
        thread = threading.Thread(target=slow_request)
        thread.start()
        deadline = time.monotonic() + 5
        while "a" not in upstream.key_ids() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert act(client, "a", "drain").json()["state"] == "draining"
        assert state(client, "a")["state"] == "draining"
        fast = [client.get("/v1/models").headers["x-poolswitch-key-id"] for _ in range(3)]
        assert fast == ["b", "b", "b"]
        thread.join(timeout=10)
        assert slow[0].status_code == 200 and slow[0].headers["x-poolswitch-key-id"] == "a"
        assert state(client, "a")["state"] == "drained"
        before = upstream.key_ids().count("a")
        assert {client.get("/v1/models").headers["x-poolswitch-key-id"] for _ in range(3)} == {"b"}
        assert upstream.key_ids().count("a") == before
        assert act(client, "a", "enable").json()["state"] == "available"
        assert client.get("/v1/models").headers["x-poolswitch-key-id"] == "a"


def test_a_timed_disable_returns_by_itself(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    proxy = admin_proxy(make_proxy, "ab")
    with proxy.client() as client:
        assert act(client, "a", "disable", seconds=1).json()["state"] == "cooling_down"
        assert client.get("/v1/models").headers["x-poolswitch-key-id"] == "b"
        deadline = time.monotonic() + 5
        while state(client, "a")["state"] != "available" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.get("/v1/models").headers["x-poolswitch-key-id"] == "a"


def test_testing_a_valid_and_an_invalid_key(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    proxy = admin_proxy(make_proxy, "ab")
    upstream.script("b", {"kind": "invalid_key"})
    with proxy.client() as client:
        good = act(client, "a", "test").json()
        assert good["test"]["status"] == 200 and good["test"]["key"] == "valid"
        assert good["test"]["latency_ms"] > 0 and good["test"]["detail"].startswith("GET /v1/")
        bad = act(client, "b", "test").json()
        assert (bad["test"]["status"], bad["test"]["outcome"]) == (401, "key_invalid")
        assert bad["state"] == "available"  # a test alone changes nothing
        applied = act(client, "b", "test", apply=True).json()
        assert (applied["state"], applied["reason"]) == ("disabled", "key_invalid")
        assert applied["cooldown_source"] is None or "test" in applied["cooldown_source"]
        other = act(client, "a", "test", path="/v1/chat/completions").json()
        assert upstream.attempts[-1].path.endswith("/v1/chat/completions")
        assert other["test"]["status"] == 200
        assert act(client, "a", "test", path="http://elsewhere/").status_code == 400
        no_secret(json.dumps([good, bad, applied, other]))
    assert all(a.method == "GET" for a in upstream.attempts)
