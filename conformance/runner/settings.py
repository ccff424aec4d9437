"""The proxy's settings for a case: the runner's base, the case's overrides, the keys.

The base keeps cases fast and independent: a short request timeout, a memory store, three
attempts. A case changes what it is about (`config:` in its YAML); the runner owns the keys
(values made up per run), where the proxy listens (`--port`) and the sqlite file's place.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from poolswitch.config import parse_config
from poolswitch.errors import ConfigError

__all__ = ["BASE", "RUNNER_OWNED", "SettingsError", "check_settings", "proxy_settings"]

BASE: Mapping[str, Any] = {
    "listen_host": "127.0.0.1",
    "strategy": "round_robin",
    "retry_attempts": 3,
    "cooldown_seconds": 60,
    "request_timeout_seconds": 10,
    "connect_timeout_seconds": 2,
    "storage": {"backend": "memory"},
}
RUNNER_OWNED = ("keys", "listen_host", "listen_port")
_CHECK_URL = "http://127.0.0.1:9"


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


def proxy_settings(
    overrides: Mapping[str, Any],
    keys: Sequence[tuple[str, int | None]],
    values: Mapping[str, str],
    upstream_url: str,
    directory: Path,
) -> dict[str, Any]:
    """The whole settings document for one case (YAML is written from it)."""
    settings = _merge({**BASE, "upstream_base_url": upstream_url}, overrides)
    storage = settings["storage"]
    if storage.get("backend") == "sqlite" and "sqlite_path" not in storage:
        storage["sqlite_path"] = str(directory / "state.db")
    settings["keys"] = [
        {"id": key_id, "value": values[key_id], **({"weight": weight} if weight else {})}
        for key_id, weight in keys
    ]
    return settings


def check_settings(overrides: Mapping[str, Any], keys: Sequence[tuple[str, int | None]]) -> None:
    """Raise SettingsError unless the proxy accepts these overrides (checked with the server's
    own validator, so a typo in a case is an error when it loads, not a failed proxy start)."""
    owned = [f"{name}: set by the runner" for name in RUNNER_OWNED if name in overrides]
    if owned:
        raise SettingsError(owned)
    values = {key_id: f"sk-check-{key_id}" for key_id, _ in keys}
    settings = proxy_settings(overrides, keys, values, _CHECK_URL, Path("/nonexistent"))
    if "{{" in str(settings.get("upstream_base_url")):
        settings["upstream_base_url"] = _CHECK_URL
    try:
        parse_config(settings, env={})
    except ConfigError as exc:
        raise SettingsError(exc.problems) from None
