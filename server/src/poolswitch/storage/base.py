"""The key-state store interface.

The pool keeps every key's state in memory and serves from it; a store persists that state and,
for a shared backend, spreads it between proxy replicas. What moves through the interface:

- `load(pool)` -> the stored `KeyRecord` of each key id the store knows in that pool (state is
  keyed by pool name and key id: pools share nothing, not even their key ids).
- `write(updates)` -> persist `KeyUpdate`s (each names its pool): the key's current status
  fields, what kind of change they are (merge.py: a cooldown, an operator's decision, or none),
  and its counters as deltas since the last write. The store merges each into what it holds
  (merge.py) in one atomic step, so replicas never undo each other's transitions or lose each
  other's counts, and returns the merged records.
- A shared store (another process, another replica may write) tells each attached pool, its
  `Mirror`, about records that others changed: `mirror.apply(records)`, on the event loop, and
  asks it to write back what it learned while the store was unreachable: `mirror.resync()`.

Rare transitions (cooldown, disable, restore) are committed before the answer that caused them
reaches the caller (the pool's `commit_transitions()`); counters are written in batches. So for a
persistent store, `write()` returns only once the updates are durable: committed, and readable by
the next `load()` even if the process is killed right after.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

PARK = "park"
RECOVERED = "recovered"
SET = "set"
REPLACE = "replace"
KINDS = (PARK, RECOVERED, SET, REPLACE)
"""What a replica did to a key since its last write (see merge.py); None: only used it."""


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
    version: int = 0
    """Grows with each change of the state fields (merge.py); 0: never changed."""
    changed_at: float | None = None
    """When the state fields last changed (the writer's clock, epoch seconds)."""


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
    kind: str | None = None


class Mirror(Protocol):
    """A pool as a shared store sees it: the ids it keeps, and where others' changes go."""

    @property
    def name(self) -> str: ...

    @property
    def key_ids(self) -> Sequence[str]: ...

    def apply(self, records: Sequence[KeyRecord]) -> None:
        """Take in records newer than what the pool has (others' transitions, counters)."""

    async def resync(self) -> None:
        """The store is reachable again: write back everything learned meanwhile."""


class Store(ABC):
    """Persists key state. Implementations never block the event loop."""

    name = ""
    persistent = True
    commit_timeout = 5.0
    """The longest an answer waits for its transitions to be stored (a healthy sqlite commit
    takes about a millisecond); past it the store counts as failing and the answer goes out."""

    def __init__(self) -> None:
        self.mirrors: dict[str, Mirror] = {}
        self.problem: str | None = None
        """Why the store cannot be used right now (one line, no secrets), or None."""
        self.problem_since: float | None = None
        self.outages = 0
        """How many times the store became unusable since start."""

    def announce(self, replica: str, config_version: str) -> None:  # noqa: B027 - optional hook
        """This process is `replica` and serves config `config_version` (at start and after
        each reload). A shared store publishes it to the other replicas (`replicas()`)."""

    def replicas(self) -> list[dict[str, Any]] | None:
        """Every replica the shared store heard from lately, `{"id", "config_version",
        "seen_at"}`, by id; None for a store that is not shared."""
        return None

    def attach(self, mirror: Mirror) -> None:
        """Before open(): `mirror` is told of records others change (shared stores only)."""
        self.mirrors[mirror.name] = mirror

    recovers_on_write = True
    """Whether a successful write ends an outage (a store with its own monitor says False)."""

    def failing(self, problem: str, now: float) -> None:
        """Note that the store cannot be used; returns quietly if that was known."""
        if self.problem is None:
            self.problem_since = now
            self.outages += 1
        self.problem = problem

    def working(self) -> None:
        self.problem = None
        self.problem_since = None

    async def refresh(self) -> None:
        """Give every attached pool the store's current records (shared stores: what other
        processes wrote). Raises StorageError."""
        for name, mirror in list(self.mirrors.items()):
            mirror.apply(list((await self.load(name)).values()))

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Acquire resources (connections, files)."""

    @abstractmethod
    async def load(self, pool: str) -> Mapping[str, KeyRecord]:
        """The stored record of every key the store knows in `pool`, by key id."""

    @abstractmethod
    async def write(self, updates: Sequence[KeyUpdate]) -> Sequence[KeyRecord]:
        """Merge the updates into the store in one transaction (merge.py); return once they are
        committed, with the merged record of each (same order). Raise StorageError (one line,
        no secrets) on failure: the pool keeps them and retries."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources; no call follows."""
