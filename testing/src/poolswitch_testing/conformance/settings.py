"""The proxy's settings for a case: the runner's base, the case's overrides, the keys.

The base keeps cases fast and independent: a short request timeout, a memory store, three
attempts. A case changes what it is about (`config:` in its YAML); the runner owns the keys
(values made up per run), where the proxy listens (`--port`) and the sqlite file's place; with
`storage: {backend: redis}` also `redis_url` (the run's one redis-server) and `namespace` (one per
case, so that cases share the server without seeing each other's keys).

A case with `pools` gets `pools:` in the proxy's settings, one per pool, in the case's order:
`{name, route (when given), upstream_base_url: <fake>/pool-<name>, **settings, keys}`. Every pool is
served by the one fake upstream, under its own base path, so the path each attempt arrived on
says which pool sent it (the prefix stripped or not). A pool's own `upstream_base_url` in its
settings wins (`{{upstream}}` is the fake's root, `{{dead_url}}` a port where nothing listens).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from poolswitch.config import parse_config
from poolswitch.errors import ConfigError

__all__ = [
    "BASE",
    "RUNNER_OWNED",
    "STORAGE_OWNED",
    "PoolKeys",
    "SettingsError",
    "check_settings",
    "embedded_settings",
    "proxy_settings",
]

BASE: Mapping[str, Any] = {
    "listen_host": "127.0.0.1",
    "strategy": "round_robin",
    "retry_attempts": 3,
    "cooldown_seconds": 60,
    "request_timeout_seconds": 10,
    "connect_timeout_seconds": 2,
    "storage": {"backend": "memory"},
}
RUNNER_OWNED = ("keys", "listen_host", "listen_port", "pools")
STORAGE_OWNED = ("redis_url", "namespace")  # with backend: redis
_POOL_OWNED = ("name", "route", "keys")
_CHECK_URL = "http://127.0.0.1:9"
_CHECK_REDIS = "redis://127.0.0.1:9/0"

PoolKeys = Mapping[str, Any]
"""A pool as the runner gives it: {name, route, keys: [(id, weight)], settings}."""


class SettingsError(ValueError):
    """Overrides the proxy would refuse; `problems` holds "field: message" lines."""

    def __init__(self, found: Sequence[str]) -> None:
        self.problems = tuple(found)
        super().__init__("; ".join(self.problems))


def _merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(dict(base))
    for name, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(name), Mapping):
            merged[name] = _merge(merged[name], value)
        else:
            merged[name] = copy.deepcopy(value)
    return merged


def _keys(
    keys: Sequence[tuple[str, int | None]], values: Mapping[str, str], prefix: str = ""
) -> list[dict[str, Any]]:
    return [
        {"id": key_id, "value": values[prefix + key_id], **({"weight": weight} if weight else {})}
        for key_id, weight in keys
    ]


def proxy_settings(
    overrides: Mapping[str, Any],
    keys: Sequence[tuple[str, int | None]],
    values: Mapping[str, str],
    upstream_url: str,
    directory: Path,
    pools: Sequence[PoolKeys] | None = None,
    redis: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """The whole settings document for one case (YAML is written from it). With `pools`,
    `values` is keyed `<pool>:<id>` and `keys` is not used. `redis` is (url, namespace), for
    a case with `storage: {backend: redis}`."""
    settings = _merge({**BASE, "upstream_base_url": upstream_url}, overrides)
    storage = settings["storage"]
    if storage.get("backend") == "sqlite" and "sqlite_path" not in storage:
        storage["sqlite_path"] = str(directory / "state.db")
    if storage.get("backend") == "redis" and redis is not None:
        storage["redis_url"], storage["namespace"] = redis
    if pools is None:
        settings["keys"] = _keys(keys, values)
        return settings
    settings["pools"] = [
        {
            "name": pool["name"],
            **({"route": pool["route"]} if pool.get("route") is not None else {}),
            "upstream_base_url": f"{upstream_url}/pool-{pool['name']}",
            **copy.deepcopy(dict(pool.get("settings") or {})),
            "keys": _keys(pool["keys"], values, f"{pool['name']}:"),
        }
        for pool in pools
    ]
    return settings


EMBEDDED_DROPPED = ("listen_host", "storage")
"""Settings of the proxy process, not of a pool: an embedded client has no listener and keeps
its pool in memory (a case about another store is tagged `proxy`)."""


def embedded_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """A case's single-pool settings (from `proxy_settings`) as an embedded client takes them:
    the pool's own settings, keys with their values, in the proxy's (snake_case) spelling."""
    return {k: copy.deepcopy(v) for k, v in settings.items() if k not in EMBEDDED_DROPPED}


def _parse(settings: Mapping[str, Any], where: str = "") -> list[str]:
    try:
        parse_config(dict(settings), env={})
    except ConfigError as exc:
        return [f"{where}{line}" for line in exc.problems]
    return []


def check_settings(
    overrides: Mapping[str, Any],
    keys: Sequence[tuple[str, int | None]],
    pools: Sequence[PoolKeys] | None = None,
) -> None:
    """Raise SettingsError unless the proxy accepts these overrides (checked with the server's
    own validator, so a typo in a case is an error when it loads, not a failed proxy start)."""
    owned = [f"{name}: set by the runner" for name in RUNNER_OWNED if name in overrides]
    storage = overrides.get("storage")
    if isinstance(storage, Mapping) and storage.get("backend") == "redis":
        owned += [f"storage.{n}: set by the runner" for n in STORAGE_OWNED if n in storage]
    for i, pool in enumerate(pools or ()):
        settings = pool.get("settings") or {}
        owned += [f"pools[{i}].{n}: set by the case's pool" for n in _POOL_OWNED if n in settings]
    if owned:
        raise SettingsError(owned)
    ids = (
        [k for k, _ in keys]
        if pools is None
        else [f"{p['name']}:{k}" for p in pools for k, _ in p["keys"]]
    )
    values = {key_id: f"sk-check-{key_id.replace(':', '-')}" for key_id in ids}
    settings = proxy_settings(
        overrides, keys, values, _CHECK_URL, Path("/nonexistent"), pools, (_CHECK_REDIS, "check")
    )
    settings = _no_placeholders(settings)
    found = _parse(settings)
    if found:
        raise SettingsError(found)


def _no_placeholders(value: Any) -> Any:
    """URLs that are still `{{...}}` placeholders, made checkable."""
    if isinstance(value, dict):
        return {
            k: _CHECK_URL if k == "upstream_base_url" and "{{" in str(v) else _no_placeholders(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_no_placeholders(v) for v in value]
    return value
