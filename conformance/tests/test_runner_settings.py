"""runner.settings: the proxy's settings for a case."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from poolswitch_testing.conformance.settings import (
    BASE,
    SettingsError,
    check_settings,
    proxy_settings,
)


def test_overrides_merge_over_the_base(tmp_path: Path) -> None:
    settings = proxy_settings(
        {"strategy": "random", "storage": {"backend": "sqlite"}, "on_status": []},
        [("alpha", None), ("beta", 4)],
        {"alpha": "sk-a", "beta": "sk-b"},
        "http://127.0.0.1:1",
        tmp_path,
    )
    assert settings["strategy"] == "random"
    assert settings["retry_attempts"] == BASE["retry_attempts"]
    assert settings["storage"] == {"backend": "sqlite", "sqlite_path": str(tmp_path / "state.db")}
    assert settings["keys"] == [
        {"id": "alpha", "value": "sk-a"},
        {"id": "beta", "value": "sk-b", "weight": 4},
    ]
    assert settings["upstream_base_url"] == "http://127.0.0.1:1"


def test_a_case_may_point_the_proxy_elsewhere(tmp_path: Path) -> None:
    settings = proxy_settings(
        {"upstream_base_url": "http://x:1"}, [("a", None)], {"a": "v"}, "http://u", tmp_path
    )
    assert settings["upstream_base_url"] == "http://x:1"
    check_settings({"upstream_base_url": "{{dead_url}}"}, [("a", None)])


def test_check_settings_uses_the_servers_rules() -> None:
    check_settings({"retry_attempts": 5, "storage": {"backend": "sqlite"}}, [("a", 2)])
    with pytest.raises(SettingsError) as info:
        check_settings({"retry_attempts": 0, "colour": "red"}, [("a", None)])
    assert any(line.startswith("retry_attempts: ") for line in info.value.problems)
    assert "colour: unknown field" in info.value.problems
    with pytest.raises(SettingsError, match="listen_port: set by the runner"):
        check_settings({"listen_port": 1}, [("a", None)])


POOLS: list[dict[str, Any]] = [
    {"name": "a", "route": "/a", "keys": [("alpha", None)], "settings": {"strategy": "random"}},
    {"name": "b", "route": None, "keys": [("alpha", 2)], "settings": {}},
]


def test_pools_are_served_under_their_own_base_path(tmp_path: Path) -> None:
    values = {"a:alpha": "sk-a", "b:alpha": "sk-b"}
    settings = proxy_settings({}, [], values, "http://f:1", tmp_path, POOLS)
    assert "keys" not in settings
    assert settings["pools"] == [
        {
            "name": "a",
            "route": "/a",
            "upstream_base_url": "http://f:1/pool-a",
            "strategy": "random",
            "keys": [{"id": "alpha", "value": "sk-a"}],
        },
        {
            "name": "b",
            "upstream_base_url": "http://f:1/pool-b",
            "keys": [{"id": "alpha", "value": "sk-b", "weight": 2}],
        },
    ]


def test_pool_settings_are_checked() -> None:
    check_settings({}, [], POOLS)
    with pytest.raises(SettingsError) as info:
        check_settings({"pools": []}, [], [{**POOLS[0], "settings": {"keys": []}}])
    assert info.value.problems == (
        "pools: set by the runner",
        "pools[0].keys: set by the case's pool",
    )
    with pytest.raises(SettingsError) as info:
        check_settings({}, [], [{**POOLS[0], "settings": {"strategy": "nope"}}])
    assert any(line.startswith("pools[0].strategy: ") for line in info.value.problems)


def test_the_runner_gives_redis_its_url_and_a_namespace(tmp_path: Path) -> None:
    settings = proxy_settings(
        {"storage": {"backend": "redis", "start_without_redis": False}},
        [("a", None)],
        {"a": "v"},
        "http://u",
        tmp_path,
        redis=("redis://127.0.0.1:6400/0", "conformance-1"),
    )
    assert settings["storage"] == {
        "backend": "redis",
        "start_without_redis": False,
        "redis_url": "redis://127.0.0.1:6400/0",
        "namespace": "conformance-1",
    }
    check_settings({"storage": {"backend": "redis"}}, [("a", None)])
    with pytest.raises(SettingsError) as info:
        check_settings({"storage": {"backend": "redis", "namespace": "x"}}, [("a", None)])
    assert info.value.problems == ("storage.namespace: set by the runner",)
