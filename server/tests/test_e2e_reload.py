"""Hot reload, end to end: a real `poolswitch start` reloaded twice (SIGHUP, then `poolswitch
reload`) while an SSE stream of 10 s is open, then refused an invalid config; and two replicas
on one real Redis showing each other's config version in `/status`.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from poolswitch_testing.fake_upstream import FakeUpstream
from poolswitch_testing.proxy import ProxyProcess

from conftest import KEYS

ADMIN = "admin-token-for-reload-0123"
D_VALUE = "sk-test-delta-0004-SECRET"
ALL_KEYS = {**KEYS, D_VALUE: "d"}
VALUES = {key_id: value for value, key_id in ALL_KEYS.items()}
EVENTS = [f"event-{n:02d}" for n in range(20)]
STREAM = {"kind": "sse", "events": EVENTS, "interval": 0.5, "done": False}
PARKED = {"kind": "rate_limit", "headers": {"retry-after": "600"}}


@pytest.fixture
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream(ALL_KEYS) as upstream:
        yield upstream


def settings(upstream: FakeUpstream, ids: str, **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "upstream_base_url": upstream.url,
        "keys": [{"id": i, "value": VALUES[i]} for i in ids],
        "admin_token": ADMIN,
        "storage": {"backend": "sqlite", "sqlite_path": "state.db"},
        "strategy": "round_robin",
    }
    doc.update(extra)
    return doc


def rewrite(proxy: ProxyProcess, doc: dict[str, Any] | str) -> None:
    text = doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False)
    proxy.config_path.write_text(text)


def status(proxy: ProxyProcess) -> dict[str, Any]:
    doc: dict[str, Any] = httpx.get(proxy.url + "/status", timeout=5).json()
    return doc


def key_state(proxy: ProxyProcess, key_id: str) -> str:
    return str({k["id"]: k["state"] for k in status(proxy)["keys"]}[key_id])


def chat(proxy: ProxyProcess) -> httpx.Response:
    return httpx.post(proxy.url + "/v1/chat/completions", json={"model": "m"}, timeout=10)


def wait_until(what: str, check: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {seconds}s")
        time.sleep(0.02)


def reload_cli(proxy: ProxyProcess) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "poolswitch", "reload", "--url", proxy.url]
    return subprocess.run(
        [*command, "--token", ADMIN], capture_output=True, text=True, timeout=30, check=False
    )


class Stream:
    """One SSE request through the proxy, read in a thread: its events with arrival times."""

    def __init__(self, proxy: ProxyProcess) -> None:
        self.events: list[str] = []
        self.key_id = ""
        self.status = 0
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(proxy.url,), daemon=True)
        self.thread.start()

    def _run(self, url: str) -> None:
        try:
            body = {"model": "m", "stream": True}
            with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=30) as r:
                self.status, self.key_id = r.status_code, r.headers["x-poolswitch-key-id"]
                for line in r.iter_lines():
                    if line.startswith("data: "):
                        self.events.append(line[len("data: ") :])
        except BaseException as exc:  # reported by the test
            self.error = exc


def test_reloads_while_streaming_keep_the_stream_state_and_refuse_a_bad_config(
    fake: FakeUpstream, tmp_path: Path
) -> None:
    fake.script("a", STREAM, {"kind": "ok"})
    fake.script("b", PARKED, {"kind": "ok"})
    proxy = ProxyProcess(sys.executable, tmp_path / "proxy", settings(fake, "abc")).start()
    try:
        first = status(proxy)["config_version"]
        assert len(first) == 12
        stream = Stream(proxy)
        wait_until("the stream starts", lambda: len(stream.events) >= 1, 5)
        assert stream.key_id == "a"
        parked = chat(proxy)  # b: 429 Retry-After 600, then c
        assert parked.status_code == 200 and parked.headers["x-poolswitch-key-id"] == "c"
        assert key_state(proxy, "b") == "cooling_down"

        # reload 1, SIGHUP: key d added
        rewrite(proxy, settings(fake, "abcd"))
        assert proxy.pid is not None
        os.kill(proxy.pid, signal.SIGHUP)
        hup = time.monotonic()
        served_by: list[str] = []
        while "d" not in served_by:
            assert time.monotonic() - hup < 1.0, f"d did not serve within 1 s: {served_by}"
            served_by.append(chat(proxy).headers["x-poolswitch-key-id"])
        second = status(proxy)["config_version"]
        assert second != first and status(proxy)["reloaded_at"] is not None
        assert key_state(proxy, "b") == "cooling_down"
        assert "b" not in served_by

        # reload 2, `poolswitch reload`: key c removed, strategy changed
        rewrite(proxy, settings(fake, "abd", strategy="least_used"))
        done = reload_cli(proxy)
        assert done.returncode == 0, done.stderr
        third = status(proxy)
        assert done.stdout.strip() == f"ok: config version {third['config_version']}"
        assert third["strategy"] == "least_used"
        assert [k["id"] for k in third["keys"]] == ["a", "b", "d"]
        assert key_state(proxy, "b") == "cooling_down"
        since = len(fake.attempts)
        for _ in range(12):
            assert chat(proxy).status_code == 200
        assert {a.key_id for a in fake.attempts[since:]} <= {"a", "d"}
        assert stream.thread.is_alive() and len(stream.events) < len(EVENTS)

        # an invalid config: refused whole, the old one keeps serving
        rewrite(proxy, settings(fake, "ad") | {"keys": [{"id": "a", "value": ""}], "colour": 1})
        refused = reload_cli(proxy)
        assert refused.returncode == 1
        assert "keys[0].value" in refused.stderr and "colour" in refused.stderr
        os.kill(proxy.pid, signal.SIGHUP)  # the same file by the other trigger
        metrics = httpx.get(proxy.url + "/metrics", timeout=5).text
        wait_until(
            "the failed SIGHUP is counted",
            lambda: (
                'poolswitch_config_reloads_total{result="failed"} 2.0'
                in httpx.get(proxy.url + "/metrics", timeout=5).text
            ),
            5,
        )
        assert 'poolswitch_config_reloads_total{result="ok"} 2.0' in metrics
        url = proxy.url + "/poolswitch/admin/reload"
        assert httpx.post(url, timeout=10).status_code == 401
        answer = httpx.post(url, headers={"authorization": f"Bearer {ADMIN}"}, timeout=10)
        assert answer.status_code == 422
        assert answer.headers["x-poolswitch-error"] == "config_refused"
        message = answer.json()["error"]["message"]
        assert "keys[0].value" in message and "colour" in message
        assert not any(value in answer.text for value in ALL_KEYS)
        assert status(proxy)["config_version"] == third["config_version"]
        assert chat(proxy).status_code == 200

        stream.thread.join(15)
        assert stream.error is None and stream.status == 200
        assert stream.events == EVENTS  # every event, in order, from the key it started on
    finally:
        proxy.stop()
    assert proxy.exit_code == 0
    log = proxy.log()
    refusals = [line for line in log.splitlines() if "config reload refused" in line]
    assert len(refusals) == 3 and all("colour" in line for line in refusals)
    assert not any(value in log for value in ALL_KEYS)
    # with sqlite, each key's stored count is what the upstream saw: none counted twice
    with sqlite3.connect(proxy.directory / "state.db") as conn:
        stored = dict(conn.execute("SELECT key_id, total_requests FROM key_state").fetchall())
    sent = {key_id: fake.key_ids().count(key_id) for key_id in "abcd"}
    assert stored == sent and sent["a"] > 2 and sent["c"] > 0 and sent["d"] > 0


def test_replicas_on_redis_show_each_others_config_version(
    fake: FakeUpstream, tmp_path: Path, redis_url: str
) -> None:
    storage = {"backend": "redis", "redis_url": redis_url, "namespace": "reload-replicas"}
    doc = settings(fake, "ab", storage=storage)
    one = ProxyProcess(sys.executable, tmp_path / "one", doc).start()
    two = ProxyProcess(sys.executable, tmp_path / "two", doc).start()
    try:
        version = status(one)["config_version"]

        def versions() -> dict[str, str]:
            return {r["id"]: r["config_version"] for r in status(one)["replicas"]}

        wait_until("both replicas listed", lambda: len(versions()) == 2, 5)
        assert set(versions().values()) == {version}
        assert set(versions()) == {f"{r['id']}" for r in status(two)["replicas"]}
        rewrite(two, settings(fake, "abc", storage=storage))
        assert reload_cli(two).returncode == 0
        changed = status(two)["config_version"]
        wait_until("the mismatch shows", lambda: sorted(versions().values()) != [version] * 2, 5)
        assert sorted(versions().values()) == sorted([version, changed])
        seen = status(one)["replicas"][0]
        assert set(seen) == {"id", "config_version", "seen_at"}
        assert json.dumps(status(one)).count(redis_url) == 0
    finally:
        one.stop()
        two.stop()


def test_with_workers_every_worker_reloads(fake: FakeUpstream, tmp_path: Path) -> None:
    doc = settings(fake, "ab")
    proxy = ProxyProcess(sys.executable, tmp_path / "workers", doc, args=["--workers", "2"])
    proxy.start()
    try:
        before = status(proxy)["config_version"]
        rewrite(proxy, settings(fake, "abc"))
        done = reload_cli(proxy)  # one worker answers: it checks, the supervisor signals all
        assert done.returncode == 0, done.stderr
        after = done.stdout.split()[-1]
        assert after != before

        def everywhere() -> bool:  # a new connection each: the kernel spreads them
            return all(status(proxy)["config_version"] == after for _ in range(20))

        wait_until("every worker serves the new config", everywhere, 10)
        assert proxy.pid is not None
        rewrite(proxy, settings(fake, "a"))
        os.kill(proxy.pid, signal.SIGHUP)  # the supervisor forwards it
        wait_until(
            "every worker reloads on the supervisor's SIGHUP",
            lambda: all(len(status(proxy)["keys"]) == 1 for _ in range(20)),
            10,
        )
    finally:
        proxy.stop()
    assert proxy.exit_code == 0
    assert proxy.log().count("config reloaded") == 4  # two workers, two reloads


def test_watch_config_reloads_a_changed_file_once(fake: FakeUpstream, tmp_path: Path) -> None:
    doc = settings(fake, "ab", watch_config=True)
    proxy = ProxyProcess(sys.executable, tmp_path / "watch", doc).start()
    try:
        rewrite(proxy, settings(fake, "abc", watch_config=True))
        wait_until("the changed file is served", lambda: len(status(proxy)["keys"]) == 3, 5)
        rewrite(proxy, settings(fake, "abc", watch_config=True) | {"colour": 1})
        wait_until("the bad file is refused", lambda: "reload refused" in proxy.log(), 5)
        time.sleep(2.5)  # more ticks of the watcher: the same file is not tried again
        assert proxy.log().count("config reload refused") == 1
        assert len(status(proxy)["keys"]) == 3
    finally:
        proxy.stop()
