"""The operator's actions on keys, in memory: drain bookkeeping, a timed disable on an injected
clock (and across a restart with sqlite), reset with and without the counters."""

from __future__ import annotations

import asyncio
from pathlib import Path

from test_pool import RATE_LIMITED, Clock, make_pool

from poolswitch.classifier import SUCCESS
from poolswitch.keys import DRAINED, DRAINING
from poolswitch.pool import Pool
from poolswitch.proxy import Exchange
from poolswitch.storage import SQLiteStore


def states(pool: Pool) -> dict[str, str]:
    return {k.id: k.state for k in pool.snapshot()}


def test_a_drained_key_finishes_its_attempt_and_gets_no_new_one() -> None:
    pool, _ = make_pool(ids="ab", strategy="round_robin")
    ex = Exchange()
    i = pool.select()
    assert i == 0
    ex.use(pool.states[i])  # an attempt on a is running
    assert pool.drain("a") and not pool.drain("nope")
    assert states(pool)["a"] == DRAINING and pool.states[0].in_flight == 1
    assert {pool.select() for _ in range(6)} == {1}  # never a again
    assert pool.counts() == (1, 2)
    ex.use(None)  # the attempt ended
    assert states(pool)["a"] == DRAINED and pool.states[0].in_flight == 0
    assert pool.enable("a")
    assert states(pool)["a"] == "available" and not pool.states[0].draining
    assert {pool.select() for _ in range(4)} == {0, 1}


def test_every_strategy_skips_draining_keys() -> None:
    for strategy in ("round_robin", "least_used", "random", "quota_failover"):
        pool, _ = make_pool(ids="abc", strategy=strategy)
        pool.drain("a")
        pool.drain("c")
        assert {pool.select() for _ in range(20)} == {1}, strategy
        pool.drain("b")
        assert pool.select() is None and pool.retry_after() is None, strategy


def test_exchange_moves_its_in_flight_count_from_key_to_key() -> None:
    pool, _ = make_pool(ids="ab")
    ex = Exchange()
    ex.use(pool.states[0])
    ex.use(pool.states[1])  # failover: the first attempt is over
    assert [s.in_flight for s in pool.states] == [0, 1]
    ex.use(None)
    assert [s.in_flight for s in pool.states] == [0, 0]


def test_a_timed_disable_returns_by_itself() -> None:
    pool, clock = make_pool(ids="ab")
    assert pool.disable("a", 600)
    a = pool.snapshot()[0]
    assert (a.state, a.reason, a.source) == ("cooling_down", "disabled_by_operator", "admin")
    assert a.cooldown_until == clock.now + 600
    assert {pool.select() for _ in range(4)} == {1}
    clock.now += 601
    assert states(pool)["a"] == "available"
    assert 0 in {pool.select() for _ in range(4)}


def test_a_timed_disable_replaces_a_disable_and_ends_a_drain() -> None:
    pool, clock = make_pool(ids="ab")
    pool.disable("a")
    pool.drain("b")
    pool.disable("a", 60)
    pool.disable("b", 60)
    assert states(pool) == {"a": "cooling_down", "b": "cooling_down"}
    clock.now += 61
    assert states(pool) == {"a": "available", "b": "available"}


def test_a_timed_disable_survives_a_restart_with_sqlite(tmp_path: Path) -> None:
    path = str(tmp_path / "state.db")
    clock = Clock()

    async def run(action: bool) -> tuple[str, float | None, str | None]:
        pool, own = make_pool(SQLiteStore(path, clock=clock))
        own.now = clock.now
        await pool.store.open()
        await pool.open()
        if action:
            pool.disable("a", 600)
            assert pool.transitions_pending
            await pool.commit_transitions()
        a = pool.snapshot()[0]
        await pool.close()
        await pool.store.close()
        return a.state, a.cooldown_until, a.reason

    asyncio.run(run(True))
    clock.now += 10
    assert asyncio.run(run(False)) == (
        "cooling_down",
        Clock().now + 600,
        "disabled_by_operator",
    )


def test_reset_clears_the_state_and_keeps_the_counters() -> None:
    pool, _ = make_pool(ids="ab", strategy="quota_failover")
    assert pool.select() == 0
    pool.record(0, RATE_LIMITED)
    state = pool.states[0]
    state.consecutive_errors = 2
    pool.drain("a")
    assert state.strikes and state.available_at
    assert pool.reset("a") and not pool.reset("nope")
    assert (state.available_at, state.strikes, state.consecutive_errors) == (0.0, 0, 0)
    assert (state.reason, state.source, state.draining) == (None, None, False)
    assert state.total_requests == 1 and state.errors == 1


def test_reset_with_counters_starts_them_again_also_in_the_store(tmp_path: Path) -> None:
    path = str(tmp_path / "state.db")

    async def run(reset: bool) -> tuple[str, int, int]:
        pool, _ = make_pool(SQLiteStore(path), strategy="quota_failover")
        await pool.store.open()
        await pool.open()
        if reset:
            for _ in range(3):
                pool.select()
                pool.record(0, SUCCESS)
            pool.disable("a")
            await pool.flush()
            pool.reset("a", counters=True)
            await pool.commit_transitions()
            pool.select()  # one request after the reset
        a = pool.snapshot()[0]
        await pool.close()
        await pool.store.close()
        return a.state, a.total_requests, a.successes

    assert asyncio.run(run(True)) == ("available", 1, 0)
    assert asyncio.run(run(False)) == ("available", 1, 0)
