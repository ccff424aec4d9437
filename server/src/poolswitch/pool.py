"""The key pool: the only code that changes key state.

`select()` picks a key for an attempt, `record()` applies what the upstream answered, and
`snapshot()` reports. All three run on the event loop, in memory, without awaiting: an in-place
update with no `await` in between is atomic there, so the hot path needs no lock and no copy.

Persistence runs beside it. Rare transitions (cooldown, disable, restore) are durable before the
answer that caused them reaches the caller: `record()` only notes them (`transitions_pending`),
and the proxy, right before it starts an answer, runs `if pool.transitions_pending: await
pool.commit_transitions()`, which commits them in one store transaction. Concurrent answers share
the write in flight. Counters are flushed every `flush_interval` seconds. All writes go one at a
time, each of everything changed so far; the store sees deltas (see storage.base).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass

from poolswitch.classifier import Fault, Outcome, Verdict
from poolswitch.config import PoolConfig
from poolswitch.errors import StorageError
from poolswitch.guard import OutageGuard
from poolswitch.keys import OPERATOR, Key, KeyState
from poolswitch.storage import KeyRecord, KeyUpdate, Store
from poolswitch.storage.base import PARK, RECOVERED, REPLACE, SET
from poolswitch.storage.merge import combine
from poolswitch.strategies import STRATEGIES

log = logging.getLogger("poolswitch.pool")

ERRORS_BEFORE_PARKING = 3
"""Consecutive 5xx answers or timeouts on one key, while other keys answered, that park it."""
SERVER_ERROR_COOLDOWN = 30.0
_LABELS = {Outcome.UPSTREAM_ERROR: "5xx", Outcome.TIMEOUT: "timeouts"}
COMMIT_RETRY_SECONDS = 1.0
"""After a failed write or a timed-out commit, answers stop waiting for the store and the writer
pauses this long (a timed-out write itself goes on); then the writer tries again."""

_STATE_FIELDS = ("available_at", "disabled", "reason", "source", "strikes")
"""What a store keeps of a key's state: the KeyState fields of the same names."""
_SOFT_FIELDS = ("estimated_remaining_quota", "last_used_at")

_COUNTERS = ("total_requests", "successes", "errors", "failovers")

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class KeySnapshot:
    """One key as `/status` and `/metrics` show it: ids and facts, never the value."""

    id: str
    state: str
    cooldown_until: float | None
    reason: str | None
    source: str | None
    total_requests: int
    successes: int
    errors: int
    failovers: int
    estimated_remaining_quota: int | None
    last_used_at: float | None


class Pool:
    def __init__(
        self,
        config: PoolConfig,
        store: Store,
        *,
        clock: Clock = time.time,
        rng: random.Random | None = None,
        flush_interval: float = 1.0,
        commit_timeout: float | None = None,
        on_remote: Callable[[KeyRecord, float], None] | None = None,
        attach: bool = True,
    ) -> None:
        self.name = config.name
        self.keys: tuple[Key, ...] = tuple(Key(k, config.auth_scheme) for k in config.keys)
        self.states: list[KeyState] = [KeyState(k.id) for k in self.keys]
        self.index = {k.id: i for i, k in enumerate(self.keys)}
        self.strategy = STRATEGIES[config.strategy](self.keys, self.states, rng or random.Random())
        self.cooldown_seconds = config.cooldown_seconds
        self.guard = OutageGuard(len(self.keys), clock)
        self.store = store
        self.clock = clock
        self.flush_interval = flush_interval
        self.commit_timeout = store.commit_timeout if commit_timeout is None else commit_timeout
        self.key_ids = tuple(k.id for k in self.keys)
        self._flushed = [(0, 0, 0, 0)] * len(self.keys)
        self._versions = [0] * len(self.keys)  # the version of each key's state last applied
        self._dirty: set[int] = set()
        self._kinds: dict[int, str] = {}  # keys with a state change not yet written: its kind
        self._on_remote = on_remote
        self.successor: Pool | None = None
        """Set once a reload handed this pool's keys over (reload.py): what it still does for
        its in-flight requests goes to the successor."""
        self._forward: dict[int, int] | None = None  # once handed over: kept key -> its index
        if attach:  # a reload attaches the new pool only when it swaps it in
            store.attach(self)
        self._wake: asyncio.Event | None = None
        self._writer: asyncio.Task[None] | None = None
        self._closing = False
        self.transitions_pending = False
        """True while a transition is not yet committed (never with a non-persistent store)."""
        self._transitions = 0  # transitions noted so far
        self._committed = 0  # of which committed
        self._inflight: asyncio.Task[Exception | None] | None = None
        self._store_failing_until = 0.0

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        """Load the stored state of the configured keys and start the background writer.
        (Call `store.attach(pool)` before the store opens for others' changes to arrive.)"""
        if self.store.persistent:
            self._wake = asyncio.Event()
        records = await self._stored()
        for i, key in enumerate(self.keys):
            record = records.get(key.id)
            if record is None:
                continue
            if record.fingerprint not in (None, key.fingerprint):
                # Another key now has this id: what was learned of the old one does not apply.
                self._changed(i, REPLACE)
                continue
            self._take(i, record)
        self.start()

    async def _stored(self) -> Mapping[str, KeyRecord]:
        try:
            return await self.store.load(self.name)
        except StorageError as exc:  # a shared store down at start: it is resynced later
            log.warning("pool %s starts on local state: %s", self.name, exc)
            return {}

    def start(self) -> None:
        """Start the background writer (open() does; a reload calls it when it swaps)."""
        if self.store.persistent and self._wake is None:
            self._wake = asyncio.Event()
        if self._wake is not None and self._writer is None:
            self._writer = asyncio.create_task(self._write_loop(), name="poolswitch-writer")

    async def adopt_stored(self, indices: Sequence[int]) -> None:
        """After a reload: take the stored state of keys `indices` (keys new to this process;
        it may have served them meanwhile), as `apply()` does; a key whose stored value
        differs starts afresh."""
        if not indices:
            return
        records = await self._stored()
        found = []
        for i in indices:
            record = records.get(self.keys[i].id)
            if record is None:
                continue
            if record.fingerprint not in (None, self.keys[i].fingerprint):
                self._changed(i, REPLACE)
            else:
                found.append(record)
        self.apply(found, remote=False)

    @property
    def writing(self) -> bool:
        """A store write is in flight."""
        return self._inflight is not None

    async def settle(self, timeout: float) -> bool:
        """Before a hand-over: write what is pending (a failure stays pending: it is handed
        over) and wait for the write in flight; False if one is still running after
        `timeout`. No write may be in flight at the hand-over: the successor continues from
        what was written."""
        if self._wake is None:
            return True
        with contextlib.suppress(Exception):  # logged by _write
            await asyncio.wait_for(self.flush(), timeout)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._inflight is not None and loop.time() < deadline:
            await asyncio.wait([self._inflight], timeout=deadline - loop.time())
        return self._inflight is None

    def replaced(self, i: int) -> None:
        """Key `i` has an id the running pool had with another value: what the store holds
        of the old key is replaced (not merged) at the next write."""
        self._changed(i, REPLACE)

    def hand_over(self, successor: Pool | None, kept: Mapping[int, int]) -> None:
        """A reload replaces this pool by `successor` (None: the pool is gone); `kept`: this
        pool's index -> the successor's, of each key kept with its id and value. Synchronous
        (the reload's swap).

        The successor takes the kept keys' state objects (an in-flight request of this pool
        that records an outcome updates the state the successor selects from) with what was
        written of them and what is waiting to be; from now on this pool forwards its changes
        and commits to the successor (the kept keys have one writer, so nothing is counted
        twice); its writer stops. A removed key is disabled in place: no request, in flight or
        new, selects it again; nothing writes that."""
        for i in range(len(self.states)):
            if i not in kept:
                self.states[i].disable("removed", "reload")
        if successor is not None:
            for i, j in kept.items():
                successor.states[j] = self.states[i]
                successor._flushed[j] = self._flushed[i]
                successor._versions[j] = self._versions[i]
            for i in self._dirty:  # what is waiting to be written, with its kind
                if i in kept:
                    successor._changed(kept[i], self._kinds.get(i))
        self._dirty, self._kinds = set(), {}
        self.successor, self._forward = successor, dict(kept)
        self.transitions_pending = self._wake is not None  # commits go to the successor
        self._closing = True
        if self._writer is not None:
            self._writer.cancel()
            self._writer = None

    async def close(self) -> None:
        """Stop the writer and persist what is left."""
        self._closing = True
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None
        if self.store.persistent:
            await self.flush()

    # -- the hot path ----------------------------------------------------------------------

    def select(self, tried: Container[int] = ()) -> int | None:
        """Index of the key for the next attempt, or None when none is available."""
        now = self.clock()
        i = self.strategy.select(now, tried)
        if i is not None:
            state = self.states[i]
            state.total_requests += 1
            state.last_used_at = now
            self._changed(i)
        return i

    def record(
        self,
        i: int,
        verdict: Verdict,
        *,
        failover: bool = False,
        remaining_quota: int | None = None,
    ) -> None:
        """Apply an attempt's verdict to key `i`; `failover` when the request moves on."""
        state = self.states[i]
        outcome = verdict.outcome
        if outcome is Outcome.SUCCESS:
            state.successes += 1
            if state.strikes or state.consecutive_errors:
                if state.strikes:
                    self._changed(i, RECOVERED)
                state.succeeded()
            if remaining_quota is not None:
                state.estimated_remaining_quota = remaining_quota
            self.guard.success()
            self._changed(i)
            return
        state.errors += 1
        if failover:
            state.failovers += 1
        guard = self.guard
        guard.failure(i, verdict)
        if verdict.disable:
            state.disable(outcome.value, verdict.source)
            log.warning("key %s disabled: %s", state.key_id, outcome.value)
        elif verdict.cooldown is not None:
            self._park(i, verdict.cooldown, outcome.value, verdict.source)
        elif verdict.fault is Fault.EITHER and not guard.holds:
            # A 5xx or a timeout is the upstream's fault, unless it keeps happening on this key
            # while other keys answer (the guard counts successes that follow failures).
            if not state.consecutive_errors:
                state.streak_mark = guard.recoveries
            state.consecutive_errors += 1
            if (
                state.consecutive_errors < ERRORS_BEFORE_PARKING
                or guard.recoveries == state.streak_mark
            ):
                self._changed(i)
                return
            state.consecutive_errors = 0
            source = f"{ERRORS_BEFORE_PARKING} consecutive {_LABELS.get(outcome, outcome.value)}"
            self._park(i, SERVER_ERROR_COOLDOWN, outcome.value, source)
        else:
            self._changed(i)
            return
        self._changed(i, PARK)

    def confirmed_invalid(self, i: int, source: str) -> None:
        """Key `i`'s earlier auth failure on this request turned out to be the key's fault
        (see verify.py): disable it now."""
        state = self.states[i]
        state.disable(Outcome.KEY_INVALID.value, source)
        self._changed(i, PARK)
        log.warning("key %s disabled: %s (%s)", state.key_id, Outcome.KEY_INVALID.value, source)

    def _park(self, i: int, seconds: float, reason: str, source: str | None) -> None:
        state = self.states[i]
        now = self.clock()
        longer = state.escalated(seconds, reason, max(self.cooldown_seconds, seconds), now)
        if longer > seconds:
            source = f"{source or reason}, x{longer / seconds:g} (failed again after returning)"
        state.park(now + longer, reason, source)
        log.info("key %s cooling down for %.1fs: %s (%s)", state.key_id, longer, reason, source)

    def enable(self, key_id: str) -> bool:
        """Operator action: put a key back in service. False if the id is unknown."""
        i = self.index.get(key_id)
        if i is None:
            return False
        self.states[i].restore()
        self.guard.reset()  # the operator says the pool is fit again: stop holding requests
        self._changed(i, SET)
        log.warning("key %s enabled by an operator", key_id)
        return True

    def disable(self, key_id: str, seconds: float | None = None) -> bool:
        """Operator action: take a key out of service until enabled again or, with `seconds`,
        for that long (then it returns by itself, like after a cooldown)."""
        i = self.index.get(key_id)
        if i is None:
            return False
        if seconds is None:
            self.states[i].disable(OPERATOR, "admin")
        else:
            self.states[i].hold(self.clock() + seconds, OPERATOR, "admin")
        self._changed(i, SET)
        log.warning("key %s disabled by an operator%s", key_id, _lasting(seconds))
        return True

    def reset(self, key_id: str, *, counters: bool = False) -> bool:
        """Operator action: the key's state back to fresh (KeyState.reset); with `counters`
        its stored record is replaced too, so the counters start again from 0."""
        i = self.index.get(key_id)
        if i is None:
            return False
        self.states[i].reset(counters=counters)
        if counters:
            self._flushed[i] = (0, 0, 0, 0)
        self.guard.reset()
        self._changed(i, REPLACE if counters else SET)
        log.warning("key %s reset by an operator%s", key_id, " (counters too)" if counters else "")
        return True

    def drain(self, key_id: str) -> bool:
        """Operator action: no new attempts on the key; those running finish (enable undoes
        it). In memory only: not stored, so neither other replicas nor a restart see it."""
        i = self.index.get(key_id)
        if i is None:
            return False
        self.states[i].draining = True
        log.warning("key %s draining (by an operator)", key_id)
        return True

    def _changed(self, i: int, kind: str | None = None) -> None:
        """Key `i` changed; `kind` (storage/merge.py) when its state did. Every kind but
        RECOVERED is a transition: committed before the answer that caused it goes out."""
        if self._forward is not None:  # handed over by a reload: the successor writes it
            j = self._forward.get(i)
            if j is not None and self.successor is not None:
                self.successor._changed(j, kind)
        elif self._wake is not None:
            self._dirty.add(i)
            if kind is not None:
                self._kinds[i] = combine(self._kinds.get(i), kind)
                if kind != RECOVERED:
                    self._transitions += 1
                    self.transitions_pending = True
                    self._wake.set()

    # -- the store's view ------------------------------------------------------------------

    def _take(self, i: int, record: KeyRecord) -> None:
        """Adopt a stored record's state and counters (those not yet written stay added)."""
        state = self.states[i]
        for name in _STATE_FIELDS + _SOFT_FIELDS:
            setattr(state, name, getattr(record, name))
        self._versions[i] = record.version
        self._take_counters(i, record)

    def _take_counters(self, i: int, record: KeyRecord) -> None:
        stored = (record.total_requests, record.successes, record.errors, record.failovers)
        before = self._flushed[i]
        if any(s < b for s, b in zip(stored, before, strict=True)):
            return  # older than what this pool wrote last: a late message
        state = self.states[i]
        local = self._counters(state)
        for name, s, b, mine in zip(_COUNTERS, stored, before, local, strict=True):
            setattr(state, name, s + mine - b)
        self._flushed[i] = stored

    def apply(self, records: Sequence[KeyRecord], *, remote: bool = True) -> None:
        """Records from the store (other processes' writes, or the merge of this pool's own):
        take each key's state when it is newer than what the pool has and the pool has no
        change of its own waiting to be written (that write merges both, and its result comes
        back here), and always the counters."""
        now = self.clock()
        for record in records:
            i = self.index.get(record.key_id)
            if i is None or record.fingerprint not in (None, self.keys[i].fingerprint):
                continue
            if record.version > self._versions[i] and i not in self._kinds:
                state = self.states[i]
                before = state.state(now)
                for name in _STATE_FIELDS:
                    setattr(state, name, getattr(record, name))
                self._versions[i] = record.version
                after = state.state(now)
                if remote and after != before:
                    log.info(
                        "key %s %s (learned from the store): %s",
                        record.key_id,
                        after.replace("_", " "),
                        record.reason or "back in service",
                    )
                if remote and self._on_remote is not None:
                    self._on_remote(record, now)
            self._take_counters(i, record)

    async def resync(self) -> None:
        """The store is reachable again: write back every key's cooldown or disable (the
        store keeps the stronger of its own and these, merge.py), then the counters."""
        self._store_failing_until = 0.0
        now = self.clock()
        for i, state in enumerate(self.states):
            if state.available_at > now:
                self._changed(i, PARK)
        if self._wake is not None:
            with contextlib.suppress(Exception):  # logged by _write; the writer retries
                await self.flush()

    # -- reporting -------------------------------------------------------------------------

    def retry_after(self) -> float | None:
        """Seconds until the earliest unavailable key returns; None if none ever will."""
        now = self.clock()
        earliest = min(
            (s.available_at for s in self.states if not s.disabled and not s.draining),
            default=math.inf,
        )
        if earliest == math.inf:
            return None
        return max(earliest - now, 0.0)

    def counts(self) -> tuple[int, int]:
        """(keys available now, keys in all)."""
        now = self.clock()
        return (
            sum(1 for s in self.states if s.available_at <= now and not s.draining),
            len(self.states),
        )

    def snapshot(self) -> list[KeySnapshot]:
        now = self.clock()
        return [
            KeySnapshot(
                id=s.key_id,
                state=s.state(now),
                cooldown_until=s.cooldown_until(now),
                reason=s.reason if s.available_at > now else None,
                source=s.source if s.available_at > now else None,
                total_requests=s.total_requests,
                successes=s.successes,
                errors=s.errors,
                failovers=s.failovers,
                estimated_remaining_quota=s.estimated_remaining_quota,
                last_used_at=s.last_used_at,
            )
            for s in self.states
        ]

    # -- persistence -----------------------------------------------------------------------

    @staticmethod
    def _counters(s: KeyState) -> tuple[int, int, int, int]:
        return (s.total_requests, s.successes, s.errors, s.failovers)

    def _update(self, i: int, kind: str | None) -> KeyUpdate:
        s = self.states[i]
        counts = self._counters(s)
        before = self._flushed[i]
        update = KeyUpdate(
            kind=kind,
            key_id=s.key_id,
            fingerprint=self.keys[i].fingerprint,
            available_at=s.available_at,
            disabled=s.disabled,
            reason=s.reason,
            source=s.source,
            strikes=s.strikes,
            estimated_remaining_quota=s.estimated_remaining_quota,
            last_used_at=s.last_used_at,
            add_requests=counts[0] - before[0],
            add_successes=counts[1] - before[1],
            add_errors=counts[2] - before[2],
            add_failovers=counts[3] - before[3],
            pool=self.name,
        )
        return update

    async def commit_transitions(self) -> None:
        """Commit every transition noted so far, before an answer goes out. Never raises: when
        the store fails (or takes over the store's `commit_timeout`), that is logged once per
        write, the state stays in memory (the writer retries) and, for `COMMIT_RETRY_SECONDS`,
        answers stop waiting for the store."""
        if self._forward is not None:  # handed over: the successor commits
            if self.successor is not None:
                await self.successor.commit_transitions()
            return
        if self.clock() < self._store_failing_until:
            return
        target = self._transitions
        try:
            error = await asyncio.wait_for(
                self._write_including(lambda: self._committed >= target), self.commit_timeout
            )
        except asyncio.TimeoutError as exc:
            log.error(
                "committing key state took over %.1fs: answering without waiting for it "
                "(it is kept in memory and retried)",
                self.commit_timeout,
            )
            error = exc
        except Exception as exc:  # a bug here must not keep the answer from the caller
            log.exception("committing key state failed")
            error = exc
        if error is not None:
            self._store_failing_until = self.clock() + COMMIT_RETRY_SECONDS

    async def flush(self) -> None:
        """Write every change made so far; on failure they stay pending and StorageError (or
        what the store raised) is raised."""
        error = await self._write_including(lambda: not self._dirty)
        if error is not None:
            raise error

    async def _write_including(self, done: Callable[[], bool]) -> Exception | None:
        """Wait until `done()`: a write holds what the caller needs. The write in flight may
        hold only older changes; then one more follows, shared by every caller that needs it.
        Writes never overlap (each computes its counter deltas from the one before). Returns
        the failed write's exception, or None."""
        if self._inflight is not None:
            error = await asyncio.shield(self._inflight)
            if error is not None or done():
                return error
        if self._forward is not None:  # handed over meanwhile: the successor writes it
            if self.successor is not None:
                await self.successor.commit_transitions()
            return None
        if self._inflight is None:  # else another caller began one since: it holds ours
            if done():
                return None
            self._inflight = asyncio.ensure_future(self._write())
        return await asyncio.shield(self._inflight)

    async def _write(self) -> Exception | None:
        """One write of every change so far; on failure they stay pending."""
        try:
            dirty, self._dirty = self._dirty, set()
            kinds, self._kinds = self._kinds, {}
            transitions = self._transitions
            taken = {i: self._update(i, kinds.get(i)) for i in sorted(dirty)}
            if taken:
                try:
                    merged = await self.store.write(list(taken.values()))
                except Exception as exc:
                    self._dirty |= dirty
                    for i, kind in kinds.items():  # put back with what came since
                        self._kinds[i] = combine(self._kinds.get(i), kind)
                    self._store_failing_until = self.clock() + COMMIT_RETRY_SECONDS
                    if not isinstance(exc, StorageError):
                        log.exception("writing key state failed (kept in memory, retried)")
                    elif self.store.problem is None:  # once per outage (a store may say first)
                        log.error("writing key state failed (kept in memory, retried): %s", exc)
                    self.store.failing(str(exc), self.clock())
                    return exc
                if self.store.problem is not None and self.store.recovers_on_write:
                    self.store.working()
                for i, u in taken.items():
                    # what this write added; a record applied meanwhile may have moved the base
                    f = self._flushed[i]
                    self._flushed[i] = (
                        f[0] + u.add_requests,
                        f[1] + u.add_successes,
                        f[2] + u.add_errors,
                        f[3] + u.add_failovers,
                    )
                self.apply(merged, remote=False)
            self._committed = transitions
            self.transitions_pending = self._committed < self._transitions
            return None
        finally:
            self._inflight = None

    async def _write_loop(self) -> None:
        assert self._wake is not None
        # Python 3.11's wait_for may swallow a cancel that meets its timeout: the flag ends
        # the loop all the same.
        while not self._closing:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.flush_interval)
            self._wake.clear()
            if self.clock() < self._store_failing_until:
                continue  # it just failed: serve from memory, try again next round
            with contextlib.suppress(Exception):  # logged by _write
                await self.flush()


def _lasting(seconds: float | None) -> str:
    return "" if seconds is None else f" for {seconds:g}s"
