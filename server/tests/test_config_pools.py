"""The config's pools and caller limits (config.py, crosschecks.py): the seed's single-pool form,
`pools:` with the top-level settings as defaults, and every problem named by its path."""

from __future__ import annotations

from typing import Any

import pytest

from poolswitch.config import POOL_SETTINGS, CallerConfig, Config, KeyConfig, parse_config
from poolswitch.errors import ConfigError

TOKEN_A = "tok-aaaaaaaaaaaaaaaa"
TOKEN_B = "tok-bbbbbbbbbbbbbbbb"


def key(i: str) -> dict[str, str]:
    return {"id": i, "value": f"sk-{i}-secret"}


def pools_doc(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "upstream_base_url": "https://api.openai.com",
        "strategy": "least_used",
        "pools": [
            {"name": "openai", "keys": [key("a"), key("b")]},
            {
                "name": "anthropic",
                "upstream_base_url": "https://api.anthropic.com",
                "auth_header_name": "x-api-key",
                "auth_scheme": None,
                "strategy": "round_robin",
                "keys": [key("a"), key("c")],
            },
        ],
    }
    doc.update(changes)
    return doc


def problems(doc: Any, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(doc, env=env or {})
    return list(info.value.problems)


def test_single_pool_form_is_one_pool_named_default_at_the_root() -> None:
    doc = {"upstream_base_url": "http://u/v1/", "keys": [key("a")], "retry_attempts": 5}
    cfg = parse_config(doc, env={})
    (pool,) = cfg.pools
    assert (pool.name, pool.route, pool.upstream_base_url) == ("default", "/", "http://u/v1")
    assert pool.keys == cfg.keys and pool.retry_attempts == 5
    assert all(getattr(pool, name) == getattr(cfg, name) for name in POOL_SETTINGS)


def test_a_config_built_in_code_gets_its_default_pool_too() -> None:
    cfg = Config(upstream_base_url="http://u", keys=(KeyConfig("a", "sk-a"),), strategy="random")
    assert [(p.name, p.route, p.strategy) for p in cfg.pools] == [("default", "/", "random")]


def test_pools_take_top_level_settings_as_defaults() -> None:
    cfg = parse_config(pools_doc(), env={})
    openai, anthropic = cfg.pools
    assert (openai.name, openai.route, openai.upstream_base_url) == (
        "openai",
        "/openai",
        "https://api.openai.com",
    )
    assert (openai.strategy, openai.auth_scheme) == ("least_used", "Bearer")
    assert (anthropic.route, anthropic.strategy, anthropic.auth_scheme) == (
        "/anthropic",
        "round_robin",
        None,
    )
    assert [k.id for k in anthropic.keys] == ["a", "c"]  # key ids are unique per pool
    assert cfg.keys == () and cfg.upstream_base_url == "https://api.openai.com"


def test_top_level_upstream_is_optional_with_pools() -> None:
    doc = pools_doc()
    del doc["upstream_base_url"]
    doc["pools"][0]["upstream_base_url"] = "https://api.groq.com/openai"
    cfg = parse_config(doc, env={})
    assert cfg.upstream_base_url == ""
    assert cfg.pools[0].upstream_base_url == "https://api.groq.com/openai"


def test_environment_overrides_are_defaults_for_pools() -> None:
    cfg = parse_config(pools_doc(), env={"POOLSWITCH_RETRY_ATTEMPTS": "7"})
    assert [p.retry_attempts for p in cfg.pools] == [7, 7]


def test_explicit_route_and_root_route() -> None:
    doc = pools_doc()
    doc["pools"][0]["route"] = "/v1/openai"
    doc["pools"][1]["route"] = "/"
    assert [p.route for p in parse_config(doc, env={}).pools] == ["/v1/openai", "/"]


def _pool(**changes: Any) -> dict[str, Any]:
    return {"name": "p", "keys": [key("a")], **changes}


@pytest.mark.parametrize(
    ("pools", "expected"),
    [
        ([], ["pools: must be a non-empty list of {name, keys, ...} entries"]),
        ("openai", ["pools: must be a non-empty list of {name, keys, ...} entries"]),
        # found by nox -s fuzz: a TypeError, a traceback
        (False, ["pools: must be a non-empty list of {name, keys, ...} entries"]),
        (["openai"], ["pools[0]: must be a mapping with name and keys"]),
        ([{"keys": [key("a")]}], ["pools[0].name: missing"]),
        ([{"name": "p"}], ["pools[0].keys: missing (at least one key is needed)"]),
        ([_pool(keys=[])], ["pools[0].keys: must be a non-empty list of {id, value} entries"]),
        (
            [_pool(name="Open AI")],
            [
                "pools[0].name: must be 1-32 lower-case letters, digits, _ and -, "
                "starting with a letter or digit"
            ],
        ),
        ([_pool(), _pool()], ["pools[1].name: duplicate name (also pools[0])"]),
        (
            [_pool(), _pool(name="q", route="/p")],
            ["pools[1].route: same route as pools[0]"],
        ),
        (
            [_pool(route="p")],
            ['pools[0].route: must start with "/" and not end with "/" (e.g. /openai)'],
        ),
        (
            [_pool(route="/p/")],
            ['pools[0].route: must start with "/" and not end with "/" (e.g. /openai)'],
        ),
        ([_pool(route="/p?x")], ["pools[0].route: must be a plain path: no ?, #, % or whitespace"]),
        ([_pool(route="/a b")], ["pools[0].route: must be a plain path: no ?, #, % or whitespace"]),
        ([_pool(route="/a/../b")], ['pools[0].route: must not have "." or ".." segments']),
        (
            [_pool(route="/poolswitch/admin")],
            [
                "pools[0].route: must not be or start with a built-in path "
                "(/health, /status, /metrics, /poolswitch)"
            ],
        ),
        (
            [_pool(name="health")],  # the route made from the name is named where it came from
            [
                "pools[0].route: must not be or start with a built-in path "
                "(/health, /status, /metrics, /poolswitch)"
            ],
        ),
        ([_pool(route=3)], ['pools[0].route: must be a path such as "/openai"']),
        (
            [_pool(keys=[key("a"), {"id": "a", "value": "sk-other"}])],
            ["pools[0].keys[1].id: duplicate id (also pools[0].keys[0])"],
        ),
        (
            [_pool(), _pool(name="q", keys=[key("b"), {"id": "c", "value": "sk-b-secret"}])],
            ["pools[1].keys[1].value: same value as pools[1].keys[0]"],
        ),
        ([_pool(keys=[{"id": "a"}])], ["pools[0].keys[0].value: missing"]),
        ([_pool(listen_port=1)], ["pools[0].listen_port: unknown field"]),
        (
            [_pool(strategy="fastest")],
            [
                "pools[0].strategy: unknown value (one of: round_robin, least_used, random, "
                "quota_failover)"
            ],
        ),
        (
            [_pool(upstream_base_url="ftp://h/sk-secret")],
            [
                "pools[0].upstream_base_url: must be an http or https URL with a host, "
                "got scheme 'ftp', host 'h'"
            ],
        ),
    ],
)
def test_pool_problems_name_their_field(pools: Any, expected: list[str]) -> None:
    doc = {"upstream_base_url": "http://u", "pools": pools}
    assert problems(doc) == expected


def test_a_pool_needs_an_upstream_here_or_at_the_top() -> None:
    assert problems({"pools": [_pool()]}) == [
        "pools[0].upstream_base_url: missing (the API to forward to, e.g. "
        "https://api.openai.com; here or at the top level)"
    ]


def test_top_level_keys_with_pools_is_an_error() -> None:
    assert problems(pools_doc(keys=[key("z")])) == [
        "keys: set keys inside each pool when pools is set"
    ]


def test_a_bad_top_level_default_is_reported_once_at_the_top() -> None:
    assert problems(pools_doc(retry_attempts=0, strategy="x")) == [
        "strategy: unknown value (one of: round_robin, least_used, random, quota_failover)",
        "retry_attempts: must be between 1 and 100, got 0",
    ]


def test_every_pool_problem_at_once_even_with_others() -> None:
    doc = {
        "listen_port": "many",
        "pools": [
            {"name": "a", "upstream_base_url": "http://u", "keys": [key("x"), key("x")]},
            {"name": "a", "route": "/b", "keys": [{"id": "y", "value": "${UNSET_KEY}"}]},
        ],
    }
    assert problems(doc) == [
        "listen_port: must be an integer, got a string",
        "pools[0].keys[1].id: duplicate id (also pools[0].keys[0])",
        "pools[0].keys[1].value: same value as pools[0].keys[0]",
        "pools[1].keys[0].value: environment variable UNSET_KEY is not set",
        "pools[1].upstream_base_url: missing (the API to forward to, e.g. "
        "https://api.openai.com; here or at the top level)",
        "pools[1].name: duplicate name (also pools[0])",
    ]


# ---- caller limits ----


def test_caller_limits() -> None:
    callers = [
        {"id": "web", "token": TOKEN_A, "pools": ["openai"], "rpm": 600, "max_concurrency": 8},
        {"id": "batch", "token": TOKEN_B},
    ]
    cfg = parse_config(pools_doc(callers=callers), env={})
    web, batch = cfg.callers
    assert (web.pools, web.rpm, web.max_concurrency) == (("openai",), 600, 8)
    assert (batch.pools, batch.rpm, batch.max_concurrency) == (None, None, None)


def test_caller_pools_in_the_single_pool_form_name_default() -> None:
    doc = {"upstream_base_url": "http://u", "keys": [key("a")]}
    caller = {"id": "web", "token": TOKEN_A, "pools": ["default"], "rpm": "${RPM:-60}"}
    cfg = parse_config({**doc, "callers": [caller]}, env={})
    assert cfg.callers == (CallerConfig("web", TOKEN_A, ("default",), 60),)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"pools": ["nope"]}, "callers[0].pools[0]: names no pool (pools: openai, anthropic)"),
        ({"pools": []}, "callers[0].pools: must be a non-empty list of pool names"),
        ({"pools": "openai"}, "callers[0].pools: must be a non-empty list of pool names"),
        (
            {"pools": ["Not A Pool"]},
            "callers[0].pools[0]: must be 1-32 lower-case letters, digits, _ and -, "
            "starting with a letter or digit",
        ),
        ({"rpm": 0}, "callers[0].rpm: must be between 1 and 1000000, got 0"),
        ({"rpm": 1_000_001}, "callers[0].rpm: must be between 1 and 1000000, got 1000001"),
        ({"rpm": 1.5}, "callers[0].rpm: must be an integer, got a number"),
        ({"rpm": "lots"}, "callers[0].rpm: must be an integer, got a string"),
        ({"max_concurrency": 0}, "callers[0].max_concurrency: must be between 1 and 100000, got 0"),
        (
            {"max_concurrency": 100_001},
            "callers[0].max_concurrency: must be between 1 and 100000, got 100001",
        ),
        (
            {"max_concurrency": True},
            "callers[0].max_concurrency: must be an integer, got a boolean",
        ),
    ],
)
def test_caller_limit_problems(changes: dict[str, Any], expected: str) -> None:
    callers = [{"id": "web", "token": TOKEN_A, **changes}]
    assert problems(pools_doc(callers=callers)) == [expected]


def test_caller_problems_are_reported_with_other_problems() -> None:
    callers = [{"id": "web", "token": TOKEN_A, "pools": ["nope"]}]
    found = problems(pools_doc(callers=callers, admin_token=TOKEN_A, listen_port=0))
    assert found == [
        "listen_port: must be between 1 and 65535, got 0",
        "callers[0].token: same value as admin_token",
        "callers[0].pools[0]: names no pool (pools: openai, anthropic)",
    ]


# ---- secrets never in a repr ----


def test_no_secret_in_any_repr() -> None:
    doc = pools_doc(
        admin_token="admin-token-SECRET-1",
        metrics_token="metrics-token-SECRET-2",
        callers=[{"id": "web", "token": "caller-token-SECRET-3", "rpm": 5}],
    )
    cfg = parse_config(doc, env={})
    shown = repr(cfg) + str(cfg) + repr(cfg.pools) + repr(cfg.callers)
    assert "SECRET" not in shown and "-secret" not in shown
    assert "web" in shown and "openai" in shown
    assert "sk-x" not in repr(KeyConfig("a", "sk-x"))
    assert TOKEN_A not in repr(CallerConfig("web", TOKEN_A))


# ---- the environment, with pools ----


def test_storage_overrides_name_their_variable(tmp_path: Any) -> None:
    env = {"POOLSWITCH_STORAGE_BACKEND": "mongodb", "POOLSWITCH_STORAGE": "{not json"}
    assert problems(pools_doc(), env) == [
        "storage.backend (from POOLSWITCH_STORAGE_BACKEND): unknown value"
        " (one of: memory, sqlite, redis)"
    ]
    env = {"POOLSWITCH_STORAGE_BACKEND": "sqlite", "POOLSWITCH_STORAGE_SQLITE_PATH": "s.db"}
    cfg = parse_config(pools_doc(), env=env, base_dir=tmp_path)
    assert (cfg.storage.backend, cfg.storage.sqlite_path) == ("sqlite", str(tmp_path / "s.db"))


def test_env_references_in_any_string_of_a_pool() -> None:
    doc = pools_doc()
    doc["pools"][0]["on_status"] = [{"status": 400, "match": "${QUIRK}", "action": "cooldown 5"}]
    doc["pools"][0]["keys"][0]["metadata"] = {"team": "${TEAM:-search}"}
    cfg = parse_config(doc, env={"QUIRK": "quota_busy"})
    rule = cfg.pools[0].on_status[0]
    assert (rule.match, rule.action, rule.seconds) == ("quota_busy", "cooldown", 5.0)
    assert cfg.pools[0].keys[0].metadata == (("team", "search"),)
    doc["pools"][1]["upstream_base_url"] = "${ANTHROPIC_URL}"
    assert problems(doc, {"QUIRK": "q"}) == [
        "pools[1].upstream_base_url: environment variable ANTHROPIC_URL is not set"
    ]
