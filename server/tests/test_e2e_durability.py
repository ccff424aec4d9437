"""Cooldowns and disables are committed before the answer that caused them reaches the caller.

The real `poolswitch start` process, with SQLite storage, is killed with SIGKILL right after
each answer that parked a key, and restarted on the same file: the key must still be parked.
"""

from __future__ import annotations

import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from poolswitch_testing.fake_upstream import FakeUpstream

from conftest import ProxyFactory, free_port

CYCLES = 50
START_TIMEOUT = 20.0

# key value -> key id; an even key answers 429 with Retry-After: 3600, an odd one 401
KEYS = {f"sk-durable-{n:02d}-SECRET": f"k{n:02d}" for n in range(CYCLES)}


def config_text(upstream_url: str, db: Path, backend: str = "sqlite") -> str:
    keys = "".join(f"  - {{id: {key_id}, value: {value}}}\n" for value, key_id in KEYS.items())
    return (
        f"upstream_base_url: {upstream_url}\n"
        "strategy: quota_failover\n"  # the first available key in file order: k00, k01, ...
        "retry_attempts: 1\n"  # answer with the upstream's 429 or 401 itself
        "verify_path: /v1/models\n"  # a 401 is confirmed (the fake says invalid there too)
        f"storage: {{backend: {backend}, sqlite_path: {db}}}\n"
        "keys:\n" + keys
    )


def script(upstream: FakeUpstream) -> None:
    for n, key_id in enumerate(KEYS.values()):
        if n % 2 == 0:
            upstream.script(key_id, {"kind": "rate_limit", "headers": {"retry-after": "3600"}})
        else:
            upstream.script(key_id, {"kind": "invalid_key"})


class Proxy:
    """`poolswitch start` as a process; its stderr goes to a file (a full pipe would block)."""

    def __init__(self, config: Path, log: Path) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"
        command = [sys.executable, "-m", "poolswitch", "start", "--config", str(config)]
        command += ["--port", self.url.rsplit(":", 1)[1], "--log-level", "warning"]
        with log.open("a") as err:
            self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err)
        self.client = httpx.Client(base_url=self.url, timeout=10)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                if self.client.get("/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.kill()
                raise RuntimeError("proxy did not start: " + log.read_text()[-2000:])
            time.sleep(0.01)

    def keys(self) -> dict[str, dict[str, Any]]:
        return {k["id"]: k for k in self.client.get("/status").json()["keys"]}

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self.client.close()


def parked(key: dict[str, Any], n: int, now: float) -> bool:
    if n % 2 == 0:
        return bool(
            key["state"] == "cooling_down"
            and key["reason"] == "rate_limited"
            and key["cooldown_until"] > now + 3000
        )
    return bool(key["state"] == "disabled" and key["reason"] == "key_invalid")


def test_each_parking_answer_survives_a_kill_9_right_after_it(tmp_path: Path) -> None:
    db, log = tmp_path / "state.db", tmp_path / "proxy.log"
    config = tmp_path / "poolswitch.yaml"
    ids = list(KEYS.values())
    timings: list[float] = []
    found, lost = 0, []
    with FakeUpstream(KEYS) as upstream:
        script(upstream)
        config.write_text(config_text(upstream.url, db))
        proxy = Proxy(config, log)
        try:
            for n, key_id in enumerate(ids):
                began = time.perf_counter()
                answer = proxy.client.get("/v1/models")
                timings.append(time.perf_counter() - began)
                proxy.kill()  # at once: nothing after the answer may be needed
                assert answer.status_code == (429 if n % 2 == 0 else 401), n
                assert answer.headers["x-poolswitch-key-id"] == key_id, n
                proxy = Proxy(config, log)
                keys = proxy.keys()
                now = time.time()
                if not parked(keys[key_id], n, now):
                    lost.append(keys[key_id])
                    break  # the next answer would come from this key again
                found += 1
                assert all(parked(keys[k], m, now) for m, k in enumerate(ids[:n]))
        finally:
            proxy.kill()
    assert (found, lost) == (CYCLES, []), log.read_text()[-3000:]
    assert upstream.key_ids() == ids  # no key was tried twice
    assert "Traceback" not in log.read_text()
    print(f"\nparking answers with sqlite: median {statistics.median(timings) * 1000:.2f} ms")


def rows(db: Path) -> dict[str, tuple[str | None, int]]:
    """What another process would read from the file now: key id -> (reason, disabled)."""
    with sqlite3.connect(db) as conn:
        found = conn.execute("SELECT key_id, reason, disabled FROM key_state").fetchall()
    return {key_id: (reason, disabled) for key_id, reason, disabled in found}


TOKEN = "admin-token-0123456789"
LIMITED = {"kind": "rate_limit", "headers": {"retry-after": "3600"}}


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


def sqlite(db: Path) -> dict[str, Any]:
    return {"storage": {"backend": "sqlite", "sqlite_path": str(db)}}


def test_an_answer_after_failovers_comes_after_their_commit(
    make_proxy: ProxyFactory, upstream: FakeUpstream, db: Path
) -> None:
    upstream.script("a", LIMITED)
    upstream.script("b", {"kind": "invalid_key"}, {"kind": "ok"})
    proxy = make_proxy("abc", strategy="quota_failover", **sqlite(db))
    with proxy.client() as client:
        answer = client.get("/v1/models")  # a: 429, b: 401, c: 200 (_relay)
        assert answer.status_code == 200 and answer.headers["x-poolswitch-key-id"] == "c"
        assert rows(db)["a"] == ("rate_limited", 0) and rows(db)["b"] == ("key_invalid", 1)


def test_every_answer_path_waits_for_the_commit(
    make_proxy: ProxyFactory, upstream: FakeUpstream, db: Path
) -> None:
    upstream.script("a", LIMITED)
    upstream.script("b", {"kind": "sse"})
    proxy = make_proxy(
        "ab", strategy="quota_failover", admin_token=TOKEN, verify_path="/v1/models", **sqlite(db)
    )
    auth = {"authorization": f"Bearer {TOKEN}"}
    with proxy.client() as client:
        with client.stream("POST", "/v1/chat/completions", json={"stream": True}) as stream:
            assert stream.headers["x-poolswitch-key-id"] == "b"  # _stream, after a's 429
            assert rows(db)["a"] == ("rate_limited", 0)
            stream.read()

        answer = client.post("/poolswitch/admin/keys/a/enable", headers=auth)
        assert answer.json()["state"] == "available" and rows(db)["a"] == (None, 0)  # admin API
        upstream.script("b", {"kind": "drop"})
        answer = client.get("/v1/models")  # a: 429, b dropped: 502 (_answer_error)
        assert answer.headers["x-poolswitch-error"] == "upstream_unreachable"
        assert rows(db)["a"] == ("rate_limited", 0)

        answer = client.post("/poolswitch/admin/keys/b/disable", headers=auth)
        assert answer.status_code == 200 and answer.json()["state"] == "disabled"
        assert rows(db)["b"] == ("disabled_by_operator", 1)

        answer = client.get("/v1/models")  # every key parked: the proxy's own error
        assert answer.headers["x-poolswitch-error"] == "no_available_keys"

        answer = client.post("/poolswitch/admin/keys/a/enable", headers=auth)
        assert answer.json()["state"] == "available" and rows(db)["a"] == (None, 0)
        upstream.script("a", {"kind": "invalid_key"})
        answer = client.get("/v1/models")  # a: 401, relayed as it is (_answer)
        assert answer.status_code == 401 and rows(db)["a"] == ("key_invalid", 1)


def test_a_locked_store_delays_the_answer_only_so_long(
    make_proxy: ProxyFactory,
    upstream: FakeUpstream,
    db: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Another process holds the file's write lock: the answer goes out after the commit
    timeout, the state is served from memory, and it lands once the lock is released."""
    upstream.script("a", LIMITED)
    proxy = make_proxy("ab", strategy="quota_failover", retry_attempts=1, **sqlite(db))
    proxy.app.pool.commit_timeout = 0.5  # (default 5 s) keeps the test short
    with proxy.client() as client:
        assert client.get("/health").status_code == 200
        lock = sqlite3.connect(db, isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")
        try:
            began = time.monotonic()
            answer = client.get("/v1/models")
            waited = time.monotonic() - began
            assert answer.status_code == 429
            assert client.get("/v1/models").headers["x-poolswitch-key-id"] == "b"
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        deadline = time.monotonic() + 20
        while rows(db).get("a", (None, 0))[0] != "rate_limited":
            assert time.monotonic() < deadline, "the cooldown never reached the file"
            time.sleep(0.05)
    assert 0.4 < waited < 4
    assert "committing key state took over 0.5s" in caplog.text
    assert "Traceback" not in caplog.text
