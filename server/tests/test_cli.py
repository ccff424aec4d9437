"""The `poolswitch` command, run as a real process."""

from __future__ import annotations

import os
import signal
import socket
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

from poolswitch.cli import format_status, main
from poolswitch_testing.fake_upstream import FakeUpstream

from conftest import VALUES, free_port


def poolswitch(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "poolswitch", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **(env or {})},
    )


def config_text(upstream_url: str, *extra: str, ids: str = "ab") -> str:
    keys = "".join(f"  - {{id: {i}, value: {VALUES[i]}}}\n" for i in ids)
    return (
        f"upstream_base_url: {upstream_url}\n" + "".join(e + "\n" for e in extra) + "keys:\n" + keys
    )


class Started:
    def __init__(self, config: Path, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log = config.with_suffix(f".{port}.log")
        command = [sys.executable, "-m", "poolswitch", "start", "--config", str(config)]
        with self.log.open("w") as log:  # a file, not a pipe: a full pipe would block the proxy
            self.process = subprocess.Popen(
                [*command, "--port", str(port)], stdout=subprocess.DEVNULL, stderr=log
            )
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.process.kill()
                raise RuntimeError("proxy did not start: " + self.log.read_text())
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        self.process.wait(timeout=40)
        return self.process.returncode, self.log.read_text()


@pytest.fixture
def start(tmp_config: Callable[[str], Path]) -> Iterator[Callable[[str], Started]]:
    running: list[Started] = []

    def run(text: str) -> Started:
        proxy = Started(tmp_config(text), free_port())
        running.append(proxy)
        return proxy

    yield run
    for proxy in running:
        if proxy.process.poll() is None:
            proxy.process.kill()
            proxy.process.wait(timeout=10)


def test_validate_ok(tmp_config: Callable[[str], Path]) -> None:
    result = poolswitch("validate", "--config", str(tmp_config(config_text("http://u"))))
    assert result.returncode == 0
    assert result.stdout.strip() == (
        "ok: 2 keys, strategy round_robin, storage memory, upstream http://u"
    )


def test_validate_lists_the_pools(tmp_config: Callable[[str], Path]) -> None:
    text = (
        "pools:\n"
        f"  - {{name: openai, upstream_base_url: http://u, "
        f"keys: [{{id: a, value: {VALUES['a']}}}]}}\n"
        f"  - {{name: groq, route: /g, upstream_base_url: http://g, strategy: random, keys: "
        f"[{{id: a, value: {VALUES['b']}}}, {{id: b, value: {VALUES['c']}}}]}}\n"
    )
    result = poolswitch("validate", "--config", str(tmp_config(text)))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "ok: 2 pools, storage memory",
        "  openai at /openai: 1 keys, strategy round_robin, upstream http://u",
        "  groq at /g: 2 keys, strategy random, upstream http://g",
    ]


def test_schema_prints_the_committed_json_schema() -> None:
    result = poolswitch("schema")
    assert result.returncode == 0, result.stderr
    committed = Path(__file__).parents[2] / "docs" / "poolswitch.schema.json"
    assert result.stdout == committed.read_text(encoding="utf-8")


def test_validate_reports_one_line_per_problem(tmp_config: Callable[[str], Path]) -> None:
    text = (
        config_text("ftp://u", "strategy: fastest", "surprise: 1")
        + '  - {id: c, value: "${OPENAI_KEY_2}"}\n'
    )
    for command in ("validate", "start"):
        result = poolswitch(command, "--config", str(tmp_config(text)))
        assert result.returncode == 2
        assert result.stdout == ""
        lines = result.stderr.strip().splitlines()
        assert lines == [
            "config error: surprise: unknown field",
            "config error: upstream_base_url: must be an http or https URL with a host, "
            "got scheme 'ftp', host 'u'",
            "config error: keys[2].value: environment variable OPENAI_KEY_2 is not set",
            "config error: strategy: unknown value (one of: round_robin, least_used, "
            "random, quota_failover)",
        ]
        assert "Traceback" not in result.stderr


def test_start_serves_and_drains_in_flight_requests_on_sigterm(
    start: Callable[[str], Started],
) -> None:
    with FakeUpstream({v: k for k, v in VALUES.items()}) as upstream:
        upstream.script("a", {"kind": "ok", "delay": 0.7})
        proxy = start(config_text(upstream.url))
        result: dict[str, int] = {}

        def slow_request() -> None:
            result["status"] = httpx.get(proxy.url + "/v1/slow", timeout=10).status_code

        thread = threading.Thread(target=slow_request)
        thread.start()
        deadline = time.monotonic() + 5
        while not upstream.attempts and time.monotonic() < deadline:
            time.sleep(0.01)
        code, stderr = proxy.stop(signal.SIGTERM)
        thread.join(timeout=10)
    assert result == {"status": 200}
    assert code == 0
    assert "GET /v1/slow 200 key=a attempts=1" in stderr
    for value in VALUES.values():
        assert value not in stderr


def test_status_and_metrics_commands(start: Callable[[str], Started]) -> None:
    with FakeUpstream({v: k for k, v in VALUES.items()}) as upstream:
        upstream.script("a", {"kind": "quota_exhausted"})
        proxy = start(config_text(upstream.url))
        httpx.get(proxy.url + "/v1/models", timeout=10)
        table = poolswitch("status", "--url", proxy.url)
        as_json = poolswitch("status", "--url", proxy.url, "--json")
        metrics = poolswitch("metrics", "--url", proxy.url)
        proxy.stop()
    assert table.returncode == 0
    assert "cooling_down" in table.stdout and "quota_exhausted" in table.stdout
    assert '"id": "a"' in as_json.stdout
    assert 'poolswitch_keys_available{pool="default"} 1.0' in metrics.stdout


def test_the_client_commands_find_the_proxy_through_poolswitch_url(
    start: Callable[[str], Started],
) -> None:
    with FakeUpstream({v: k for k, v in VALUES.items()}) as upstream:
        proxy = start(config_text(upstream.url))
        status = poolswitch("status", "--json", env={"POOLSWITCH_URL": proxy.url + "/"})
        flag_wins = poolswitch(
            "status", "--url", f"http://127.0.0.1:{free_port()}", env={"POOLSWITCH_URL": proxy.url}
        )
        proxy.stop()
    assert status.returncode == 0 and '"id": "a"' in status.stdout
    assert flag_wins.returncode == 1 and "cannot reach the proxy" in flag_wins.stderr


def test_status_of_a_proxy_that_is_not_running() -> None:
    result = poolswitch("status", "--url", f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot reach the proxy at")


def test_sqlite_state_survives_kill_9_one_second_after_a_cooldown(
    start: Callable[[str], Started], tmp_path: Path
) -> None:
    db = tmp_path / "state.db"
    with FakeUpstream({v: k for k, v in VALUES.items()}) as upstream:
        upstream.script("a", {"kind": "quota_exhausted"})
        text = config_text(upstream.url, f"storage: {{backend: sqlite, sqlite_path: {db}}}")
        first = start(text)
        assert httpx.get(first.url + "/v1/models", timeout=10).status_code == 200
        time.sleep(1.0)
        first.stop(signal.SIGKILL)
        second = start(text)
        keys = {k["id"]: k for k in httpx.get(second.url + "/status").json()["keys"]}
        for _ in range(3):
            assert httpx.get(second.url + "/v1/models").headers["x-poolswitch-key-id"] == "b"
        second.stop()
    assert keys["a"]["state"] == "cooling_down"
    assert keys["a"]["reason"] == "quota_exhausted"
    assert keys["a"]["cooldown_until"] > time.time() + 3500
    assert upstream.key_ids() == ["a", "b", "b", "b", "b"]


@pytest.mark.parametrize("place", ["corrupt", "under_a_file", "newer_schema"])
def test_an_unusable_sqlite_file_is_one_line_and_exit_2(
    tmp_config: Callable[[str], Path], tmp_path: Path, place: str
) -> None:
    if place == "corrupt":
        db = tmp_path / "state.db"
        db.write_bytes(os.urandom(4096))
        says = "is not a SQLite database (file is not a database)"
    elif place == "under_a_file":  # fails for root too, unlike a chmod
        (tmp_path / "file").write_text("")
        db = tmp_path / "file" / "state.db"
        says = "is not a directory"
    else:
        db = tmp_path / "state.db"
        with sqlite3.connect(db) as conn:
            conn.execute("PRAGMA user_version = 9")
        says = "written by a newer poolswitch (schema 9; this one reads up to 3)"
    before = db.read_bytes() if db.exists() else None
    text = config_text(
        f"http://127.0.0.1:{free_port()}", f"storage: {{backend: sqlite, sqlite_path: {db}}}"
    )
    for command in ("validate", "start"):
        result = poolswitch(command, "--config", str(tmp_config(text)))
        assert result.returncode == 2, result.stderr
        assert result.stdout == ""
        [line] = result.stderr.splitlines()
        assert line.startswith("storage error: storage.sqlite_path: ") and line.endswith(says)
    assert (db.read_bytes() if db.exists() else None) == before  # never reset


def test_format_status_table() -> None:
    doc: dict[str, Any] = {
        "strategy": "round_robin",
        "storage": "memory",
        "upstream_base_url": "http://u",
        "keys": [
            {
                "id": "a",
                "state": "cooling_down",
                "cooldown_until": 130.0,
                "reason": "rate_limited",
                "total_requests": 3,
                "errors": 1,
                "failovers": 1,
            },
            {
                "id": "b",
                "state": "available",
                "cooldown_until": None,
                "reason": None,
                "total_requests": 2,
                "errors": 0,
                "failovers": 0,
            },
        ],
    }
    lines = format_status(doc, now=100.0).splitlines()
    assert lines[0] == "strategy round_robin, storage memory, upstream http://u"
    assert lines[2].split() == [
        "KEY",
        "STATE",
        "RETURNS",
        "IN",
        "REASON",
        "REQUESTS",
        "ERRORS",
        "FAILOVERS",
    ]
    assert lines[3].split() == ["a", "cooling_down", "30s", "rate_limited", "3", "1", "1"]
    assert lines[4].split() == ["b", "available", "-", "-", "2", "0", "0"]
    doc["storage"] = "redis"
    doc["storage_health"] = {"status": "degraded", "reason": "redis at redis://r:6379: gone"}
    lines = format_status(doc, now=100.0).splitlines()
    assert lines[0] == (
        "STORAGE DEGRADED: redis at redis://r:6379: gone (serving on this process's own key state)"
    )
    assert lines[1] == "strategy round_robin, storage redis, upstream http://u"


def test_main_requires_a_command() -> None:
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2


def test_start_on_a_port_in_use_exits_1_with_one_line(tmp_config: Callable[[str], Path]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        config = tmp_config(config_text("http://127.0.0.1:9"))
        result = poolswitch("start", "--config", str(config), "--port", str(port))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]
