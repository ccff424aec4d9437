"""storage/redis.py against a real redis-server: the Lua merge, propagation between replicas,
outages. (The end-to-end replica tests are in test_e2e_replicas.py.)"""

from __future__ import annotations

import asyncio
import math
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from merge_cases import CASES, NOW, Case, update

from poolswitch.classifier import Outcome, Verdict
from poolswitch.config import parse_config
from poolswitch.errors import StorageError
from poolswitch.pool import Pool
from poolswitch.storage import create_store
from poolswitch.storage.base import PARK, KeyRecord
from poolswitch.storage.merge import merge
from poolswitch.storage.redis import RedisStore, reachable, stored_fields
from poolswitch_testing.proxy import free_port

KEYS = [{"id": "a", "value": "sk-redis-alpha-0001"}, {"id": "b", "value": "sk-redis-bravo-0002"}]
QUOTA = Verdict(Outcome.QUOTA_EXHAUSTED, cooldown=3600.0, source="test")
BOUND = 5.0  # seconds any wait below may take at most


def pool_config(**overrides: Any) -> Any:
    doc = {"upstream_base_url": "http://127.0.0.1:9", "keys": KEYS, "strategy": "round_robin"}
    return parse_config({**doc, **overrides}, env={}).pools[0]


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


async def until(check: Callable[[], bool], seconds: float = BOUND) -> float:
    """Seconds it took for `check()` to hold; fails the test after `seconds`."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > seconds:
            raise AssertionError(f"not within {seconds}s")
        await asyncio.sleep(0.001)
    return time.monotonic() - start


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_the_lua_script_merges_as_merge_py_does(case: Case, redis_url: str) -> None:
    store = RedisStore(redis_url, namespace="merge", clock=lambda: NOW)
    if case.stored is not None:
        redis.Redis.from_url(redis_url).hset(
            store.key("default", "k"), mapping=stored_fields(case.stored)
        )

    async def main() -> KeyRecord:
        await store.open()
        try:
            [written] = await store.write([case.update])
            return written
        finally:
            await store.close()

    assert run(main()) == merge(case.stored, case.update, NOW)


class Replica:
    """One proxy's pool and its Redis store, without the HTTP parts."""

    def __init__(self, url: str, **store: Any) -> None:
        self.store = RedisStore(url, namespace="replicas", **store)
        self.pool = Pool(pool_config(), self.store, flush_interval=0.05)

    async def __aenter__(self) -> Replica:
        await self.store.open()
        await self.pool.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.pool.close()
        await self.store.close()

    def parked(self, i: int) -> bool:
        return self.pool.states[i].available_at > time.time()


def test_a_transition_reaches_another_replica_within_100ms(redis_url: str) -> None:
    async def main() -> list[float]:
        delays = []
        async with Replica(redis_url) as a, Replica(redis_url) as b:
            for _ in range(20):
                a.pool.record(0, QUOTA)
                await a.pool.commit_transitions()
                delays.append(await until(lambda: b.parked(0)))
                a.pool.enable("a")
                await a.pool.commit_transitions()
                await until(lambda: not b.parked(0))
        return delays

    delays = sorted(run(main()))
    assert delays[-1] < 0.1, delays


def test_two_replicas_parking_one_key_at_once_keep_the_longer_cooldown(redis_url: str) -> None:
    async def main() -> tuple[float, float]:
        async with Replica(redis_url) as a, Replica(redis_url) as b:
            a.pool.record(0, Verdict(Outcome.RATE_LIMITED, cooldown=30.0, source="a"))
            b.pool.record(0, Verdict(Outcome.QUOTA_EXHAUSTED, cooldown=3600.0, source="b"))
            await asyncio.gather(a.pool.commit_transitions(), b.pool.commit_transitions())
            await until(lambda: a.pool.states[0].available_at == b.pool.states[0].available_at)
            return a.pool.states[0].available_at, b.pool.states[0].available_at

    first, second = run(main())
    assert first == second and first > time.time() + 3000


def test_counters_from_every_replica_add_up(redis_url: str) -> None:
    async def main() -> tuple[int, int]:
        async with Replica(redis_url) as a, Replica(redis_url) as b:
            for replica in (a, b):
                for _ in range(5):
                    replica.pool.select()
            await a.pool.flush()
            await b.pool.flush()
            await b.store._reconcile()
            await a.store._reconcile()
            return a.pool.snapshot()[0].total_requests, b.pool.snapshot()[0].total_requests

    assert run(main()) == (6, 6)  # round robin: a, b, a, b, a on each replica


def test_redis_unreachable_at_start_serves_degraded_or_refuses() -> None:
    url = "redis://user:s3cret-pass@127.0.0.1:9/0"
    assert reachable(url, 0.5) is not None
    assert "s3cret" not in (reachable(url, 0.5) or "")

    async def degraded() -> str | None:
        store = RedisStore(url)
        await store.open()
        try:
            with pytest.raises(StorageError) as err:
                await store.write([update(PARK, available_at=math.inf)])
            assert "s3cret" not in str(err.value)
            return store.problem
        finally:
            await store.close()

    problem = run(degraded())
    assert problem is not None and "127.0.0.1:9" in problem and "s3cret" not in problem

    async def refused() -> None:
        store = RedisStore(url, start_without_redis=False)
        with pytest.raises(
            StorageError, match=r"cannot reach redis at redis://127\.0\.0\.1:9"
        ) as e:
            await store.open()
        assert "s3cret" not in str(e.value)

    run(refused())


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """redis-server speaking only TLS (a self-signed certificate for 127.0.0.1) with a
    password: (port, the certificate to trust)."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    port = free_port()
    conf = tmp_path / "redis.conf"
    conf.write_text(
        f'port 0\ntls-port {port}\nbind 127.0.0.1\nsave ""\ndir {tmp_path}\n'
        f"tls-cert-file {cert}\ntls-key-file {key}\ntls-ca-cert-file {cert}\n"
        f"tls-auth-clients no\nrequirepass {PASSWORD}\n"
    )
    process = subprocess.Popen(["redis-server", str(conf)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline and process.poll() is None, "no TLS redis"
            time.sleep(0.05)
        yield port, cert
    finally:
        process.terminate()
        process.wait(10)


PASSWORD = "tls-redis-s3cret-pw"


def test_tls_with_a_password_works_and_the_password_stays_secret(
    tls_redis: tuple[int, Path],
) -> None:
    port, cert = tls_redis
    url = f"rediss://:{PASSWORD}@127.0.0.1:{port}/0?ssl_ca_certs={cert}"
    config = parse_config(
        {
            "upstream_base_url": "http://127.0.0.1:9",
            "keys": KEYS,
            "storage": {"backend": "redis", "redis_url": "${REDIS_URL}"},
        },
        env={"REDIS_URL": url},
    )
    assert PASSWORD not in repr(config)

    async def main() -> tuple[str | None, list[str]]:
        store = create_store(config.storage)
        pool = Pool(config.pools[0], store)
        await store.open()
        await pool.open()
        try:
            pool.record(0, QUOTA)
            await pool.commit_transitions()
            stored = await store.load("default")
        finally:
            await pool.close()
            await store.close()
        wrong = RedisStore(url.replace(PASSWORD, "not-the-password"), start_without_redis=False)
        with pytest.raises(StorageError) as err:
            await wrong.open()
        return stored["a"].reason, [str(err.value), wrong.server]

    reason, lines = run(main())
    assert reason == "quota_exhausted"
    assert all(PASSWORD not in line and "not-the-password" not in line for line in lines)
    assert lines[1] == f"rediss://127.0.0.1:{port}"


def test_replicas_publish_their_config_version_and_stale_ones_drop(redis_url: str) -> None:
    clock = [NOW]

    async def main() -> None:
        one = RedisStore(redis_url, namespace="heartbeat", clock=lambda: clock[0])
        two = RedisStore(redis_url, namespace="heartbeat", clock=lambda: clock[0])
        assert (
            create_store(
                parse_config({"upstream_base_url": "http://u", "keys": KEYS}, env={}).storage
            ).replicas()
            is None
        )
        await one.open()
        await two.open()
        try:
            one.announce("host:1", "aaaaaaaaaaaa")
            two.announce("host:2", "bbbbbbbbbbbb")
            await until(lambda: len(one.replicas()) == 2 and len(two.replicas()) == 2)
            assert one.replicas() == [
                {"id": "host:1", "config_version": "aaaaaaaaaaaa", "seen_at": NOW},
                {"id": "host:2", "config_version": "bbbbbbbbbbbb", "seen_at": NOW},
            ]
            await two.close()  # host:2 stops beating; past REPLICA_SECONDS it is dropped
            clock[0] += 11
            one.announce("host:1", "cccccccccccc")
            await until(lambda: [r["id"] for r in one.replicas()] == ["host:1"])
            assert one.replicas()[0]["config_version"] == "cccccccccccc"
        finally:
            await one.close()
            await two.close()
            redis.Redis.from_url(redis_url).delete("{heartbeat}:replicas")

    run(main())
