"""The Redis fixtures (conftest.py) with the client the server uses, `redis.asyncio`: the
session's server is emptied for each test, a factory server can be paused and restarted, and
the delay proxy slows the link."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from poolswitch_testing.delay_proxy import DelayProxy
from poolswitch_testing.redis_server import RedisServer

from conftest import RedisFactory, started_redis


@pytest.mark.parametrize("run", [1, 2])
def test_redis_url_is_empty_for_each_test(
    redis_url: str, redis_server: RedisServer, run: int
) -> None:
    """Each run finds the database empty and leaves a key and a script behind: whichever
    runs second proves the flush."""

    async def scenario() -> tuple[int, list[bool]]:
        client = aioredis.Redis.from_url(redis_url)
        try:
            size = await client.dbsize()
            sha = "e0e1f9fabfc9d4800c877a703b823ac0578ff8db"  # sha1("return 1")
            exists = await client.script_exists(sha)
            await client.set(f"left-behind-{run}", "x")
            await client.script_load("return 1")
            return size, exists
        finally:
            await client.aclose()

    size, exists = asyncio.run(scenario())
    assert size == 0
    assert exists == [False]
    assert redis_url == redis_server.url


def test_factory_server_with_password_pause_and_restart(redis_factory: RedisFactory) -> None:
    server = redis_factory(password="pw-fixture:@ 1", appendonly=True)
    url = server.url

    async def scenario() -> None:
        client = aioredis.Redis.from_url(server.url, socket_timeout=0.5)
        # AuthenticationError is a ConnectionError to redis-py: retried, with backoff, by default
        no_retry = Retry(NoBackoff(), 0)
        anonymous = aioredis.Redis(
            host="127.0.0.1", port=server.port, socket_timeout=0.5, retry=no_retry
        )
        try:
            await client.set("k", "v")
            started = time.monotonic()
            with pytest.raises(AuthenticationError):
                await anonymous.get("k")
            assert time.monotonic() - started < 1.0
            server.pause()
            started = time.monotonic()
            with pytest.raises((RedisTimeoutError, RedisConnectionError)):
                await client.get("k")
            assert time.monotonic() - started < 3.0
            server.resume()
            server.restart()
            await client.connection_pool.disconnect()
            assert await client.get("k") == b"v"
        finally:
            await client.aclose()
            await anonymous.aclose()

    asyncio.run(scenario())
    assert server.url == url  # the restart kept the port


def test_factory_servers_are_stopped_after_the_test(redis_factory: RedisFactory) -> None:
    first, second = redis_factory(), redis_factory()
    assert first.port != second.port
    assert first.directory != second.directory
    second.pause()  # teardown stops a paused server too


def test_delay_proxy_slows_the_client(redis_url: str, redis_server: RedisServer) -> None:
    async def scenario(link: DelayProxy) -> tuple[float, float]:
        client = aioredis.Redis.from_url(link.url_for("redis", path="/0"))
        try:
            await client.get("round-trip")
            started = time.monotonic()
            await client.get("round-trip")
            fast = time.monotonic() - started
            link.delay = 0.1
            started = time.monotonic()
            await client.get("round-trip")
            return fast, time.monotonic() - started
        finally:
            await client.aclose()

    with DelayProxy("127.0.0.1", redis_server.port) as link:
        fast, slow = asyncio.run(scenario(link))
    assert fast < 0.15
    assert 0.19 <= slow < 1.0


def test_a_missing_redis_server_fails_the_test_it_does_not_skip(tmp_path: Path) -> None:
    with pytest.raises(pytest.fail.Exception) as failure:
        started_redis(tmp_path, executable="/nonexistent/redis-server")
    assert str(failure.value).startswith("redis-server not found: apt-get install redis-server")
    assert not isinstance(failure.value, pytest.skip.Exception)
