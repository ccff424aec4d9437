"""The documents of `GET /status` and `GET /health` (docs/protocol.md), built from the pools'
state: ids and facts, never a key value. Pure; the proxy's app serves them, and the embedded
clients return the same documents for their one pool."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from poolswitch.config import PoolConfig
from poolswitch.pool import KeySnapshot, Pool
from poolswitch.storage import Store

SINGLE_POOL_FIELDS = ("strategy", "upstream_base_url", "provider", "outage", "keys")
"""A single pool's fields that `/status` also shows at the top level (the 0.x document)."""


def storage_health(store: Store) -> dict[str, Any]:
    """Whether the key-state store can be used (`/status`'s `storage_health`)."""
    return {
        "status": "ok" if store.problem is None else "degraded",
        "reason": store.problem,
        "since": store.problem_since,
        "outages": store.outages,
    }


def key_status(k: KeySnapshot) -> dict[str, Any]:
    """One key in `/status` (and in the admin API's answers). `state` is one of keys.py's:
    available, cooling_down, disabled, draining (an operator drained it; attempts still use it)
    or drained (drained, and none does)."""
    return {
        "id": k.id,
        "state": k.state,
        "cooldown_until": k.cooldown_until,
        "reason": k.reason,
        "cooldown_source": k.source,
        "total_requests": k.total_requests,
        "successes": k.successes,
        "errors": k.errors,
        "failovers": k.failovers,
        "estimated_remaining_quota": k.estimated_remaining_quota,
        "last_used_at": k.last_used_at,
    }


def pool_status(config: PoolConfig, pool: Pool, provider: str) -> dict[str, Any]:
    """One pool in `/status`; `provider`: the profile that reads its answers."""
    guard = pool.guard
    return {
        "name": config.name,
        "route": config.route,
        "strategy": config.strategy,
        "upstream_base_url": config.upstream_base_url,
        "provider": provider,
        "degraded": guard.tripped,
        "outage": None
        if guard.tripped_kind is None
        else {"kind": guard.tripped_kind, "since": guard.since},
        "keys": [key_status(k) for k in pool.snapshot()],
    }


def status_document(
    pools: list[dict[str, Any]],
    storage: str,
    storage_health: Mapping[str, Any],
    callers: list[dict[str, object]],
) -> dict[str, Any]:
    """`/status` from its pools (`pool_status`), the store's name and health, the callers."""
    doc: dict[str, Any] = {
        "storage": storage,
        "storage_health": dict(storage_health),
        "degraded": any(p["degraded"] for p in pools) or storage_health["status"] != "ok",
        "pools": pools,
        "callers": callers,
    }
    if len(pools) == 1:  # the 0.x document's fields, for readers of a single pool
        only = pools[0]
        for name in SINGLE_POOL_FIELDS:
            doc[name] = only[name]
    return doc


def health_document(
    pools: Iterable[tuple[str, Pool]], storage: Mapping[str, Any]
) -> dict[str, Any]:
    """`/health` from the pools (by name) and the store's line (`backend` and its health)."""
    lines: list[dict[str, Any]] = []
    counts = []
    for name, pool in pools:
        available, total = pool.counts()
        counts.append((available, total))
        lines.append(
            {
                "name": name,
                "status": "ok" if available and not pool.guard.tripped else "degraded",
                "keys_available": available,
                "keys_total": total,
            }
        )
    ok = all(p["status"] == "ok" for p in lines) and storage["status"] == "ok"
    return {
        "status": "ok" if ok else "degraded",
        "keys_available": sum(available for available, _ in counts),
        "keys_total": sum(total for _, total in counts),
        "pools": lines,
        "storage": dict(storage),
    }
