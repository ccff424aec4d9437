"""A real proxy (`python -m poolswitch start`, a subprocess) in front of the shared fake upstream
(in a thread), both on loopback, from the test-support package (`poolswitch_testing`).

`proxy` is one proxy for the whole session: tests that use it must not park keys (no 429, 402,
401, 403). Tests that park keys, or need other settings, start their own with `make_proxy`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from poolswitch_testing.fake_upstream import FakeUpstream
from poolswitch_testing.proxy import ProxyProcess, ProxyStartError, free_port

# key value -> key id, as the fake upstream knows them
KEYS = {"sk-sdk-alpha-0001-SECRET": "a", "sk-sdk-bravo-0002-SECRET": "b"}
VALUES = {key_id: value for value, key_id in KEYS.items()}
PYTHON = os.environ.get("POOLSWITCH_PYTHON", sys.executable)


class Proxy(ProxyProcess):
    """One `poolswitch start` process (the test-support package's) with its config and log in
    `directory`."""

    def __init__(self, directory: Path, settings: dict[str, Any]) -> None:
        super().__init__(PYTHON, directory, settings, log_level="warning")

    def start(self) -> Proxy:
        try:
            super().start()
        except ProxyStartError:
            raise RuntimeError(f"the proxy did not start:\n{self.log()}") from None
        return self


def settings(upstream: FakeUpstream, ids: str = "ab", **overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "upstream_base_url": upstream.url,
        "keys": [{"id": key_id, "value": VALUES[key_id]} for key_id in ids],
    }
    doc.update(overrides)
    return doc


def script_all(upstream: FakeUpstream, *behaviours: dict[str, Any]) -> None:
    """Give every key the same script, so the answer does not depend on the key picked."""
    for key_id in VALUES:
        upstream.script(key_id, *behaviours)


@pytest.fixture(scope="session")
def upstream_server() -> Iterator[FakeUpstream]:
    with FakeUpstream(KEYS) as fake:
        yield fake


@pytest.fixture
def upstream(upstream_server: FakeUpstream) -> Iterator[FakeUpstream]:
    """The session's fake upstream, with no scripts and no recorded attempts."""
    upstream_server.reset()
    yield upstream_server
    upstream_server.reset()


@pytest.fixture(scope="session")
def proxy(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Proxy]:
    """The shared proxy: keys a and b, 2 attempts per request, 4 KiB request bodies at most."""
    doc = settings(upstream_server, retry_attempts=2, max_request_body_bytes=4096)
    started = Proxy(tmp_path_factory.mktemp("proxy"), doc).start()
    yield started
    started.stop()


ProxyFactory = Callable[..., Proxy]


@pytest.fixture
def make_proxy(upstream: FakeUpstream, tmp_path: Path) -> Iterator[ProxyFactory]:
    """make_proxy(ids="a", **settings) -> a fresh proxy in front of `upstream`."""
    started: list[Proxy] = []

    def factory(ids: str = "ab", **overrides: Any) -> Proxy:
        directory = tmp_path / f"proxy{len(started)}"
        proxy = Proxy(directory, settings(upstream, ids, **overrides))
        started.append(proxy)
        return proxy.start()

    yield factory
    for proxy in started:
        proxy.stop()


@pytest.fixture
def dead_url() -> str:
    """A loopback URL where nothing listens."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture(autouse=True)
def no_token_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A `POOLSWITCH_TOKEN` of the shell running the tests must not reach the clients."""
    monkeypatch.delenv("POOLSWITCH_TOKEN", raising=False)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class SendCounter:
    """An httpx event hook that counts the requests the SDK sends to the proxy."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> None:
        self.requests.append(request)

    async def hook(self, request: httpx.Request) -> None:
        self.requests.append(request)

    @property
    def count(self) -> int:
        return len(self.requests)
