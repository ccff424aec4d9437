"""The key pool: the only code that changes key state.

`select()` picks a key for an attempt, `record()` applies what the upstream answered, and
`snapshot()` reports. All three run on the event loop, in memory, without awaiting: an in-place
update with no `await` in between is atomic there, so the hot path needs no lock and no copy.

Persistence runs beside it: rare transitions (cooldown, disable, restore) wake the writer at once;
counters are flushed every `flush_interval` seconds. The store sees deltas (see storage.base).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Callable, Container
from dataclasses import dataclass

from poolswitch.classifier import Outcome, Verdict
from poolswitch.config import Config
from poolswitch.keys import Key, KeyState
from poolswitch.storage import KeyUpdate, Store
from poolswitch.strategies import STRATEGIES

log = logging.getLogger("poolswitch.pool")

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class KeySnapshot:
    """One key as `/status` and `/metrics` show it: ids and facts, never the value."""

    id: str
    state: str
    cooldown_until: float | None
    reason: str | None
    total_requests: int
    successes: int
    errors: int
    failovers: int
    estimated_remaining_quota: int | None
    last_used_at: float | None


class Pool:
    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        clock: Clock = time.time,
        rng: random.Random | None = None,
        flush_interval: float = 1.0,
    ) -> None:
        self.keys: tuple[Key, ...] = tuple(Key(k, config.auth_scheme) for k in config.keys)
        self.states: list[KeyState] = [KeyState(k.id) for k in self.keys]
        self.index = {k.id: i for i, k in enumerate(self.keys)}
        self.strategy = STRATEGIES[config.strategy](self.keys, self.states, rng or random.Random())
        self.store = store
        self.clock = clock
        self.flush_interval = flush_interval
        self._flushed = [(0, 0, 0, 0)] * len(self.keys)
        self._dirty: set[int] = set()
        self._wake: asyncio.Event | None = None
        self._writer: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        """Load the stored state of the configured keys and start the background writer."""
        records = await self.store.load()
        for i, key in enumerate(self.keys):
            record = records.get(key.id)
            if record is None:
                continue
            state = self.states[i]
            state.available_at = record.available_at
            state.disabled = record.disabled
            state.reason = record.reason
            state.total_requests = record.total_requests
            state.successes = record.successes
            state.errors = record.errors
            state.failovers = record.failovers
            state.estimated_remaining_quota = record.estimated_remaining_quota
            state.last_used_at = record.last_used_at
            self._flushed[i] = self._counters(state)
        if self.store.persistent:
            self._wake = asyncio.Event()
            self._writer = asyncio.create_task(self._write_loop(), name="poolswitch-writer")

    async def close(self) -> None:
        """Stop the writer and persist what is left."""
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
            if state.reason is not None and not state.disabled:
                state.reason = None  # its cooldown has ended
                self._changed(i, urgent=True)
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
        if verdict.outcome is Outcome.SUCCESS:
            state.successes += 1
            if remaining_quota is not None:
                state.estimated_remaining_quota = remaining_quota
        else:
            state.errors += 1
        if failover:
            state.failovers += 1
        if verdict.cooldown is not None:
            state.park(self.clock() + verdict.cooldown, verdict.outcome.value)
            self._changed(i, urgent=True)
            log.info(
                "key %s cooling down for %.1fs: %s",
                state.key_id,
                verdict.cooldown,
                verdict.outcome.value,
            )
        else:
            self._changed(i)

    def _changed(self, i: int, urgent: bool = False) -> None:
        if self._wake is not None:
            self._dirty.add(i)
            if urgent:
                self._wake.set()

    # -- reporting -------------------------------------------------------------------------

    def retry_after(self) -> float | None:
        """Seconds until the earliest unavailable key returns; None if none ever will."""
        now = self.clock()
        earliest = min((s.available_at for s in self.states if not s.disabled), default=math.inf)
        if earliest == math.inf:
            return None
        return max(earliest - now, 0.0)

    def counts(self) -> tuple[int, int]:
        """(keys available now, keys in all)."""
        now = self.clock()
        return sum(1 for s in self.states if s.available_at <= now), len(self.states)

    def snapshot(self) -> list[KeySnapshot]:
        now = self.clock()
        return [
            KeySnapshot(
                id=s.key_id,
                state=s.state(now),
                cooldown_until=s.cooldown_until(now),
                reason=s.reason if s.available_at > now else None,
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

    def _update(self, i: int) -> tuple[KeyUpdate, tuple[int, int, int, int]]:
        s = self.states[i]
        counts = self._counters(s)
        before = self._flushed[i]
        update = KeyUpdate(
            key_id=s.key_id,
            available_at=s.available_at,
            disabled=s.disabled,
            reason=s.reason,
            estimated_remaining_quota=s.estimated_remaining_quota,
            last_used_at=s.last_used_at,
            add_requests=counts[0] - before[0],
            add_successes=counts[1] - before[1],
            add_errors=counts[2] - before[2],
            add_failovers=counts[3] - before[3],
        )
        return update, counts

    async def flush(self) -> None:
        """Write every change since the last flush; on failure they stay pending."""
        dirty, self._dirty = self._dirty, set()
        if not dirty:
            return
        taken = {i: self._update(i) for i in sorted(dirty)}
        try:
            await self.store.write([update for update, _ in taken.values()])
        except Exception:
            self._dirty |= dirty
            raise
        for i, (_, counts) in taken.items():
            self._flushed[i] = counts

    async def _write_loop(self) -> None:
        assert self._wake is not None
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.flush_interval)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:  # keep serving from memory; try again on the next round
                log.exception("writing key state failed")
