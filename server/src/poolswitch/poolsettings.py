"""The settings of one pool (its upstream, its keys, how answers are read) as the schema of
config.py: at the top level of a config they are the defaults for every pool."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Annotated, Any

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
)
from pydantic.json_schema import SkipJsonSchema

from poolswitch.fieldtypes import (
    Boolean,
    CaFile,
    Choice,
    HeaderName,
    Integer,
    KeyId,
    KeyValue,
    Metadata,
    NonEmptyText,
    NotEmpty,
    Number,
    OnError,
    PoolName,
    QueryParam,
    Range,
    Route,
    Scheme,
    Url,
    VerifyPath,
)

STRATEGIES = ("round_robin", "least_used", "random", "quota_failover")

PROVIDERS = ("auto", "openai", "anthropic", "gemini", "generic")
RULE_ACTIONS = ("retry", "failover", "cooldown", "disable", "relay")
RULE_ACTION = "must be one of: retry, failover, cooldown SECONDS, disable, relay"
MIB = 1024 * 1024

FORBID = ConfigDict(extra="forbid")


def about(text: str) -> Any:
    return Field(description=text)


def _key_schema(schema: dict[str, Any]) -> None:
    schema["properties"]["metadata"]["default"] = {}


@dataclass(frozen=True)
class KeyConfig:
    """One key of a pool. `value` is the secret; it never appears in a repr."""

    __pydantic_config__ = ConfigDict(extra="forbid", json_schema_extra=_key_schema)

    id: Annotated[
        KeyId,
        about(
            "Name shown in logs, `/status`, `/metrics` and `x-poolswitch-key-id`: 1-64 "
            "letters, digits, `. _ : -`; unique in its pool."
        ),
    ]
    value: Annotated[
        KeyValue, about("The secret, usually `${ENV_VAR}`; never shown anywhere; unique.")
    ] = field(repr=False)
    weight: Annotated[
        Integer,
        Range(1, 1000),
        about(
            "Share of the traffic (round_robin, least_used, random) or priority (quota_failover)."
        ),
    ] = 1
    metadata: Annotated[Metadata, about("Free-form labels for your own bookkeeping.")] = ()


@dataclass(frozen=True)
class StatusRule:
    """An `on_status` override: answers with `status` (and, if set, `match` somewhere in the
    body's head, case-insensitive) get `action`; `seconds` goes with `cooldown`."""

    __pydantic_config__ = FORBID

    status: Annotated[Integer, Range(100, 599), about("The upstream answer's HTTP status.")]
    action: Annotated[
        str,
        Choice(RULE_ACTIONS, RULE_ACTION),
        WithJsonSchema(
            {"type": "string", "pattern": r"^\s*(retry|failover|disable|relay|cooldown\s+\S+)\s*$"}
        ),
        about(
            "`retry` (after a backoff, the key not penalised), `failover` (another key, "
            "the key not penalised), `cooldown SECONDS` (park the key that long, try "
            "another), `disable` (until enabled again), `relay` (answer the caller as is)."
        ),
    ]
    match: Annotated[
        NonEmptyText | None,
        about("Only answers whose body's head contains this text (case-insensitive)."),
    ] = None
    seconds: SkipJsonSchema[Annotated[Number, Range(0)] | None] = None


def _rule_from_document(value: Any) -> Any:
    """`action: cooldown 120` in a document is action `cooldown` with `seconds` 120."""
    if not isinstance(value, dict) or not isinstance(value.get("action"), str):
        return value
    words = value["action"].split()
    action: str | None = words[0] if len(words) == 1 and words[0] != "cooldown" else None
    seconds = value.get("seconds")
    if len(words) == 2 and words[0] == "cooldown" and "seconds" not in value:
        try:
            seconds = float(words[1])
        except ValueError:
            seconds = None
        if seconds is not None and 0 <= seconds < float("inf"):
            action = "cooldown"
    elif words == ["cooldown"] and seconds is not None:
        action = "cooldown"
    return {**value, "action": action, **({"seconds": seconds} if action == "cooldown" else {})}


Key = Annotated[KeyConfig, OnError("must be a mapping with id and value")]
Keys = Annotated[tuple[Key, ...], NotEmpty("must be a non-empty list of {id, value} entries")]
Rule = Annotated[
    StatusRule,
    BeforeValidator(_rule_from_document),
    OnError("must be a mapping with status, match and action"),
]


@dataclass(frozen=True, kw_only=True)
class PoolSettings:
    """The settings of one pool; at the top level, the defaults for every pool."""

    __pydantic_config__ = FORBID

    upstream_base_url: Annotated[
        Url,
        about(
            "http(s) URL of the API, may carry a base path (`https://gw/openai`); request "
            "paths are appended to it. Required (in each pool, or at the top level as "
            "their default)."
        ),
    ] = ""
    keys: Annotated[
        Keys,
        about(
            "The keys (at least one): `[{id, value, weight?, metadata?}]`; with `pools`, in "
            "each pool instead of here."
        ),
    ] = ()
    auth_header_name: Annotated[
        HeaderName,
        about(
            "Header that carries the key (`x-api-key` for Anthropic, `x-goog-api-key` for Gemini)."
        ),
    ] = "Authorization"
    auth_scheme: Annotated[
        Scheme | None, about("Word before the key; `null` sends the raw key.")
    ] = "Bearer"
    auth_query_param: Annotated[
        QueryParam | None,
        about(
            "Send the key in this query parameter instead of a header (Gemini `key`); never logged."
        ),
    ] = None
    provider: Annotated[
        str,
        Choice(PROVIDERS),
        about(
            "How upstream answers are read: `openai`, `anthropic`, `gemini`, `generic`; "
            "`auto` recognises the host."
        ),
    ] = "auto"
    strategy: Annotated[
        str,
        Choice(STRATEGIES),
        about("`round_robin`, `least_used`, `random`, `quota_failover` (below)."),
    ] = "round_robin"
    retry_attempts: Annotated[
        Integer,
        Range(1, 100),
        about(
            "Attempts per request in all; each on a key not yet tried while one is free, "
            "then (for 5xx, overload, connection errors, timeouts only) a key reused after "
            "a backoff."
        ),
    ] = 3
    cooldown_seconds: Annotated[
        Number,
        Range(0),
        about(
            "How long a quota-exhausted key is parked when the provider names no reset; "
            "the cap for escalation."
        ),
    ] = 3600.0
    request_timeout_seconds: Annotated[
        Number,
        Range(0, above=True),
        about("The whole request, retries included; also the wait between pieces of a stream."),
    ] = 600.0
    connect_timeout_seconds: Annotated[
        Number, Range(0, above=True), about("Wait for a connection to the upstream.")
    ] = 10.0
    upstream_ca_file: Annotated[
        CaFile | None,
        about(
            "PEM bundle of CA certificates trusted for the `https` upstream in addition to "
            "the system's (a private CA, a TLS-inspecting egress proxy); relative to the "
            "config file. Read when the config loads (a file that does not load is a config "
            "problem) and again by a reload. `null`: the system's CAs only (also in a pool, "
            "when the top level sets one)."
        ),
    ] = None
    attempt_timeout_seconds: Annotated[
        Annotated[Number, Range(0, above=True)] | None,
        about(
            "One attempt's wait for an answer before moving on to the next key; `null` = "
            "what is left of `request_timeout_seconds`."
        ),
    ] = None
    queue_timeout_seconds: Annotated[
        Number,
        Range(0),
        about(
            "When every key is cooling, wait up to this long for one to return instead of "
            "answering 429 `no_available_keys`."
        ),
    ] = 0.0
    retry_non_idempotent: Annotated[
        Boolean, about("Retry a POST/PATCH after a timeout or reset once it was sent.")
    ] = False
    verify_path: Annotated[
        VerifyPath | None,
        about(
            "GET path that confirms a key answering 401/403 is bad before it is disabled: "
            "`auto` is `/v1/models` (openai, anthropic), `/v1beta/models` (gemini), `null` "
            "(generic: two paths or another key's success confirm it). `poolswitch keys test` "
            "uses it too."
        ),
    ] = "auto"
    on_status: Annotated[
        tuple[Rule, ...],
        OnError("must be a list of {status, match?, action} rules"),
        about(
            "Overrides for provider quirks, checked before the built-in rules, first "
            "match wins: `{status, match?, action: retry | failover | cooldown N | "
            "disable | relay}`."
        ),
    ] = ()


def _pool_schema(schema: dict[str, Any]) -> None:
    """In a document, a pool's route and upstream_base_url may be left out (see PoolConfig)."""
    props = schema["properties"]
    schema["properties"] = {"name": props["name"], "route": props["route"], **props}
    schema["required"] = ["name", "keys"]
    for name in ("upstream_base_url", "keys"):
        props[name].pop("default", None)


@dataclass(frozen=True, kw_only=True)
class PoolConfig(PoolSettings):
    """One pool: its keys and settings, reached at `route` (or by `x-poolswitch-pool: name`).
    In a document, `route` defaults to "/" + name and every setting to the top-level one."""

    __pydantic_config__ = ConfigDict(extra="forbid", json_schema_extra=_pool_schema)

    name: Annotated[
        PoolName,
        about(
            "The pool's name (`x-poolswitch-pool`, `/status`, metrics): 1-32 lower-case "
            "letters, digits, `_ -`; unique."
        ),
    ]
    route: Annotated[
        Route,
        about(
            "Path prefix that reaches the pool, stripped before forwarding (`/openai/v1/x` "
            '-> `/v1/x`); default "/" + name. Unique; not a built-in path (`/health`, '
            "`/status`, `/metrics`, `/poolswitch`)."
        ),
    ]


POOL_SETTINGS = tuple(f.name for f in fields(PoolConfig) if f.name not in ("name", "route", "keys"))
"""The per-pool settings (a top-level one is the default for every pool)."""
