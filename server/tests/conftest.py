"""Shared fixtures: a fake upstream and a real proxy (uvicorn) on loopback, each in a thread;
a real redis-server.

The fake upstream and `free_port` come from the test-support package (`poolswitch_testing`,
`pip install -e ./testing`); so do `ProxyProcess`, a real `poolswitch start` subprocess, and
`RedisServer`, a real `redis-server` subprocess.

Redis: `redis_url` is an emptied database on the session's one server (`redis_server`);
`redis_factory()` starts a server of the test's own, to kill, pause or restart. Without
redis-server installed these fixtures fail (never skip): CI must run the Redis tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from poolswitch.app import PoolSwitchApp
from poolswitch.cli import build_server
from poolswitch.config import Config, parse_config
from poolswitch_testing.fake_upstream import FakeUpstream
from poolswitch_testing.proxy import free_port as free_port  # re-exported for the tests
from poolswitch_testing.redis_server import RedisServer, RedisServerNotFound

# key value -> key id, as the fake upstream knows them
KEYS = {
    "sk-test-alpha-0001-SECRET": "a",
    "sk-test-bravo-0002-SECRET": "b",
    "sk-test-charlie-0003-SECRET": "c",
}
VALUES = {key_id: value for value, key_id in KEYS.items()}


def config_dict(upstream_url: str, ids: str = "abc", **overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "upstream_base_url": upstream_url,
        "keys": [{"id": i, "value": VALUES[i]} for i in ids],
    }
    doc.update(overrides)
    return doc


def make_config(upstream_url: str, ids: str = "abc", **overrides: Any) -> Config:
    return parse_config(config_dict(upstream_url, ids, **overrides), env={})


class RunningProxy:
    """The app served by the same uvicorn setup as `poolswitch start`, in a thread."""

    def __init__(self, config: Config, **app_options: Any) -> None:
        self.app = PoolSwitchApp(config, **app_options)
        self.server = build_server(self.app, "127.0.0.1", 0, "info")
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def start(self) -> RunningProxy:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("proxy did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.sock.close()

    def client(self, **options: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10, **options)


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream(KEYS) as fake:
        yield fake


ProxyFactory = Callable[..., RunningProxy]


@pytest.fixture
def make_proxy(upstream: FakeUpstream) -> Iterator[ProxyFactory]:
    """make_proxy(ids="ab", strategy=..., **settings) -> a started proxy in front of `upstream`."""
    started: list[RunningProxy] = []

    def factory(
        ids: str = "abc", app_options: dict[str, Any] | None = None, **settings: Any
    ) -> RunningProxy:
        proxy = RunningProxy(make_config(upstream.url, ids, **settings), **(app_options or {}))
        started.append(proxy.start())
        return proxy

    yield factory
    for proxy in started:
        proxy.stop()


@pytest.fixture
def tmp_config(tmp_path: Path) -> Callable[[str], Path]:
    def write(text: str) -> Path:
        path = tmp_path / "poolswitch.yaml"
        path.write_text(text)
        return path

    return write


def started_redis(directory: Path, **options: Any) -> RedisServer:
    """A started RedisServer; a missing redis-server fails the test with the install line."""
    try:
        server = RedisServer(directory, **options)
    except RedisServerNotFound as error:
        missing = str(error)
    else:
        return server.start()
    pytest.fail(missing, pytrace=False)  # outside the except: one line, no chained traceback


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the whole session (no persistence). Tests use `redis_url`, which
    empties it first; a test that kills, pauses or restarts a server uses `redis_factory`."""
    server = started_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """`redis://127.0.0.1:<port>/0` on the session's server, emptied (keys and scripts)."""
    if not redis_server.alive():
        pytest.fail(
            f"the session's redis-server is gone (a test stopped it? use redis_factory):\n"
            f"{redis_server.tail()}",
            pytrace=False,
        )
    redis_server.flushall()
    return redis_server.url


RedisFactory = Callable[..., RedisServer]


@pytest.fixture
def redis_factory(tmp_path: Path) -> Iterator[RedisFactory]:
    """redis_factory(password=..., appendonly=..., port=...) -> a started RedisServer of the
    test's own, data in tmp_path; every one is stopped after the test (even if paused)."""
    started: list[RedisServer] = []

    def factory(**options: Any) -> RedisServer:
        server = started_redis(tmp_path / f"redis-{len(started)}", **options)
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()
