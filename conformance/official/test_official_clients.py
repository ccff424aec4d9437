"""The official Node SDKs (npm `openai`, `@anthropic-ai/sdk`) and openai-go, with their default
retry settings, against the real `poolswitch start` on an exhausted pool: the same cases as
server/tests/test_official_sdks.py for the Python SDKs. `nox -s official_sdks` runs it; the
fixtures build what they need (npm ci, go build) when it is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from poolswitch_testing.fake_upstream import FakeUpstream
from poolswitch_testing.official_bounds import (
    ANTHROPIC_MESSAGE,
    BOUNDED,
    FAST,
    GATEWAY_AUTH,
    GATEWAY_KEYS,
    GATEWAY_TOKENS,
    HELD,
    PROBE_HANGS,
    example_gateway,
)
from poolswitch_testing.proxy import ProxyProcess

HERE = Path(__file__).resolve().parent
GATEWAY = HERE.parents[1] / "examples" / "gateway.yaml"
KEYS = {"sk-official-alpha-0001-SECRET": "a", "sk-official-bravo-0002-SECRET": "b"}
BUILD_TIMEOUT = 600.0
CALL_TIMEOUT = 60.0

# client -> (the error class that means "rate limited", the body a success needs)
CLIENTS: dict[str, tuple[str, dict[str, Any] | None]] = {
    "node-openai": ("RateLimitError", None),
    "node-anthropic": ("RateLimitError", ANTHROPIC_MESSAGE),
    "openai-go": ("*openai.Error(429)", None),
}


def run(command: list[str], cwd: Path) -> None:
    subprocess.run(command, cwd=cwd, check=True, timeout=BUILD_TIMEOUT)


@pytest.fixture(scope="session")
def commands(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """client name -> the command that makes one call (the proxy URL is appended)."""
    node_dir, go_dir = HERE / "node", HERE / "go"
    if not (node_dir / "node_modules").is_dir():
        run(["npm", "ci", "--no-audit", "--no-fund"], node_dir)
    binary = tmp_path_factory.mktemp("official-go") / "call"
    run(["go", "build", "-o", str(binary), "."], go_dir)
    node = shutil.which("node") or "node"
    script = str(node_dir / "call.mjs")
    return {
        "node-openai": [node, script, "openai"],
        "node-anthropic": [node, script, "anthropic"],
        "openai-go": [str(binary)],
    }


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream(KEYS) as fake:
        yield fake


class Proxy:
    """The real `poolswitch start` in front of the fake upstream, for one test."""

    def __init__(self, process: ProxyProcess) -> None:
        self.process = process
        self.url = process.url

    def post(self, timeout: float = 10.0) -> httpx.Response:
        with httpx.Client(base_url=self.url, timeout=timeout) as client:
            return client.post("/v1/chat/completions", json={})

    def status(self) -> Any:
        return httpx.get(f"{self.url}/status", timeout=10).json()


@pytest.fixture
def start_proxy(upstream: FakeUpstream, tmp_path: Path) -> Iterator[Any]:
    started: list[ProxyProcess] = []

    def start(**settings: Any) -> Proxy:
        doc = {
            "upstream_base_url": upstream.url,
            "keys": [{"id": key_id, "value": value} for value, key_id in KEYS.items()],
            **settings,
        }
        directory = tmp_path / f"proxy{len(started)}"
        directory.mkdir()
        process = ProxyProcess(sys.executable, directory, doc)
        started.append(process)
        process.start()
        return Proxy(process)

    yield start
    for process in started:
        process.stop()


def call(
    commands: dict[str, list[str]], client: str, proxy: Proxy, base: str = "", token: str = ""
) -> dict[str, Any]:
    """One call through `client` to the proxy's URL + `base` (a pool's route), with `token`
    as the SDK's API key when given."""
    env = {**os.environ, "OFFICIAL_API_KEY": token} if token else None
    done = subprocess.run(
        [*commands[client], proxy.url + base],
        capture_output=True,
        text=True,
        timeout=CALL_TIMEOUT,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def exhaust(proxy: Proxy) -> httpx.Response:
    proxy.post()
    answer = proxy.post()
    assert answer.headers["x-poolswitch-error"] == "no_available_keys", answer.text
    return answer


@pytest.fixture(params=sorted(CLIENTS))
def client(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


def test_no_key_within_the_window_raises_the_rate_limit_error_fast(
    commands: dict[str, list[str]], client: str, upstream: FakeUpstream, start_proxy: Any
) -> None:
    for key in "ab":
        upstream.script(key, {"kind": "quota_exhausted"})
    proxy = start_proxy(cooldown_seconds=3600)
    answer = exhaust(proxy)
    assert answer.headers["x-should-retry"] == "false" and "retry-after" not in answer.headers
    spent = len(upstream.attempts)
    got = call(commands, client, proxy)
    print(f"\n{client} {got['version']}: no key within 60 s -> {got}")
    assert got["outcome"] == CLIENTS[client][0] and got["status"] == 429, got
    assert got["elapsed"] < FAST
    assert len(upstream.attempts) == spent


def test_a_key_back_in_two_seconds_is_retried_into_or_reported_within_a_bound(
    commands: dict[str, list[str]], client: str, upstream: FakeUpstream, start_proxy: Any
) -> None:
    ok: dict[str, Any] = {"kind": "ok"}
    if CLIENTS[client][1] is not None:
        ok["json"] = CLIENTS[client][1]
    for key in "ab":
        upstream.script(key, {"kind": "rate_limit", "headers": {"retry-after": "2"}}, ok)
    proxy = start_proxy()
    answer = exhaust(proxy)
    assert answer.headers["retry-after"] == "2" and answer.headers["x-should-retry"] == "true"
    got = call(commands, client, proxy)
    print(f"\n{client} {got['version']}: a key back in 2 s -> {got}")
    assert got["outcome"] in ("success", CLIENTS[client][0]), got
    assert got["elapsed"] < BOUNDED


def test_what_each_sdk_does_while_the_outage_guard_holds_requests(
    commands: dict[str, list[str]], client: str, upstream: FakeUpstream, start_proxy: Any
) -> None:
    for key in "ab":
        upstream.script(key, {"kind": "overloaded"})
    proxy = start_proxy(retry_attempts=1)
    for _ in range(3):  # a, b, a: most keys failing alike
        proxy.post()
    assert proxy.status()["outage"]["kind"] == "upstream"
    for key in "ab":
        upstream.script(key, {"kind": "overloaded", "delay": PROBE_HANGS})
    probe = threading.Thread(target=proxy.post, args=(PROBE_HANGS + 5,), daemon=True)
    probe.start()
    deadline = time.monotonic() + 5
    while len(upstream.attempts) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(upstream.attempts) == 4, "the probe did not reach the upstream"
    held = proxy.post()
    assert held.status_code == 503 and held.headers["x-poolswitch-error"] == "upstream_unavailable"
    got = call(commands, client, proxy)
    print(f"\n{client} {got['version']}: upstream_unavailable -> {got}")
    assert got["status"] == 503 and got["elapsed"] < HELD, got
    probe.join(timeout=PROBE_HANGS + 5)


def test_the_example_gateway_serves_each_client_through_its_pool_with_failover(
    commands: dict[str, list[str]], tmp_path: Path
) -> None:
    fakes = {
        pool: FakeUpstream(
            keys, auth_header=GATEWAY_AUTH[pool][0], auth_scheme=GATEWAY_AUTH[pool][1]
        )
        for pool, keys in GATEWAY_KEYS.items()
        if pool != "gemini"
    }
    routes = {"node-openai": "openai", "openai-go": "openai", "node-anthropic": "anthropic"}
    for fake in fakes.values():
        fake.start_in_thread()
    try:
        urls = {**{p: f.url for p, f in fakes.items()}, "gemini": "http://127.0.0.1:9"}
        for client, pool in routes.items():
            fake = fakes[pool]
            fake.reset()
            ok: dict[str, Any] = {"kind": "ok"}
            if CLIENTS[client][1] is not None:
                ok["json"] = CLIENTS[client][1]
            fake.script(f"{pool}-1", {"kind": "quota_exhausted"})
            fake.script(f"{pool}-2", ok)
            directory = tmp_path / client
            directory.mkdir()
            process = ProxyProcess(sys.executable, directory, example_gateway(GATEWAY, urls))
            process.start()
            try:
                got = call(
                    commands, client, Proxy(process), f"/{pool}", GATEWAY_TOKENS["WEB_TOKEN"]
                )
            finally:
                process.stop()
            print(f"\n{client} {got['version']} through /{pool} -> {got}")
            assert got["outcome"] == "success", got
            # the pool's first key is out of quota, its second served: failover inside the pool
            assert [a.key_id for a in fake.attempts] == [f"{pool}-1", f"{pool}-2"], client
    finally:
        for fake in fakes.values():
            fake.stop_thread()
