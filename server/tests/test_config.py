from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from poolswitch.config import MIB, Config, load_config, parse_config
from poolswitch.errors import ConfigError

BASE: dict[str, Any] = {
    "upstream_base_url": "https://api.example.com/v1",
    "keys": [{"id": "a", "value": "sk-a"}, {"id": "b", "value": "sk-b"}],
}


def problems(doc: Any, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(doc, env=env or {})
    return list(info.value.problems)


def with_(**changes: Any) -> dict[str, Any]:
    return {**BASE, **changes}


def test_defaults() -> None:
    cfg = parse_config(BASE, env={})
    assert cfg.listen_host == "127.0.0.1"
    assert cfg.listen_port == 8080
    assert cfg.auth_header_name == "Authorization"
    assert cfg.auth_scheme == "Bearer"
    assert cfg.strategy == "round_robin"
    assert cfg.retry_attempts == 3
    assert cfg.cooldown_seconds == 3600
    assert cfg.request_timeout_seconds == 600
    assert cfg.connect_timeout_seconds == 10
    assert cfg.max_request_body_bytes == 32 * MIB
    assert cfg.storage.backend == "memory"
    assert [k.id for k in cfg.keys] == ["a", "b"]
    assert cfg.keys[0].weight == 1


def test_base_path_kept_and_trailing_slash_dropped() -> None:
    cfg = parse_config(with_(upstream_base_url="http://gw.local:8000/openai/"), env={})
    assert cfg.upstream_base_url == "http://gw.local:8000/openai"


def test_null_auth_scheme_means_raw_key() -> None:
    assert parse_config(with_(auth_scheme=None), env={}).auth_scheme is None


def test_env_reference_in_key_value() -> None:
    doc = with_(keys=[{"id": "a", "value": "${OPENAI_KEY_1}"}])
    cfg = parse_config(doc, env={"OPENAI_KEY_1": "sk-from-env"})
    assert cfg.keys[0].value == "sk-from-env"


def test_env_reference_default() -> None:
    doc = with_(keys=[{"id": "a", "value": "${NOPE:-sk-default}"}])
    assert parse_config(doc, env={}).keys[0].value == "sk-default"


def test_unset_env_reference_names_field_and_variable() -> None:
    doc = with_(keys=[{"id": "a", "value": "sk-a"}, {"id": "b", "value": "${OPENAI_KEY_2}"}])
    assert problems(doc) == ["keys[1].value: environment variable OPENAI_KEY_2 is not set"]


def test_environment_overrides_top_level_settings() -> None:
    env = {
        "POOLSWITCH_LISTEN_PORT": "9000",
        "POOLSWITCH_STRATEGY": "least_used",
        "POOLSWITCH_AUTH_SCHEME": "null",
        "POOLSWITCH_COOLDOWN_SECONDS": "12.5",
        "POOLSWITCH_STORAGE_BACKEND": "sqlite",
    }
    cfg = parse_config(BASE, env=env)
    assert (cfg.listen_port, cfg.strategy, cfg.auth_scheme) == (9000, "least_used", None)
    assert cfg.cooldown_seconds == 12.5
    assert cfg.storage.backend == "sqlite"


def test_bad_environment_override_names_variable() -> None:
    assert problems(BASE, {"POOLSWITCH_RETRY_ATTEMPTS": "many"}) == [
        "retry_attempts (from POOLSWITCH_RETRY_ATTEMPTS): must be an integer, got a string"
    ]


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        (with_(colour="blue"), "colour: unknown field"),
        (with_(storage={"backend": "memory", "path": "x"}), "storage.path: unknown field"),
        (with_(keys=[{"id": "a", "value": "x", "secret": 1}]), "keys[0].secret: unknown field"),
        (
            with_(keys=[{"id": "a", "value": "x"}, {"id": "a", "value": "y"}]),
            "keys[1].id: duplicate id (also keys[0])",
        ),
        (with_(keys=[]), "keys: must be a non-empty list of {id, value} entries"),
        ({"upstream_base_url": "http://x"}, "keys: missing (at least one key is needed)"),
        (with_(keys=[{"value": "x"}]), "keys[0].id: missing"),
        (with_(keys=[{"id": "a"}]), "keys[0].value: missing"),
        (
            with_(keys=[{"id": "a b", "value": "x"}]),
            "keys[0].id: must be 1-64 characters of letters, digits, . _ : -",
        ),
        (
            with_(keys=[{"id": "a", "value": "x y"}]),
            "keys[0].value: must not contain whitespace or control characters",
        ),
        (
            with_(keys=[{"id": "a", "value": "x", "weight": 0}]),
            "keys[0].weight: must be between 1 and 1000, got 0",
        ),
        (
            with_(upstream_base_url="ftp://x"),
            "upstream_base_url: must be an http or https URL with a host, "
            "got scheme 'ftp', host 'x'",
        ),
        (
            with_(upstream_base_url="not a url"),
            "upstream_base_url: must be an http or https URL with a host, got no scheme",
        ),
        (
            {"keys": BASE["keys"]},
            "upstream_base_url: missing (the API to forward to, e.g. https://api.openai.com)",
        ),
        (
            with_(strategy="fastest"),
            "strategy: unknown value (one of: round_robin, least_used, random, quota_failover)",
        ),
        (with_(retry_attempts=-1), "retry_attempts: must be between 1 and 100, got -1"),
        (with_(cooldown_seconds=-5), "cooldown_seconds: must be at least 0, got -5"),
        (
            with_(request_timeout_seconds=0),
            "request_timeout_seconds: must be greater than 0, got 0",
        ),
        (
            with_(connect_timeout_seconds=-1),
            "connect_timeout_seconds: must be greater than 0, got -1",
        ),
        (with_(max_request_body_bytes=-1), "max_request_body_bytes: must be at least 0, got -1"),
        (
            with_(attempt_timeout_seconds=0),
            "attempt_timeout_seconds: must be greater than 0, got 0",
        ),
        (with_(queue_timeout_seconds=-1), "queue_timeout_seconds: must be at least 0, got -1"),
        (
            with_(retry_non_idempotent="yes please"),
            "retry_non_idempotent: must be true or false, got a string",
        ),
        (
            with_(provider="azure"),
            "provider: unknown value (one of: auto, openai, anthropic, gemini, generic)",
        ),
        (
            with_(admin_token="short"),
            "admin_token: must be at least 16 characters without whitespace",
        ),
        (
            with_(on_status=[{"status": 429, "action": "explode"}]),
            "on_status[0].action: must be one of: "
            "retry, failover, cooldown SECONDS, disable, relay",
        ),
        (
            with_(on_status=[{"status": 99, "action": "relay"}]),
            "on_status[0].status: must be between 100 and 599, got 99",
        ),
        (with_(listen_port=70000), "listen_port: must be between 1 and 65535, got 70000"),
        (with_(listen_port=True), "listen_port: must be an integer, got a boolean"),
        (
            with_(storage={"backend": "mongodb"}),
            "storage.backend: unknown value (one of: memory, sqlite, redis)",
        ),
        (
            with_(auth_header_name="Bad Header"),
            "auth_header_name: must be a valid HTTP header name (letters, digits, - and _)",
        ),
    ],
)
def test_each_problem_names_its_field(doc: dict[str, Any], expected: str) -> None:
    assert problems(doc) == [expected]


def test_every_problem_is_reported_at_once() -> None:
    found = problems({"strategy": "x", "retry_attempts": 0, "keys": [{"id": "a"}]})
    assert len(found) == 4
    assert [p.split(":")[0] for p in found] == [
        "upstream_base_url",
        "keys[0].value",
        "strategy",
        "retry_attempts",
    ]


def test_repr_never_shows_a_key_value() -> None:
    cfg = parse_config(with_(keys=[{"id": "a", "value": "sk-very-secret-value"}]), env={})
    assert "sk-very-secret-value" not in repr(cfg)
    assert "sk-very-secret-value" not in str(cfg.keys)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("cooldown_seconds", 10**400),  # found by nox -s fuzz: OverflowError, a traceback
        ("cooldown_seconds", float("inf")),
        ("request_timeout_seconds", float("inf")),
        ("queue_timeout_seconds", float("nan")),
    ],
)
def test_numbers_must_be_finite(name: str, value: float) -> None:
    doc = {"upstream_base_url": "http://h", "keys": [{"id": "a", "value": "sk-a"}], name: value}
    with pytest.raises(ConfigError) as info:
        parse_config(doc, env={})
    assert info.value.problems[0].startswith(f"{name}: must be")


def test_number_from_environment_beyond_any_float() -> None:
    doc = {"upstream_base_url": "http://h", "keys": [{"id": "a", "value": "sk-a"}]}
    with pytest.raises(ConfigError) as info:
        parse_config(doc, env={"POOLSWITCH_COOLDOWN_SECONDS": "9" * 400})
    assert info.value.problems == (
        "cooldown_seconds (from POOLSWITCH_COOLDOWN_SECONDS): must be at least 0, got inf",
    )


@pytest.mark.parametrize("action", ["cooldown inf", "cooldown 1e999", "cooldown nan"])
def test_rule_cooldown_must_be_finite(action: str) -> None:
    doc = {
        "upstream_base_url": "http://h",
        "keys": [{"id": "a", "value": "sk-a"}],
        "on_status": [{"status": 429, "action": action}],
    }
    with pytest.raises(ConfigError) as info:
        parse_config(doc, env={})
    assert info.value.problems[0].startswith("on_status[0].action: must be one of")


@pytest.mark.parametrize("url", ["http://[::1", "http://[", "https://]x["])
def test_unclosed_ipv6_bracket_is_a_config_error(url: str) -> None:
    doc = {"upstream_base_url": url, "keys": [{"id": "a", "value": "sk-a"}]}
    with pytest.raises(ConfigError) as info:
        parse_config(doc, env={})
    assert info.value.problems[0].startswith("upstream_base_url: must be an http or https URL")


def test_load_config_file_and_sqlite_path_relative_to_it(
    tmp_config: Callable[[str], Path],
) -> None:
    path = tmp_config(
        "upstream_base_url: http://127.0.0.1:1\n"
        "storage: {backend: sqlite, sqlite_path: state.db}\n"
        "keys:\n  - {id: a, value: sk-a}\n"
    )
    cfg = load_config(path, env={})
    assert isinstance(cfg, Config)
    assert cfg.storage.sqlite_path == str(path.parent / "state.db")


def test_invalid_yaml_and_missing_file(tmp_config: Callable[[str], Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_config("keys: [unclosed\n"), env={})
    assert "invalid YAML at line" in info.value.problems[0]
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yaml", env={})
    assert "cannot read" in info.value.problems[0]


def test_example_config_is_valid() -> None:
    example = Path(__file__).parents[2] / "poolswitch.example.yaml"
    cfg = load_config(example, env={})
    assert cfg.upstream_base_url and cfg.keys


# ---- no config error prints a value: any value may be a key pasted in the wrong place ----

SECRET = "sk-PASTED-4242+x/y=z"
_SETTINGS = ("listen_host", "listen_port", "auth_header_name", "auth_scheme", "strategy",
             "retry_attempts", "cooldown_seconds", "request_timeout_seconds",
             "connect_timeout_seconds", "max_request_body_bytes", "provider", "auth_query_param",
             "admin_token", "retry_non_idempotent", "queue_timeout_seconds",
             "attempt_timeout_seconds")  # fmt: skip
_URLS = (
    SECRET,
    f"https://api.openai.com/v1?key={SECRET}",
    f"https://u:{SECRET.replace('/', '')}@api.openai.com",
    f"https://api.openai.com:{SECRET}",
    f"{SECRET}://api.openai.com",
    f"ftp://api.openai.com/{SECRET}",
    f"https:///{SECRET}",
)


@pytest.mark.parametrize("url", _URLS)
def test_no_config_error_shows_a_value(url: str) -> None:
    doc: dict[str, Any] = {name: SECRET for name in _SETTINGS}
    doc.update(
        {
            "upstream_base_url": url,
            SECRET: SECRET,  # a key pasted as a field name
            "storage": {"backend": SECRET, "sqlite_path": SECRET, SECRET.lower(): 1},
            "keys": [
                {"id": SECRET, "value": SECRET, "weight": SECRET, "metadata": SECRET},
                {"id": SECRET, "value": SECRET, SECRET: SECRET},
                SECRET,
            ],
            "on_status": [{"status": SECRET, "match": 1, "action": SECRET}, SECRET],
        }
    )
    env = {f"POOLSWITCH_{name.upper()}": SECRET for name in ("retry_attempts", "strategy")}
    found = problems(doc, env) + problems({**doc, "on_status": SECRET, "keys": SECRET}, env)
    assert len(found) > 25
    text = "\n".join(found)
    for form in (SECRET, SECRET.lower(), "PASTED", "4242"):
        assert form not in text
    assert "upstream_base_url: " in text and "keys[0].weight: " in text


def test_a_bad_url_is_described_by_scheme_and_host() -> None:
    assert problems(with_(upstream_base_url=f"ftp://api.example.com/{SECRET}")) == [
        "upstream_base_url: must be an http or https URL with a host, "
        "got scheme 'ftp', host 'api.example.com'"
    ]
    assert problems(with_(upstream_base_url=f"https://api.example.com:{SECRET}/v1")) == [
        "upstream_base_url: has an invalid port (https://api.example.com)"
    ]


@pytest.mark.parametrize(
    ("given", "expected"),
    [({}, "auto"), ({"verify_path": None}, None), ({"verify_path": "/v1/me"}, "/v1/me")],
)
def test_verify_path(given: dict[str, Any], expected: str | None) -> None:
    assert parse_config(with_(**given), env={}).verify_path == expected


def test_verify_path_from_the_environment() -> None:
    env = {"POOLSWITCH_VERIFY_PATH": "null"}
    assert parse_config(BASE, env=env).verify_path is None


@pytest.mark.parametrize("bad", ["v1/models", "/v1/models?key=x", "/a b", 3])
def test_a_bad_verify_path_names_the_field(bad: Any) -> None:
    assert problems(with_(verify_path=bad)) == [
        "verify_path: must be a path starting with / (no query), auto or null"
    ]


def test_limits_defaults() -> None:
    cfg = parse_config(BASE, env={})
    assert (
        cfg.max_header_bytes,
        cfg.max_header_count,
        cfg.header_timeout_seconds,
        cfg.body_timeout_seconds,
        cfg.keepalive_timeout_seconds,
        cfg.max_connections,
        cfg.max_in_flight_requests,
        cfg.max_buffered_body_bytes,
    ) == (65536, 100, 10.0, 30.0, 15.0, 1000, 512, 256 * MIB)


def test_limits_are_validated_and_overridable() -> None:
    assert problems(
        with_(
            max_header_bytes=10,
            max_header_count=0,
            header_timeout_seconds=0,
            body_timeout_seconds="soon",
            keepalive_timeout_seconds=-1,
            max_connections=0,
            max_in_flight_requests=0,
            max_buffered_body_bytes=-1,
        )
    ) == [
        "max_header_bytes: must be between 1024 and 16777216, got 10",
        "max_header_count: must be between 1 and 10000, got 0",
        "header_timeout_seconds: must be greater than 0, got 0",
        "body_timeout_seconds: must be a number, got a string",
        "keepalive_timeout_seconds: must be greater than 0, got -1",
        "max_connections: must be at least 1, got 0",
        "max_in_flight_requests: must be at least 1, got 0",
        "max_buffered_body_bytes: must be at least 0, got -1",
    ]
    cfg = parse_config(BASE, env={"POOLSWITCH_MAX_IN_FLIGHT_REQUESTS": "64"})
    assert cfg.max_in_flight_requests == 64
