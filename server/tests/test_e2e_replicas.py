"""Several `poolswitch start` replicas on one real redis-server: they behave as one pool.

Each replica is a real process (ProxyProcess) in front of one fake upstream; Redis is the Debian
redis-server (conftest.py). Covered: two and three replicas sharing a key's cooldown, a kill -9
of a replica, Redis stopped, restarted, paused (SIGSTOP) and slow, and start-up without Redis.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from poolswitch_testing.delay_proxy import DelayProxy
from poolswitch_testing.fake_upstream import FakeUpstream
from poolswitch_testing.proxy import ProxyProcess, ProxyStartError
from poolswitch_testing.redis_server import RedisServer

from conftest import RedisFactory, config_dict

QUOTA = {"kind": "quota_exhausted"}
ADMIN = "admin-token-for-replicas-0123"


class Replicas:
    """Replicas of one config on one Redis, started on demand, all stopped at the end."""

    def __init__(self, tmp_path: Path, upstream: FakeUpstream, redis_url: str) -> None:
        self.tmp_path = tmp_path
        self.upstream = upstream
        self.redis_url = redis_url
        self.started: list[ProxyProcess] = []

    def settings(self, **storage: Any) -> dict[str, Any]:
        return config_dict(
            self.upstream.url,
            "abc",
            strategy="quota_failover",
            admin_token=ADMIN,
            storage={"backend": "redis", "redis_url": self.redis_url, **storage},
        )

    def start(self, **storage: Any) -> ProxyProcess:
        name = f"replica-{len(self.started)}"
        proxy = ProxyProcess(sys.executable, self.tmp_path / name, self.settings(**storage))
        self.started.append(proxy)
        return proxy.start()

    def stop(self) -> None:
        for proxy in self.started:
            proxy.stop()


@pytest.fixture
def replicas(
    tmp_path: Path, upstream: FakeUpstream, redis_url: str
) -> Iterator[Callable[[], Replicas]]:
    made: list[Replicas] = []

    def make(url: str = redis_url) -> Replicas:
        made.append(Replicas(tmp_path, upstream, url))
        return made[-1]

    yield make
    for group in made:
        group.stop()


def get(proxy: ProxyProcess, path: str, **options: Any) -> httpx.Response:
    return httpx.get(proxy.url + path, timeout=10, **options)


def chat(proxy: ProxyProcess) -> httpx.Response:
    return httpx.post(proxy.url + "/v1/chat/completions", json={"model": "m"}, timeout=10)


def key_state(proxy: ProxyProcess, key_id: str) -> str:
    keys = {k["id"]: k for k in get(proxy, "/status").json()["keys"]}
    return str(keys[key_id]["state"])


def wait_until(what: str, check: Callable[[], bool], seconds: float) -> float:
    """Seconds until `check()` held; fails after `seconds`."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > seconds:
            raise AssertionError(f"{what}: not within {seconds}s")
        time.sleep(0.01)
    return time.monotonic() - start


def keys_sent(upstream: FakeUpstream, since: int) -> list[str | None]:
    return [a.key_id for a in upstream.attempts[since:]]


@pytest.mark.parametrize("count", [2, 3])
def test_after_one_replica_sees_a_quota_error_no_replica_sends_that_key(
    count: int, upstream: FakeUpstream, replicas: Callable[[], Replicas]
) -> None:
    group = replicas()
    proxies = [group.start() for _ in range(count)]
    upstream.script("a", QUOTA)
    first = chat(proxies[0])
    assert first.status_code == 200 and first.headers["x-poolswitch-key-id"] == "b"
    assert keys_sent(upstream, 0) == ["a", "b"]
    since = len(upstream.attempts)
    for i in range(50):
        assert chat(proxies[1 + i % (count - 1)]).status_code == 200
    assert "a" not in keys_sent(upstream, since)
    for proxy in proxies:
        assert key_state(proxy, "a") == "cooling_down"


def test_an_operator_action_on_one_replica_applies_on_every_replica(
    replicas: Callable[[], Replicas],
) -> None:
    group = replicas()
    a, b = group.start(), group.start()
    auth = {"authorization": f"Bearer {ADMIN}"}
    url = a.url + "/poolswitch/admin/keys/b/disable"
    assert httpx.post(url, headers=auth, timeout=10).status_code == 200
    wait_until("b disabled on replica 2", lambda: key_state(b, "b") == "disabled", 1.0)
    url = b.url + "/poolswitch/admin/keys/b/enable"
    assert httpx.post(url, headers=auth, timeout=10).status_code == 200
    wait_until("b enabled on replica 1", lambda: key_state(a, "b") == "available", 1.0)


def test_counters_of_every_replica_add_up_in_each_status(
    replicas: Callable[[], Replicas],
) -> None:
    group = replicas()
    a, b = group.start(), group.start()
    for proxy in (a, a, a, b, b):
        assert chat(proxy).status_code == 200

    def total(proxy: ProxyProcess) -> int:
        return sum(k["total_requests"] for k in get(proxy, "/status").json()["keys"])

    # counters are written each second and re-read by every replica every 2 s
    wait_until("shared counters", lambda: total(a) == total(b) == 5, 6.0)


def test_a_replica_killed_right_after_its_answer_has_stored_the_cooldown(
    upstream: FakeUpstream, replicas: Callable[[], Replicas]
) -> None:
    group = replicas()
    a = group.start()
    upstream.script("a", QUOTA)
    assert chat(a).status_code == 200
    a.kill()
    fresh = group.start()  # started after: knows only what Redis holds
    assert key_state(fresh, "a") == "cooling_down"
    since = len(upstream.attempts)
    assert chat(fresh).status_code == 200
    assert keys_sent(upstream, since) == ["b"]


class Traffic:
    """Requests in a loop against some replicas, in a thread: what failed and the slowest."""

    def __init__(self, proxies: list[ProxyProcess]) -> None:
        self.proxies = proxies
        self.sent = 0
        self.failures: list[str] = []
        self.slowest = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set() and self.sent < 100_000:
                proxy = self.proxies[self.sent % len(self.proxies)]
                start = time.monotonic()
                try:
                    status = client.post(proxy.url + "/v1/chat/completions", json={}).status_code
                    if status != 200:
                        self.failures.append(f"status {status}")
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                self.slowest = max(self.slowest, time.monotonic() - start)
                self.sent += 1
                time.sleep(0.005)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)


def health(proxy: ProxyProcess) -> dict[str, Any]:
    doc: dict[str, Any] = get(proxy, "/health").json()
    return doc


def storage_status(proxy: ProxyProcess) -> str:
    return str(health(proxy)["storage"]["status"])


def test_redis_stopped_for_30s_during_traffic(
    upstream: FakeUpstream, replicas: Callable[[str], Replicas], redis_factory: RedisFactory
) -> None:
    server = redis_factory(appendonly=True)
    group = replicas(server.url)
    a, b = group.start(), group.start()
    with Traffic([a, b]) as traffic:
        time.sleep(0.5)
        server.stop()
        degraded = wait_until("degraded", lambda: storage_status(a) == "degraded", 2.0)
        wait_until("degraded on b", lambda: storage_status(b) == "degraded", 2.0)
        assert "redis" in health(a)["storage"]["reason"] and health(a)["status"] == "degraded"
        # a transition learned while Redis is away: only replica a knows it
        upstream.script("a", QUOTA)
        assert chat(a).status_code == 200
        upstream.script("a")
        time.sleep(max(30 - degraded, 0))
        server.start()
        back = wait_until("ok again", lambda: storage_status(a) == "ok", 2.0)
        wait_until("ok again on b", lambda: storage_status(b) == "ok", 2.0)
        # a wrote back what it learned: b has it too, within 2 s of Redis returning
        wait_until("b learned a's cooldown", lambda: key_state(b, "a") == "cooling_down", 2.0)
    assert traffic.failures == [] and traffic.sent > 100
    assert back < 2.0
    assert 'poolswitch_storage_outages_total{backend="redis"} 1.0' in get(a, "/metrics").text


def test_redis_restarted_empty_gets_back_what_the_replicas_know(
    upstream: FakeUpstream, replicas: Callable[[str], Replicas], redis_factory: RedisFactory
) -> None:
    server = redis_factory()  # no persistence: a restart loses everything
    group = replicas(server.url)
    a, b = group.start(), group.start()
    upstream.script("a", QUOTA)
    assert chat(a).status_code == 200
    upstream.script("a")
    with Traffic([a, b]) as traffic:
        server.restart()
        wait_until("resynced", lambda: storage_status(a) == storage_status(b) == "ok", 3.0)
        time.sleep(1.5)  # the resync writes back; give it its round
    fresh = group.start()  # knows only what Redis holds now
    assert key_state(fresh, "a") == "cooling_down"
    assert traffic.failures == []


def test_redis_paused_for_10s_slows_no_request(
    upstream: FakeUpstream, replicas: Callable[[str], Replicas], redis_factory: RedisFactory
) -> None:
    server = redis_factory()
    group = replicas(server.url)
    a, b = group.start(), group.start()
    with Traffic([a, b]) as traffic:
        time.sleep(0.5)
        server.pause()
        try:
            wait_until("degraded", lambda: storage_status(a) == "degraded", 2.0)
            # a transition while Redis hangs: its answer waits at most redis_timeout_seconds
            upstream.script("c", QUOTA)
            for _ in range(3):
                chat(b)
            upstream.script("c")
            time.sleep(8)
        finally:
            server.resume()
        wait_until("ok again", lambda: storage_status(a) == storage_status(b) == "ok", 2.0)
    assert traffic.failures == []
    assert traffic.slowest < 1.0, traffic.slowest


def test_a_slow_redis_slows_no_request_and_still_shares_state(
    upstream: FakeUpstream, replicas: Callable[[str], Replicas], redis_server: RedisServer
) -> None:
    redis_server.flushall()
    with DelayProxy("127.0.0.1", redis_server.port, delay=0.05) as slow:
        group = replicas(slow.url_for("redis", path="/0"))
        a, b = group.start(), group.start()
        with Traffic([a, b]) as traffic:
            time.sleep(1.0)
            upstream.script("a", QUOTA)
            assert chat(a).status_code == 200
            upstream.script("a")
            wait_until("b learned it", lambda: key_state(b, "a") == "cooling_down", 2.0)
        assert traffic.failures == []
        assert traffic.slowest < 0.5, traffic.slowest
        assert storage_status(a) == "ok"


def test_redis_unreachable_at_start_starts_degraded_or_refuses(
    tmp_path: Path, upstream: FakeUpstream, redis_factory: RedisFactory
) -> None:
    settings = config_dict(
        upstream.url,
        "ab",
        storage={"backend": "redis", "redis_url": "redis://:pw-s3cret@127.0.0.1:9/0"},
    )
    proxy = ProxyProcess(sys.executable, tmp_path / "degraded", settings).start()
    try:
        assert storage_status(proxy) == "degraded"
        assert chat(proxy).status_code == 200
    finally:
        proxy.stop()
    log = proxy.log_path.read_text()
    assert "cannot reach redis at redis://127.0.0.1:9" in log and "pw-s3cret" not in log

    settings["storage"]["start_without_redis"] = False
    refused = ProxyProcess(sys.executable, tmp_path / "refused", settings)
    with pytest.raises(ProxyStartError):
        refused.start()
    log = refused.log_path.read_text()
    assert "storage error: storage.redis_url: cannot reach redis at redis://127.0.0.1:9" in log
    assert "pw-s3cret" not in log


def test_200_transitions_each_reach_the_other_replica_within_100ms(
    replicas: Callable[[], Replicas],
) -> None:
    group = replicas()
    a, b = group.start(), group.start()
    auth = {"authorization": f"Bearer {ADMIN}"}
    with httpx.Client(base_url=a.url, headers=auth, timeout=10) as client:
        for i in range(200):
            action = "disable" if i % 2 == 0 else "enable"
            assert client.post(f"/poolswitch/admin/keys/c/{action}").status_code == 200
            time.sleep(0.002)

    def buckets(proxy: ProxyProcess = b) -> dict[str, float]:
        found = {}
        for line in get(proxy, "/metrics").text.splitlines():
            if line.startswith("poolswitch_state_propagation_seconds_bucket"):
                found[line.split('le="')[1].split('"')[0]] = float(line.split()[-1])
        return found

    wait_until("200 applied", lambda: buckets().get("+Inf") == 200, 3.0)
    assert buckets()["0.1"] == 200, buckets()
    assert buckets(a)["+Inf"] == 0  # a replica's own transitions are not "propagated" to it


def test_processes_sharing_one_sqlite_file_see_each_others_transitions(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    settings = config_dict(
        upstream.url,
        "abc",
        strategy="quota_failover",
        storage={"backend": "sqlite", "sqlite_path": str(tmp_path / "shared.db")},
    )
    a = ProxyProcess(sys.executable, tmp_path / "a", settings).start()
    b = ProxyProcess(sys.executable, tmp_path / "b", settings).start()
    try:
        upstream.script("a", QUOTA)
        assert chat(a).status_code == 200
        took = wait_until("b learned it", lambda: key_state(b, "a") == "cooling_down", 1.0)
        assert took < 0.1 + 0.05  # 50 ms polling, plus this test's own polling of /status
        since = len(upstream.attempts)
        assert chat(b).status_code == 200
        assert keys_sent(upstream, since) == ["b"]
    finally:
        a.stop()
        b.stop()
