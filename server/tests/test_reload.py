"""reload.py: a new generation swapped in, key state carried over by (pool, id, value)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from poolswitch.app import PoolSwitchApp
from poolswitch.classifier import SUCCESS, Outcome, Verdict
from poolswitch.config import Config, parse_config
from poolswitch.reload import needs_restart, version_of_config, version_of_file
from poolswitch.storage import SQLiteStore

PARKED = Verdict(Outcome.RATE_LIMITED, True, 600.0)
NOW = 1_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def config(tmp_path: Path, ids: str = "ab", **settings: Any) -> Config:
    doc: dict[str, Any] = {
        "upstream_base_url": "http://127.0.0.1:9",
        "keys": [{"id": i, "value": f"sk-value-{i}"} for i in ids],
        "storage": {"backend": "sqlite", "sqlite_path": "state.db"},
    }
    doc.update(settings)
    return parse_config(doc, env={}, base_dir=tmp_path)


@asynccontextmanager
async def running(cfg: Config) -> AsyncIterator[PoolSwitchApp]:
    app = PoolSwitchApp(cfg, clock=Clock(), registry=CollectorRegistry())
    async with app.lifespan(app.builtins):
        yield app


async def stored(tmp_path: Path) -> dict[str, Any]:
    store = SQLiteStore(str(tmp_path / "state.db"))
    await store.open()
    try:
        return dict(await store.load("default"))
    finally:
        await store.close()


def reloads(app: PoolSwitchApp, result: str) -> float:
    value = app.metrics.registry.get_sample_value(
        "poolswitch_config_reloads_total", {"result": result}
    )
    assert value is not None
    return value


def test_kept_counters_are_not_counted_twice_in_sqlite(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(config(tmp_path)) as app:
            old = app.pools["default"]
            for _ in range(4):  # a, b, a, b: two written, two waiting
                old.record(old.select() or 0, SUCCESS)
                if old.states[1].total_requests == 1 and old.states[0].total_requests == 1:
                    await old.flush()
            writing = asyncio.ensure_future(old.flush())  # a write in flight at the reload
            await asyncio.sleep(0)
            result = await app.reload(config(tmp_path, "abc"))
            assert writing.done() and not old.writing
            assert result.ok and (result.added, result.removed, result.kept) == (1, 0, 2)
            new = app.pools["default"]
            assert new is not old and new.states[0] is old.states[0]
            old.record(0, SUCCESS)  # an old-generation request in flight ends
            new.record(new.select({1, 2}) or 0, SUCCESS)  # a
            await new.flush()
        rows = await stored(tmp_path)
        assert (rows["a"].total_requests, rows["a"].successes) == (3, 4)
        assert (rows["b"].total_requests, rows["b"].successes) == (2, 2)

    asyncio.run(scenario())


def test_a_parked_key_stays_parked_and_a_removed_key_is_never_selected(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(config(tmp_path, "abc")) as app:
            old = app.pools["default"]
            old.record(0, PARKED)
            await old.commit_transitions()
            result = await app.reload(config(tmp_path, "ac", strategy="least_used"))
            assert result.ok and result.removed == 1
            new = app.pools["default"]
            assert new.snapshot()[0].state == "cooling_down"
            assert new.states[0].available_at == NOW + 600
            assert [new.select() for _ in range(3)] == [1, 1, 1]
            # a request still retrying on the old generation: a parked, b removed
            assert old.select({2}) is None
            assert [k.id for k in new.snapshot()] == ["a", "c"]
        rows = await stored(tmp_path)
        assert rows["a"].available_at == NOW + 600

    asyncio.run(scenario())


def test_a_drain_and_the_recent_outcomes_carry_over(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(config(tmp_path, "ab")) as app:
            assert app.pools["default"].drain("b")
            app.lanes["default"].recent[1].extend(["success", "rate_limited"])
            assert (await app.reload(config(tmp_path, "abc"))).ok
            new = app.pools["default"]
            assert new.snapshot()[1].state == "drained"
            assert {new.select() for _ in range(4)} == {0, 2}
            assert list(app.lanes["default"].recent[1]) == ["success", "rate_limited"]
            assert list(app.lanes["default"].recent[2]) == []

    asyncio.run(scenario())


def test_a_transition_of_an_old_generation_request_is_committed(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(config(tmp_path)) as app:
            old = app.pools["default"]
            assert (await app.reload(config(tmp_path, "abc"))).ok
            old.record(1, PARKED)  # its answer is on the way out: durable first
            assert old.transitions_pending
            await old.commit_transitions()
            assert (await stored(tmp_path))["b"].available_at == NOW + 600
            assert app.pools["default"].states[1].available_at == NOW + 600

    asyncio.run(scenario())


def test_a_new_value_under_the_same_id_starts_afresh(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(config(tmp_path)) as app:
            old = app.pools["default"]
            old.record(0, PARKED)
            await old.commit_transitions()
            doc_keys = [{"id": "a", "value": "sk-rotated-a"}, {"id": "b", "value": "sk-value-b"}]
            changed = config(tmp_path, keys=doc_keys)
            result = await app.reload(changed)
            assert result.ok and (result.added, result.removed, result.kept) == (1, 1, 1)
            new = app.pools["default"]
            assert new.snapshot()[0].state == "available"
            assert old.states[0].disabled  # the old value: never selected again
            await new.flush()
        assert (await stored(tmp_path))["a"].available_at == 0.0

    asyncio.run(scenario())


def test_an_added_key_takes_what_the_store_kept_of_it(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(config(tmp_path, "ab")) as app:
            app.pools["default"].record(1, PARKED)
            await app.pools["default"].commit_transitions()
            assert (await app.reload(config(tmp_path, "a"))).ok
            assert (await app.reload(config(tmp_path, "ab"))).ok  # b is back
            assert app.pools["default"].snapshot()[1].state == "cooling_down"

    asyncio.run(scenario())


def test_a_setting_the_server_was_built_with_refuses_the_reload(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        async with running(config(tmp_path)) as app:
            before = app.generation
            bad = config(tmp_path, "abc", listen_port=9999, max_connections=5)
            with caplog.at_level(logging.INFO, "poolswitch.reload"):
                result = await app.reload(bad)
            assert not result.ok
            assert result.problems == [
                "listen_port: changing it needs a restart",
                "max_connections: changing it needs a restart",
            ]
            assert app.generation is before and len(app.pools["default"].keys) == 2
            assert reloads(app, "failed") == 1 and reloads(app, "ok") == 0
            lines = [r for r in caplog.records if r.name == "poolswitch.reload"]
            assert len(lines) == 1 and lines[0].levelno == logging.ERROR
            assert "listen_port" in lines[0].getMessage()

    asyncio.run(scenario())


def test_needs_restart_names_each_setting(tmp_path: Path) -> None:
    a = config(tmp_path)
    assert needs_restart(a, config(tmp_path, "abc", strategy="random")) == []
    b = config(tmp_path, storage={"backend": "memory"}, keepalive_timeout_seconds=3)
    assert needs_restart(a, b) == [
        "storage: changing it needs a restart",
        "keepalive_timeout_seconds: changing it needs a restart",
    ]


def test_callers_keep_their_use_and_clients_are_reused(tmp_path: Path) -> None:
    token = "caller-token-0123456789"
    callers = [{"id": "web", "token": token, "rpm": 5}]

    async def scenario() -> None:
        async with running(config(tmp_path, callers=callers)) as app:
            limit = app.gateway.callers["web"].limit
            assert limit.admit(NOW) is None
            forwarder = app.forwarders["default"]
            again = [{"id": "web", "token": token, "rpm": 9}, {"id": "new", "token": token + "x"}]
            assert (await app.reload(config(tmp_path, callers=again))).ok
            assert app.gateway.callers["web"].limit is limit and limit.rpm == 9
            assert limit.in_flight == 1 and limit.used(NOW) == 1
            assert app.forwarders["default"] is forwarder  # same upstream: the same client
            moved = config(tmp_path, callers=again, upstream_base_url="http://127.0.0.1:8")
            old = app.generation
            assert (await app.reload(moved)).ok
            assert app.forwarders["default"] is not forwarder
            await asyncio.sleep(0)  # the retiring task: nothing in flight, closes at once
            await asyncio.sleep(0)
            assert old.in_flight() == 0 and forwarder._client is None

    asyncio.run(scenario())


def test_the_new_redactor_and_status_know_the_new_config(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(config(tmp_path)) as app:
            first = app.status_document()
            assert first["config_version"] == version_of_config(config(tmp_path))
            assert first["reloaded_at"] is None and "replicas" not in first
            assert (await app.reload(config(tmp_path, "abz"), "0123456789ab")).ok
            assert app.redactor.redact(b"x sk-value-z y") == b"x z y"
            doc = app.status_document()
            assert doc["config_version"] == "0123456789ab" and doc["reloaded_at"] == NOW
            assert "sk-value" not in str(doc)

    asyncio.run(scenario())


def test_reload_file_refuses_an_invalid_file_naming_every_problem(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "poolswitch.yaml"
    path.write_text("upstream_base_url: http://127.0.0.1:9\nkeys:\n  - {id: a, value: sk-1}\n")

    async def scenario() -> None:
        app = PoolSwitchApp(
            parse_config(
                {"upstream_base_url": "http://127.0.0.1:9", "keys": [{"id": "a", "value": "sk-1"}]},
                env={},
            ),
            registry=CollectorRegistry(),
            config_path=str(path),
        )
        assert app.generation.version == version_of_file(path)
        async with app.lifespan(app.builtins):
            path.write_text(
                "upstream_base_url: http://127.0.0.1:9\nkeys:\n  - {id: a, value: ''}\n"
                "  - {id: b, value: sk-secret-b}\nsurprise: 1\n"
            )
            with caplog.at_level(logging.INFO, "poolswitch.reload"):
                result = await app.reload_file()
            assert not result.ok and len(result.problems) == 2
            assert any("surprise" in p for p in result.problems)
            assert any("keys[0].value" in p for p in result.problems)
            line = [r for r in caplog.records if r.name == "poolswitch.reload"]
            assert len(line) == 1 and "sk-secret-b" not in line[0].getMessage()
            assert [k.id for k in app.pool.keys] == ["a"]

    asyncio.run(scenario())


def test_version_of_file_is_12_hex_of_sha256(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(b"hello")
    assert version_of_file(path) == "2cf24dba5fb0"
    assert len(version_of_config(config(tmp_path))) == 12
