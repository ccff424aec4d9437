"""The key-state store interface.

The pool keeps every key's state in memory and serves from it; a store persists that state and,
for a shared backend, spreads it between proxy replicas. What moves through the interface:

- `load(pool)` -> the stored `KeyRecord` of each key id the store knows in that pool (state is
  keyed by pool name and key id: pools share nothing, not even their key ids).
- `write(updates)` -> persist `KeyUpdate`s (each names its pool): the key's current status
  fields (absolute) and its counters as deltas since the last write, so a shared backend can
  add them atomically (SQL `x = x + ?`, Redis `HINCRBY`) without replicas overwriting each
  other's counts.

Rare transitions (cooldown, disable, restore) are committed before the answer that caused them
reaches the caller (the pool's `commit_transitions()`); counters are written in batches. So for a
persistent store, `write()` returns only once the updates are durable: committed, and readable by
the next `load()` even if the process is killed right after.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class KeyRecord:
    key_id: str
    fingerprint: str | None = None
    available_at: float = 0.0
    disabled: bool = False
    reason: str | None = None
    source: str | None = None
    strikes: int = 0
    total_requests: int = 0
    successes: int = 0
    errors: int = 0
    failovers: int = 0
    estimated_remaining_quota: int | None = None
    last_used_at: float | None = None


@dataclass(frozen=True, slots=True)
class KeyUpdate:
    key_id: str
    fingerprint: str
    available_at: float
    disabled: bool
    reason: str | None
    source: str | None
    strikes: int
    estimated_remaining_quota: int | None
    last_used_at: float | None
    add_requests: int = 0
    add_successes: int = 0
    add_errors: int = 0
    add_failovers: int = 0
    pool: str = "default"


class Store(ABC):
    """Persists key state. Implementations never block the event loop."""

    name = ""
    persistent = True

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Acquire resources (connections, files)."""

    @abstractmethod
    async def load(self, pool: str) -> Mapping[str, KeyRecord]:
        """The stored record of every key the store knows in `pool`, by key id."""

    @abstractmethod
    async def write(self, updates: Sequence[KeyUpdate]) -> None:
        """Persist the updates in one transaction; return once they are committed. Raise
        StorageError (one line, no secrets) on failure: the pool keeps them and retries."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources; no call follows."""
