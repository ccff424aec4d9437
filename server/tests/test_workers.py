"""`poolswitch start --workers N`: a real supervisor and its worker processes on one port.

Which worker holds a connection is read from /proc (the server side of the TCP connection is a
socket in one worker's descriptor table), so the tests are Linux-only. They never depend on one
worker seeing another's cooldowns: every key answers ok, or slowly.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from poolswitch_testing.fake_upstream import FakeUpstream
from poolswitch_testing.proxy import ProxyProcess

from conftest import config_dict, free_port

pytestmark = pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads /proc (Linux)")

WAIT = 20.0
POLL = 0.05
CHAT = "/v1/chat/completions"
BODY = json.dumps({"model": "m", "messages": []})


def children(pid: int) -> set[int]:
    """The ids of `pid`'s child processes."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry))
    return found


def running(pid: int) -> bool:
    """`pid` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_for(what: str, check: Callable[[], bool], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(POLL)


def holder(conn: http.client.HTTPConnection, port: int, pids: set[int]) -> int | None:
    """The worker (of `pids`) whose socket is the server side of `conn`."""
    assert conn.sock is not None
    client_port = conn.sock.getsockname()[1]
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = (int(a.rsplit(":", 1)[1], 16) for a in fields[1:3])
        if local == port and remote == client_port:
            inodes.add(f"socket:[{fields[9]}]")
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                    return pid
            except OSError:
                continue
    return None


def post(conn: http.client.HTTPConnection) -> int:
    conn.request("POST", CHAT, body=BODY, headers={"content-type": "application/json"})
    response = conn.getresponse()
    response.read()
    return response.status


def scrape(conn: http.client.HTTPConnection) -> dict[str, float]:
    """`/metrics` through `conn`: each sample name (labels dropped) -> its sum."""
    conn.request("GET", "/metrics")
    response = conn.getresponse()
    text = response.read().decode()
    assert response.status == 200
    sums: dict[str, float] = {}
    for line in text.splitlines():
        match = re.match(r"^([a-z_]+)(?:\{[^}]*\})? (\S+)$", line)
        if match:
            sums[match[1]] = sums.get(match[1], 0.0) + float(match[2])
    return sums


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream({"sk-test-alpha-0001-SECRET": "a", "sk-test-bravo-0002-SECRET": "b"}) as up:
        yield up


@pytest.fixture
def workers(upstream: FakeUpstream, tmp_path: Path) -> Iterator[ProxyProcess]:
    """`poolswitch start --workers 2` with sqlite storage, both workers up."""
    settings = config_dict(
        upstream.url, "ab", storage={"backend": "sqlite", "sqlite_path": str(tmp_path / "s.db")}
    )
    proxy = ProxyProcess(sys.executable, tmp_path / "proxy", settings, args=["--workers", "2"])
    proxy.start()
    try:
        assert proxy.pid is not None
        supervisor = proxy.pid
        wait_for("two workers", lambda: len(children(supervisor)) == 2)
        # each has read the config (a test that rewrites it must not catch one still starting)
        wait_for("both workers serving", lambda: proxy.log().count(" keys with ") >= 2)
        yield proxy
    finally:
        proxy.stop()


def one_connection_per_worker(
    proxy: ProxyProcess,
) -> tuple[dict[int, http.client.HTTPConnection], int]:
    """Open connections (each answered once) until every worker holds one; close the others.
    Also how many requests that took."""
    assert proxy.pid is not None
    pids = children(proxy.pid)
    held: dict[int, http.client.HTTPConnection] = {}
    for sent in range(1, 201):
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        assert post(conn) == 200
        pid = holder(conn, proxy.port, pids)
        if pid is None or pid in held:
            conn.close()
        else:
            held[pid] = conn
        if len(held) == len(pids):
            return held, sent
    for conn in held.values():
        conn.close()
    raise AssertionError(f"200 connections reached only workers {sorted(held)} of {pids}")


def test_both_workers_serve_one_port(workers: ProxyProcess) -> None:
    held, _ = one_connection_per_worker(workers)
    try:
        assert len(held) == 2
        for conn in held.values():
            assert post(conn) == 200
    finally:
        for conn in held.values():
            conn.close()
    log = workers.log()
    assert f"2 workers on http://127.0.0.1:{workers.port}" in log
    assert log.count("worker 1 started") == 1 and log.count("worker 2 started") == 1


def test_metrics_totals_do_not_depend_on_the_worker_scraped(workers: ProxyProcess) -> None:
    held, sent = one_connection_per_worker(workers)
    total = sent + 9 + 29
    try:
        first, second = held.values()
        for _ in range(9):
            assert post(first) == 200
        for _ in range(29):
            assert post(second) == 200
        for conn in (first, second, first, second):
            sums = scrape(conn)
            assert sums["poolswitch_requests_total"] == total
            assert sums["poolswitch_upstream_attempts_total"] == total
            assert sums["poolswitch_request_duration_seconds_count"] == total
            assert sums["poolswitch_keys"] == 2  # the key state collector, from this worker
    finally:
        for conn in held.values():
            conn.close()


def test_a_killed_worker_is_restarted(workers: ProxyProcess) -> None:
    assert workers.pid is not None
    supervisor = workers.pid
    before = children(supervisor)
    victim = min(before)
    statuses: list[int | str] = []
    stop = threading.Event()

    def traffic() -> None:  # one request at a time, each on a new connection
        while not stop.is_set():
            conn = http.client.HTTPConnection("127.0.0.1", workers.port, timeout=10)
            try:
                statuses.append(post(conn))
            except (OSError, http.client.HTTPException) as exc:  # cut off by the kill
                statuses.append(type(exc).__name__)
            finally:
                conn.close()

    thread = threading.Thread(target=traffic)
    thread.start()
    try:
        wait_for("traffic", lambda: len(statuses) >= 20)
        os.kill(victim, signal.SIGKILL)
        wait_for("a new worker", lambda: len(children(supervisor) - before) == 1)
        now = children(supervisor)
        assert victim not in now and len(now) == 2
        for conn in one_connection_per_worker(workers)[0].values():  # the new one serves too
            conn.close()
        sent = len(statuses)
        wait_for("traffic after the restart", lambda: len(statuses) >= sent + 50)
    finally:
        stop.set()
        thread.join(WAIT)
    failed = [s for s in statuses if s != 200]
    assert len(failed) <= 1, failed  # at most the one in flight on the killed worker
    assert re.search(rf"worker \d \(pid {victim}\) killed by SIGKILL; restarting it", workers.log())
    workers.stop()
    assert workers.exit_code == 0


def test_sigterm_drains_every_worker(workers: ProxyProcess, upstream: FakeUpstream) -> None:
    upstream.script("a", {"kind": "ok", "delay": 2})
    upstream.script("b", {"kind": "ok", "delay": 2})
    assert workers.pid is not None
    pids = children(workers.pid)
    results: list[int] = []

    def slow() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", workers.port, timeout=20)
        try:
            results.append(post(conn))
        finally:
            conn.close()

    threads = [threading.Thread(target=slow) for _ in range(4)]
    for thread in threads:
        thread.start()
    wait_for("4 attempts upstream", lambda: len(upstream.attempts) == 4)
    started = time.monotonic()
    workers.stop()  # SIGTERM to the supervisor
    for thread in threads:
        thread.join(WAIT)
    assert results == [200] * 4
    assert workers.exit_code == 0
    assert time.monotonic() - started < 8
    assert not any(running(pid) for pid in pids)
    assert "stopping: draining 2 workers" in workers.log()


def test_workers_failing_at_start_stop_the_supervisor(workers: ProxyProcess) -> None:
    assert workers.pid is not None
    supervisor = workers.pid
    workers.config_path.write_text("keys: [\n")  # every new worker now exits 2 at once
    victim = min(children(supervisor))
    os.kill(victim, signal.SIGKILL)
    wait_for("the supervisor to give up", lambda: not workers.alive(), timeout=40)
    assert workers.exit_code == 1
    log = workers.log()
    assert re.search(
        r"worker \d \(pid \d+\) exited with code 2 within 5 s of starting, "
        r"5 times in a row: stopping every worker",
        log,
    ), log[-3000:]
    assert log.count("restarting it in") == 4  # 0.25, 0.5, 1 and 2 s: never a hot loop


def test_workers_stop_when_the_supervisor_is_killed(workers: ProxyProcess) -> None:
    assert workers.pid is not None
    pids = children(workers.pid)
    environ = Path(f"/proc/{min(pids)}/environ").read_bytes().split(b"\0")
    shared = next(
        v for k, _, v in (e.partition(b"=") for e in environ) if k == b"PROMETHEUS_MULTIPROC_DIR"
    )
    os.kill(workers.pid, signal.SIGKILL)
    wait_for("the workers to exit", lambda: not any(running(pid) for pid in pids))
    shutil.rmtree(os.fsdecode(shared))  # left behind: the supervisor could not remove it


def start(tmp_path: Path, upstream: FakeUpstream, *args: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "poolswitch.yaml"
    config.write_text(json.dumps(config_dict(upstream.url, "ab")))  # memory storage
    command = [sys.executable, "-m", "poolswitch", "start", "--config", str(config)]
    command += ["--port", str(free_port()), *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("POOLSWITCH_")}
    return subprocess.run(command, capture_output=True, text=True, timeout=WAIT, env=env)


def test_memory_storage_with_workers_is_a_config_error(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    done = start(tmp_path, upstream, "--workers", "2")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "config error: storage.backend: memory keeps key state in each process; "
        "--workers 2 needs sqlite or redis"
    ]


@pytest.mark.parametrize("count", ["0", "-1", "two"])
def test_workers_must_be_a_positive_number(
    tmp_path: Path, upstream: FakeUpstream, count: str
) -> None:
    done = start(tmp_path, upstream, f"--workers={count}")
    assert done.returncode == 2
    assert "argument --workers:" in done.stderr
