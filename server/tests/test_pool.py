from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest

from poolswitch.classifier import NETWORK_ERROR, SUCCESS, TIMEOUT, Outcome, Verdict
from poolswitch.config import parse_config
from poolswitch.errors import StorageError
from poolswitch.pool import COMMIT_RETRY_SECONDS, Pool
from poolswitch.storage import KeyRecord, KeyUpdate, MemoryStore, SQLiteStore, Store


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class RecordingStore(Store):
    name = "recording"

    def __init__(self, records: Mapping[str, KeyRecord] | None = None) -> None:
        super().__init__()
        self.records = dict(records or {})
        self.writes: list[list[KeyUpdate]] = []

    async def load(self, pool: str) -> Mapping[str, KeyRecord]:
        return self.records

    async def write(self, updates: Sequence[KeyUpdate]) -> Sequence[KeyRecord]:
        self.writes.append(list(updates))
        return ()


class GatedStore(RecordingStore):
    """Each write waits for `gate`; with `fail` set it then raises StorageError."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.started = 0
        self.fail = False

    async def write(self, updates: Sequence[KeyUpdate]) -> Sequence[KeyRecord]:
        self.started += 1
        await self.gate.wait()
        if self.fail:
            raise StorageError("sqlite store state.db: disk I/O error")
        return await super().write(updates)


async def until(condition: Callable[[], bool]) -> None:
    """Let other tasks run until `condition` holds (bounded: a few hundred turns)."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


def make_pool(
    store: Store | None = None, ids: str = "ab", **settings: object
) -> tuple[Pool, Clock]:
    doc: dict[str, object] = {
        "upstream_base_url": "http://u",
        "keys": [{"id": i, "value": f"sk-{i}"} for i in ids],
    }
    doc.update(settings)
    clock = Clock()
    pool = Pool(
        parse_config(doc, env={}).pools[0], store or MemoryStore(), clock=clock, flush_interval=3600
    )
    return pool, clock


RATE_LIMITED = Verdict(Outcome.RATE_LIMITED, True, 30.0)


def test_select_counts_requests_and_record_parks() -> None:
    pool, clock = make_pool()
    i = pool.select()
    assert i == 0
    pool.record(0, RATE_LIMITED, failover=True)
    snap = {k.id: k for k in pool.snapshot()}
    assert snap["a"].state == "cooling_down"
    assert snap["a"].cooldown_until == clock.now + 30
    assert snap["a"].reason == "rate_limited"
    assert (snap["a"].total_requests, snap["a"].errors, snap["a"].failovers) == (1, 1, 1)
    assert pool.select() == 1
    assert pool.select() == 1  # a is cooling down
    assert pool.counts() == (1, 2)


def test_key_returns_when_cooldown_ends() -> None:
    pool, clock = make_pool()
    pool.select()
    pool.record(0, RATE_LIMITED)
    clock.now += 30
    assert {k.id: k.state for k in pool.snapshot()} == {"a": "available", "b": "available"}
    assert pool.select({1}) == 0
    assert pool.snapshot()[0].reason is None


def test_retry_after_is_the_earliest_return() -> None:
    pool, clock = make_pool()
    assert pool.retry_after() == 0.0
    pool.record(0, Verdict(Outcome.RATE_LIMITED, True, 40.0))
    pool.record(1, Verdict(Outcome.QUOTA_EXHAUSTED, True, 3600.0))
    assert pool.select() is None
    assert pool.retry_after() == 40.0
    clock.now += 15
    assert pool.retry_after() == 25.0
    pool.states[0].disable("key_invalid")
    pool.states[1].disable("key_invalid")
    assert pool.retry_after() is None


def test_success_records_quota_estimate_and_failures_do_not_park_on_5xx() -> None:
    pool, _ = make_pool()
    pool.record(0, SUCCESS, remaining_quota=42)
    pool.record(1, NETWORK_ERROR, failover=True)
    snap = pool.snapshot()
    assert snap[0].estimated_remaining_quota == 42 and snap[0].successes == 1
    assert snap[1].state == "available" and snap[1].errors == 1


def test_flush_writes_deltas_and_urgent_changes() -> None:
    async def scenario() -> RecordingStore:
        store = RecordingStore({"a": KeyRecord("a", total_requests=10, successes=10)})
        pool, _ = make_pool(store)
        await pool.open()
        assert pool.snapshot()[0].total_requests == 10
        pool.select()
        pool.record(0, SUCCESS)
        pool.select()
        pool.record(1, RATE_LIMITED)  # urgent: wakes the writer at once
        await asyncio.sleep(0.05)
        assert store.writes, "an urgent change was not written promptly"
        await pool.close()
        return store

    store = asyncio.run(scenario())
    updates = {u.key_id: u for batch in store.writes for u in batch}
    assert updates["a"].add_requests == 1 and updates["a"].add_successes == 1
    assert updates["b"].reason == "rate_limited" and updates["b"].available_at > 0
    assert sum(u.add_requests for batch in store.writes for u in batch) == 2


def test_state_survives_reopen_with_sqlite(tmp_path: Path) -> None:
    path = str(tmp_path / "state.db")

    async def first() -> None:
        pool, _ = make_pool(SQLiteStore(path))
        await pool.store.open()
        await pool.open()
        pool.select()
        pool.record(0, RATE_LIMITED)
        pool.select()
        pool.record(1, SUCCESS)
        pool.states[1].disable("key_invalid")
        pool._changed(1, "set")
        await pool.close()
        await pool.store.close()

    async def second() -> list[tuple[str, str, str | None, int]]:
        pool, _ = make_pool(SQLiteStore(path))
        await pool.store.open()
        await pool.open()
        snap = [(k.id, k.state, k.reason, k.total_requests) for k in pool.snapshot()]
        await pool.close()
        await pool.store.close()
        return snap

    asyncio.run(first())
    assert asyncio.run(second()) == [
        ("a", "cooling_down", "rate_limited", 1),
        ("b", "disabled", "key_invalid", 1),
    ]


def test_failing_the_same_way_again_after_returning_doubles_the_cooldown() -> None:
    pool, clock = make_pool(cooldown_seconds=100)
    limited = Verdict(Outcome.RATE_LIMITED, True, 10.0, source="retry-after")
    pool.record(0, limited)
    assert pool.states[0].available_at == clock.now + 10
    pool.record(0, limited)  # a straggler while still parked: no escalation
    assert pool.states[0].available_at == clock.now + 10
    for expected in (20, 40, 80, 100, 100):  # doubling, capped at cooldown_seconds
        clock.now = pool.states[0].available_at
        pool.record(0, limited)
        assert pool.states[0].available_at - clock.now == expected
    assert "failed again after returning" in (pool.snapshot()[0].source or "")
    clock.now = pool.states[0].available_at
    pool.record(0, SUCCESS)
    pool.record(0, limited)
    assert pool.states[0].available_at - clock.now == 10  # a success resets it


def test_escalation_never_shortens_a_long_provider_reset() -> None:
    pool, clock = make_pool(cooldown_seconds=100)
    spend = Verdict(Outcome.QUOTA_EXHAUSTED, True, 5000.0, source="spend limit")
    pool.record(0, spend)
    clock.now = pool.states[0].available_at
    pool.record(0, spend)
    assert pool.states[0].available_at - clock.now == 5000


def test_invalid_key_is_disabled_until_an_operator_enables_it() -> None:
    pool, clock = make_pool()
    pool.record(0, Verdict(Outcome.KEY_INVALID, True, disable=True))
    clock.now += 10**9
    assert pool.snapshot()[0].state == "disabled"
    assert pool.select() == 1 and pool.select() == 1
    assert pool.enable("a") and not pool.enable("nope")
    assert pool.snapshot()[0].state == "available"
    assert pool.disable("b")
    assert pool.snapshot()[1].reason == "disabled_by_operator"


@pytest.mark.parametrize(
    ("verdict", "source"),
    [
        (Verdict(Outcome.UPSTREAM_ERROR, True), "3 consecutive 5xx"),
        (TIMEOUT, "3 consecutive timeouts"),
    ],
)
def test_repeated_5xx_or_timeouts_park_a_key_while_others_answer(
    verdict: Verdict, source: str
) -> None:
    pool, _ = make_pool(ids="abc")
    for _ in range(2):
        pool.record(0, verdict)
        pool.record(1, SUCCESS)
    assert pool.snapshot()[0].state == "available"
    pool.record(0, verdict)
    assert pool.snapshot()[0].state == "cooling_down"
    assert pool.snapshot()[0].reason == verdict.outcome.value
    assert pool.snapshot()[0].source == source


def test_repeated_failures_with_no_other_key_answering_park_nothing() -> None:
    pool, _ = make_pool(ids="ab")
    for _ in range(5):  # slow, sequential: too few failures at once to trip the guard
        pool.record(0, TIMEOUT)
        pool.guard._events.clear()  # the window passed
        pool.record(1, TIMEOUT)
        pool.guard._events.clear()
    assert {k.state for k in pool.snapshot()} == {"available"}


def test_repeated_5xx_parks_a_key_unless_the_upstream_is_down() -> None:
    error = Verdict(Outcome.UPSTREAM_ERROR, True)

    pool, _ = make_pool(ids="abc")
    for _ in range(3):
        for i in range(3):
            pool.record(i, error)
    assert pool.guard.tripped
    assert {k.state for k in pool.snapshot()} == {"available"}


def test_a_replaced_key_does_not_inherit_the_old_ones_state(tmp_path: Path) -> None:
    path = str(tmp_path / "state.db")

    async def run(value: str, park: bool) -> str:
        doc = {"upstream_base_url": "http://u", "keys": [{"id": "a", "value": value}]}
        pool = Pool(parse_config(doc, env={}).pools[0], SQLiteStore(path), clock=Clock())
        await pool.store.open()
        await pool.open()
        if park:
            pool.record(0, Verdict(Outcome.KEY_INVALID, True, disable=True))
        state = pool.snapshot()[0].state
        await pool.close()
        await pool.store.close()
        return state

    assert asyncio.run(run("sk-old", park=True)) == "disabled"
    assert asyncio.run(run("sk-old", park=False)) == "disabled"  # same key: still disabled
    assert asyncio.run(run("sk-new", park=False)) == "available"  # replaced: starts afresh
    assert asyncio.run(run("sk-new", park=False)) == "available"


DISABLED = Verdict(Outcome.KEY_INVALID, True, disable=True)


def test_a_transition_is_pending_until_committed_and_counters_are_not_transitions() -> None:
    async def scenario() -> None:
        store = RecordingStore()
        pool, _ = make_pool(store)
        await pool.open()
        pool.select()
        pool.record(0, SUCCESS)
        assert not pool.transitions_pending  # counters wait for the batch
        pool.record(1, RATE_LIMITED)
        assert pool.transitions_pending
        await pool.commit_transitions()
        assert not pool.transitions_pending
        written = {u.key_id: u for batch in store.writes for u in batch}
        assert written["b"].reason == "rate_limited"
        assert written["a"].add_requests == 1  # one write holds everything changed so far
        assert pool.disable("a") and pool.transitions_pending  # operator actions too
        await pool.commit_transitions()
        assert store.writes[-1][0].reason == "disabled_by_operator"
        await pool.close()

        memory, _ = make_pool()
        await memory.open()
        memory.record(0, DISABLED)
        assert not memory.transitions_pending  # nothing to wait for without a persistent store

    asyncio.run(scenario())


def test_concurrent_commits_share_the_write_in_flight() -> None:
    async def scenario() -> GatedStore:
        store = GatedStore()
        pool, _ = make_pool(store, ids="abc")
        await pool.open()
        pool.record(0, RATE_LIMITED)
        first = [asyncio.ensure_future(pool.commit_transitions()) for _ in range(5)]
        await until(lambda: store.started == 1)
        pool.record(1, DISABLED)  # noted while the first write is in flight: not in it
        later = [asyncio.ensure_future(pool.commit_transitions()) for _ in range(5)]
        await until(lambda: all(not t.done() for t in first + later))
        assert store.started == 1  # no write is started beside one in flight
        store.gate.set()
        await asyncio.gather(*first)
        assert not pool.transitions_pending or store.started == 2
        await asyncio.gather(*later)
        assert not pool.transitions_pending
        await pool.close()
        return store

    store = asyncio.run(scenario())
    assert store.started == 2
    assert [[u.key_id for u in batch] for batch in store.writes] == [["a"], ["b"]]


def test_a_failing_store_never_holds_the_answer_and_is_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        store = GatedStore()
        store.fail = True
        store.gate.set()
        pool, clock = make_pool(store)
        await pool.open()
        pool.record(0, RATE_LIMITED)
        await pool.commit_transitions()  # returns: the answer goes out
        assert store.started == 1 and pool.transitions_pending
        assert pool.snapshot()[0].state == "cooling_down"  # served from memory meanwhile
        await pool.commit_transitions()
        assert store.started == 1  # for a while, answers do not wait for a failing store
        clock.now += COMMIT_RETRY_SECONDS
        store.fail = False
        await pool.commit_transitions()
        assert store.started == 2 and not pool.transitions_pending
        assert store.writes[-1][0].reason == "rate_limited"
        await pool.close()

    with caplog.at_level(logging.ERROR, logger="poolswitch.pool"):
        asyncio.run(scenario())
    assert [r.getMessage() for r in caplog.records] == [
        "writing key state failed (kept in memory, retried): sqlite store state.db: disk I/O error"
    ]
    assert all(r.exc_info is None for r in caplog.records)


def test_a_commit_that_takes_too_long_is_not_waited_for(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> GatedStore:
        store = GatedStore()
        pool, clock = make_pool(store)
        pool.commit_timeout = 0.0  # a write not done at once takes "too long"
        await pool.open()
        pool.record(0, DISABLED)
        await pool.commit_transitions()  # returns: the answer goes out
        assert not store.writes and pool.transitions_pending
        store.gate.set()
        pool.commit_timeout = 1.0
        await pool.commit_transitions()
        assert not store.writes  # for a while, answers do not wait for a slow store
        clock.now += COMMIT_RETRY_SECONDS
        await pool.commit_transitions()
        assert not pool.transitions_pending
        await pool.close()
        return store

    with caplog.at_level(logging.ERROR, logger="poolswitch.pool"):
        store = asyncio.run(scenario())
    assert store.writes[0][0].reason == "key_invalid"
    assert len(caplog.records) == 1 and "took over 0.0s" in caplog.records[0].getMessage()


def test_an_operator_enabling_a_key_clears_the_outage_guard() -> None:
    pool, _ = make_pool(ids="ab")
    for i in (0, 1, 0):
        pool.record(i, Verdict(Outcome.UPSTREAM_OVERLOADED, True))
    assert pool.guard.holds
    assert pool.enable("b")
    assert not pool.guard.tripped and pool.guard.admit() and pool.guard.admit()


def test_a_key_answering_5xx_alone_is_parked_during_a_rate_limit_storm() -> None:
    error = Verdict(Outcome.UPSTREAM_ERROR, True)
    pool, _ = make_pool(ids="abc")
    pool.record(0, error)  # a's run of 5xx starts...
    pool.record(1, SUCCESS)  # ...while another key answers: a's fault, not the upstream's
    for i in (0, 1, 2):
        pool.record(i, Verdict(Outcome.RATE_LIMITED, True, 0.0))
    assert pool.guard.tripped_kind == "rate_limited"
    for _ in range(2):
        pool.record(0, error)
    assert pool.snapshot()[0].source == "3 consecutive 5xx"


def test_others_counters_applied_during_a_write_are_not_counted_twice() -> None:
    async def scenario() -> tuple[int, int, GatedStore]:
        store = GatedStore()
        pool, _ = make_pool(store, ids="a")
        await pool.open()
        for _ in range(3):
            pool.select()
        flushing = asyncio.ensure_future(pool.flush())
        await until(lambda: store.started == 1)
        # another replica's 5 requests arrive while this pool's 3 are being written
        fingerprint = pool.keys[0].fingerprint
        pool.apply([KeyRecord(key_id="a", fingerprint=fingerprint, total_requests=5)])
        store.gate.set()
        await flushing
        after_write = pool.snapshot()[0].total_requests
        # the store's own total then includes both
        pool.apply([KeyRecord(key_id="a", fingerprint=fingerprint, total_requests=8)])
        pool.select()
        await pool.flush()
        await pool.close()
        return after_write, pool.snapshot()[0].total_requests, store

    after_write, final, store = asyncio.run(scenario())
    assert (after_write, final) == (8, 9)
    assert [u.add_requests for batch in store.writes for u in batch] == [3, 1]


def test_a_newer_record_replaces_the_state_unless_a_change_of_its_own_is_pending() -> None:
    async def scenario() -> list[str]:
        store = RecordingStore()
        pool, _ = make_pool(store, ids="ab")
        await pool.open()
        fp = [k.fingerprint for k in pool.keys]
        parked = KeyRecord(key_id="a", fingerprint=fp[0], available_at=2e9, reason="q", version=7)
        pool.apply([parked])
        seen = [pool.snapshot()[0].state]
        pool.apply([KeyRecord(key_id="a", fingerprint=fp[0], version=6)])  # older: ignored
        seen.append(pool.snapshot()[0].state)
        pool.disable("b")  # pending SET on b: a record for b waits for this write's result
        pool.apply([KeyRecord(key_id="b", fingerprint=fp[1], version=99)])
        seen.append(pool.snapshot()[1].state)
        other = KeyRecord(key_id="a", fingerprint="0" * 16, version=100)  # another key's record
        pool.apply([other])
        seen.append(pool.snapshot()[0].state)
        await pool.close()
        return seen

    assert asyncio.run(scenario()) == ["cooling_down", "cooling_down", "disabled", "cooling_down"]
