"""The documents of `GET /status` and `GET /health`, as `TypedDict`s (docs/status.example.json).

At run time they are the plain dicts the proxy sent; the types are for the reader and mypy.
Fields that only some proxies send are optional (`total=False` bases, since Python 3.10 has no
`NotRequired`): the top-level single-pool fields appear only when the proxy has exactly one pool,
`replicas` only with Redis.
"""

from __future__ import annotations

from typing import Literal, TypedDict


class Outage(TypedDict):
    """An upstream outage the proxy detected, or every key rate-limited at once."""

    kind: Literal["upstream", "rate_limited"]
    since: float  # unix seconds


class KeyStatus(TypedDict):
    """One key of a pool, by id (never its value)."""

    id: str
    state: Literal["available", "cooling_down", "disabled", "draining", "drained"]
    cooldown_until: float | None  # unix seconds
    reason: str | None  # why it cools down or is disabled, e.g. "rate_limited"
    cooldown_source: str | None  # where the cooldown came from, e.g. "retry-after"
    total_requests: int
    successes: int
    errors: int
    failovers: int
    estimated_remaining_quota: float | None
    last_used_at: float | None  # unix seconds


class PoolStatus(TypedDict):
    """One pool: its route, upstream, strategy and keys."""

    name: str
    route: str
    strategy: str
    upstream_base_url: str
    provider: str
    degraded: bool
    outage: Outage | None
    keys: list[KeyStatus]


class CallerStatus(TypedDict):
    """One caller's current use against its limits (`None`: all pools / no limit)."""

    id: str
    pools: list[str] | None
    rpm: int | None
    max_concurrency: int | None
    requests_last_minute: int
    in_flight: int
    rejected: int


class _SinglePoolFields(TypedDict, total=False):
    """The 0.x top level, sent only by a proxy with exactly one pool."""

    strategy: str
    upstream_base_url: str
    provider: str
    outage: Outage | None
    keys: list[KeyStatus]


class StorageHealth(TypedDict):
    """Whether the key-state store answers (a proxy whose Redis is away serves on local state)."""

    status: Literal["ok", "degraded"]
    reason: str | None  # why the store cannot be used, e.g. "redis at redis://host:6379: ..."
    since: float | None  # unix seconds
    outages: int  # times the store became unusable since start


class ReplicaStatus(TypedDict):
    """A replica on the same Redis and the config it serves (`replicas`, redis only)."""

    id: str  # "<hostname>:<pid>"
    config_version: str
    seen_at: float  # unix seconds of its last heartbeat


class _SharedStoreFields(TypedDict, total=False):
    """Sent only with `storage.backend: redis`."""

    replicas: list[ReplicaStatus]  # every replica heard from lately, by id


class StatusDocument(_SinglePoolFields, _SharedStoreFields):
    """`GET /status`: storage, every pool with its keys, every caller (ids only)."""

    storage: str  # "memory", "sqlite" or "redis"
    storage_health: StorageHealth
    degraded: bool
    pools: list[PoolStatus]
    callers: list[CallerStatus]
    config_version: str  # 12 hex digits of the SHA-256 of the config file
    reloaded_at: float | None  # unix seconds of the last reload, None before any


class PoolHealth(TypedDict):
    """One pool's line of `GET /health`."""

    name: str
    status: Literal["ok", "degraded"]
    keys_available: int
    keys_total: int


class HealthStorage(StorageHealth):
    """The store's line of `GET /health`."""

    backend: str  # "memory", "sqlite" or "redis"


class HealthDocument(TypedDict):
    """`GET /health`: overall, per pool, and the key-state store."""

    status: Literal["ok", "degraded"]
    keys_available: int
    keys_total: int
    pools: list[PoolHealth]
    storage: HealthStorage
