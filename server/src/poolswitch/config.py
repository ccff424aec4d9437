"""Configuration: YAML plus environment -> frozen, validated dataclasses.

The dataclasses below are the schema: each field's type (fieldtypes.py) says what it accepts,
its description and default go into the JSON Schema (`poolswitch schema`) and the generated
docs (schemadoc.py). pydantic validates a document against them; built by hand (tests, code)
they are plain frozen dataclasses.

Every problem is reported at once, one line each, naming its YAML path:
`pools[1].keys[0].value: environment variable OPENAI_KEY_2 is not set`. A message names the
field and what is wrong with it, never the value (any value may be a key pasted in the wrong
place): the type of a wrong value, the scheme and host of a URL. Any string (a key value above
all) may be written `${ENV_VAR}` or `${ENV_VAR:-default}`, and `POOLSWITCH_<SETTING>`
environment variables override top-level settings (`POOLSWITCH_LISTEN_PORT=9000`,
`POOLSWITCH_STORAGE_BACKEND=sqlite`); see envvars.py. Checks across fields (duplicates, pool
names) are in crosschecks.py, the wording of pydantic's errors in problems.py.

The seed's single-pool form (top-level `upstream_base_url` and `keys`) is one pool named
`default` at route `/`; with `pools:`, each pool takes the top-level settings as its defaults.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    ConfigDict,
    TypeAdapter,
    ValidationError,
)

from poolswitch import crosschecks, envvars, problems
from poolswitch.errors import ConfigError
from poolswitch.fieldtypes import (
    Boolean,
    CallerToken,
    Choice,
    Integer,
    KeyId,
    Names,
    Namespace,
    NotEmpty,
    Number,
    OnError,
    Origins,
    PoolName,
    Range,
    RedisUrl,
    Secret,
    Text,
)
from poolswitch.poolsettings import (
    FORBID,
    MIB,
    POOL_SETTINGS,
    PROVIDERS,
    RULE_ACTIONS,
    STRATEGIES,
    KeyConfig,
    PoolConfig,
    PoolSettings,
    StatusRule,
    about,
)
from poolswitch.problems import Problem

__all__ = [
    "LIMITS",
    "LOG_FORMATS",
    "MIB",
    "POOL_SETTINGS",
    "PROVIDERS",
    "RULE_ACTIONS",
    "SCALARS",
    "STORAGE_BACKENDS",
    "STRATEGIES",
    "TOP_LEVEL",
    "CallerConfig",
    "Config",
    "KeyConfig",
    "PoolConfig",
    "PoolSettings",
    "StatusRule",
    "StorageConfig",
    "load_config",
    "parse_config",
    "schema_adapter",
]

STORAGE_BACKENDS = ("memory", "sqlite", "redis")
LOG_FORMATS = ("text", "json")

PoolNames = Annotated[tuple[PoolName, ...], NotEmpty("must be a non-empty list of pool names")]


@dataclass(frozen=True)
class CallerConfig:
    """A caller allowed to use the proxy. `token` is the secret; it never appears in a repr."""

    __pydantic_config__ = FORBID

    id: Annotated[
        KeyId,
        about(
            "Shown in the access log and as the `caller` label of metrics: 1-64 letters, "
            "digits, `. _ : -`; unique."
        ),
    ]
    token: Annotated[
        CallerToken,
        about(
            "The caller's secret, at least 16 printable characters, usually `${ENV_VAR}`; "
            "sent as the caller's SDK API key or in `x-poolswitch-token`."
        ),
    ] = field(repr=False)
    pools: Annotated[
        PoolNames | None,
        about(
            "The pools this caller may use (by name); others answer `403 forbidden`. "
            "`null`: every pool."
        ),
    ] = None
    rpm: Annotated[
        Annotated[Integer, Range(1, 1_000_000)] | None,
        about(
            "Requests per minute this caller may send; beyond it `429 "
            "caller_rate_limited` with `Retry-After`, nothing sent upstream. `null`: no limit."
        ),
    ] = None
    max_concurrency: Annotated[
        Annotated[Integer, Range(1, 100_000)] | None,
        about(
            "Requests of this caller served at once; beyond it `429 caller_rate_limited`. "
            "`null`: no limit."
        ),
    ] = None


@dataclass(frozen=True)
class StorageConfig:
    __pydantic_config__ = FORBID

    backend: Annotated[
        str,
        Choice(STORAGE_BACKENDS),
        about(
            "`memory` (lost on restart), `sqlite` (one machine) or `redis` (shared by "
            "replicas): with sqlite and redis every cooldown and disable is stored before the "
            "answer that caused it goes out, so it survives a restart, even `kill -9`, and "
            "every process on the store sees it within 100 ms; counters are written each "
            "second; a key whose value changed under the same id starts afresh. See [Key "
            "state on disk](#key-state-on-disk) and [Replicas on Redis](#replicas-on-redis)."
        ),
    ] = "memory"
    sqlite_path: Annotated[
        Text,
        about(
            "SQLite file, relative to the config file; its directory must exist and be "
            "writable. `validate` checks it; a file that is corrupt, not PoolSwitch's, or "
            "from a newer version stops `start` with exit 2 and one line (`storage error: "
            "storage.sqlite_path: ...`), never a reset."
        ),
    ] = "poolswitch.db"
    redis_url: Annotated[
        RedisUrl | None,
        about(
            "The Redis server for `backend: redis`: `redis://[user:password@]host:port/db`, "
            "or `rediss://` for TLS. Usually `${REDIS_URL}`; the password never appears in a "
            "log or an error."
        ),
    ] = field(default=None, repr=False)
    namespace: Annotated[
        Namespace,
        about(
            "Prefix of every Redis key and channel: replicas that share key state use the "
            "same one; other PoolSwitch deployments on the same Redis use another."
        ),
    ] = "poolswitch"
    start_without_redis: Annotated[
        Boolean,
        about(
            "When Redis cannot be reached at start: `true` serves on local state (degraded, "
            "one warning line, shared again once Redis answers); `false` refuses to start "
            "(exit 2, one line)."
        ),
    ] = True
    redis_timeout_seconds: Annotated[
        Number,
        Range(0.01, 10),
        about(
            "The longest an answer waits for Redis to store the transition it caused; past "
            "it, or while Redis is unreachable, the proxy serves on local state and reports "
            "`degraded` until Redis answers again."
        ),
    ] = 0.25


Caller = Annotated[CallerConfig, OnError("must be a mapping with id and token")]


def _config_schema(schema: dict[str, Any]) -> None:
    """upstream_base_url and keys: required without `pools` (crosschecks.py), not with it."""
    for name in ("upstream_base_url", "keys"):
        schema["properties"][name].pop("default", None)


@dataclass(frozen=True, kw_only=True)
class Config(PoolSettings):
    __pydantic_config__ = ConfigDict(
        extra="forbid", title="PoolSwitch configuration", json_schema_extra=_config_schema
    )

    listen_host: Annotated[Text, about("Address to listen on.")] = "127.0.0.1"
    listen_port: Annotated[Integer, Range(1, 65535), about("Port to listen on.")] = 8080
    max_request_body_bytes: Annotated[
        Integer, Range(0), about("Larger request bodies get 413.")
    ] = 32 * MIB
    log_format: Annotated[
        str,
        Choice(LOG_FORMATS),
        about(
            "`text` (one line per record) or `json` (one object per line: `ts`, `level`, "
            "`logger`, `msg`, and the access log's fields); `poolswitch start --log-format` "
            "overrides it."
        ),
    ] = "text"
    storage: Annotated[
        StorageConfig,
        OnError("must be a mapping (backend, sqlite_path, redis_url, ...)"),
        about("Where key state (cooldowns, counters) is kept."),
    ] = StorageConfig()
    admin_token: Annotated[
        Secret | None,
        about(
            "Enables the admin API (`poolswitch keys list|enable|disable|reset|test|drain`); "
            "at least 16 characters."
        ),
    ] = field(default=None, repr=False)
    dashboard: Annotated[
        Boolean,
        about(
            "Serve the web page `GET /dashboard` (keys, callers, outage guard; admin buttons "
            "in an admin session); behind the admin token or a caller token when either is "
            "set. Off: `/dashboard` is proxied like any path."
        ),
    ] = False
    # caller authentication and browser checks (callers.py, origins.py)
    callers: Annotated[
        tuple[Caller, ...],
        NotEmpty("must be a non-empty list of {id, token} entries"),
        about(
            "`[{id, token, pools?, rpm?, max_concurrency?}]`: when set, every proxied "
            "request needs one of these tokens; `token` at least 16 printable characters, "
            "usually `${ENV}`."
        ),
    ] = ()
    allow_unauthenticated: Annotated[
        Boolean,
        about(
            "Let `poolswitch start` listen on a non-loopback address with no `callers` "
            "(anyone who reaches the port spends the keys)."
        ),
    ] = False
    metrics_token: Annotated[
        Secret | None,
        about(
            "When set, `/metrics` needs `Authorization: Bearer <metrics_token>` (or the "
            "admin token)."
        ),
    ] = field(default=None, repr=False)
    watch_config: Annotated[
        Boolean,
        about(
            "Under `poolswitch start`, reload the config file when it changes (its time or "
            "size, looked at every second), as SIGHUP does: an invalid file changes nothing."
        ),
    ] = False
    allowed_hosts: Annotated[
        Names,
        about(
            "`Host` names served besides the listen address, `localhost`, `127.0.0.1`, "
            '`[::1]` (always allowed); `["*"]` turns the check off.'
        ),
    ] = ()
    allowed_origins: Annotated[
        Origins,
        about(
            "Browser origins (`https://app.example.com`) allowed to call the proxy, with "
            "CORS; any other `Origin` gets 403."
        ),
    ] = ()
    max_header_bytes: Annotated[
        Integer,
        Range(1024, 16 * MIB),
        about(
            "Request line + headers, in all; beyond it `431 headers_too_large` (read only "
            "up to the limit) and the connection is closed."
        ),
    ] = 64 * 1024
    max_header_count: Annotated[
        Integer,
        Range(1, 10_000),
        about("Headers per request; beyond it `431 headers_too_large`."),
    ] = 100
    header_timeout_seconds: Annotated[
        Number,
        Range(0, above=True),
        about(
            "A request head must arrive within this, from its first byte (a new "
            "connection: from the accept); else the connection is closed."
        ),
    ] = 10.0
    body_timeout_seconds: Annotated[
        Number,
        Range(0, above=True),
        about(
            "Longest pause between two reads of a request body; else the connection is "
            "closed and nothing goes upstream."
        ),
    ] = 30.0
    keepalive_timeout_seconds: Annotated[
        Number, Range(0, above=True), about("An idle keep-alive connection is closed after this.")
    ] = 15.0
    max_connections: Annotated[
        Integer,
        Range(1),
        about(
            "Open caller connections; new ones beyond it are closed at once, so open ones "
            "keep working. At start the soft open-file limit is raised to the hard one, "
            "then this is lowered to that limit minus one upstream connection per request "
            "in flight and what the process needs (logged)."
        ),
    ] = 1000
    max_in_flight_requests: Annotated[
        Integer,
        Range(1),
        about(
            "Proxied requests served at once; beyond it `503 overloaded` with "
            "`Retry-After: 1`, nothing sent upstream. Also the most upstream connections "
            "a pool opens (one per request in flight)."
        ),
    ] = 512
    max_buffered_body_bytes: Annotated[
        Integer,
        Range(0),
        about(
            "Request bodies held in memory at once, all requests together; a body that "
            "would pass it gets `503 overloaded` (one alone over `max_request_body_bytes` "
            "gets 413)."
        ),
    ] = 256 * MIB
    pools: Annotated[
        tuple[Annotated[PoolConfig, OnError("must be a mapping with name and keys")], ...],
        NotEmpty("must be a non-empty list of {name, keys, ...} entries"),
        about(
            "Several pools behind one proxy, each `{name, route?, keys, <any setting "
            "above>}`, reached by the longest route prefix or `x-poolswitch-pool: name`; "
            "the top-level settings are every pool's defaults. Without it: one pool "
            "`default` at `/` from the top-level `upstream_base_url` and `keys`."
        ),
    ] = ()

    def __post_init__(self) -> None:
        if not self.pools:  # the single-pool form
            settings = {name: getattr(self, name) for name in POOL_SETTINGS}
            pool = PoolConfig(name="default", route="/", keys=self.keys, **settings)
            object.__setattr__(self, "pools", (pool,))


LIMITS = (
    "max_header_bytes",
    "max_header_count",
    "header_timeout_seconds",
    "body_timeout_seconds",
    "keepalive_timeout_seconds",
    "max_connections",
    "max_in_flight_requests",
    "max_buffered_body_bytes",
)
"""The limits on what callers send (enforced by protocol.py and proxy.py)."""

TOP_LEVEL = tuple(f.name for f in fields(Config))
STRUCTURED = (
    "storage",
    "keys",
    "on_status",
    "callers",
    "allowed_hosts",
    "allowed_origins",
    "pools",
)
SCALARS = tuple(name for name in TOP_LEVEL if name not in STRUCTURED)
"""The settings a POOLSWITCH_<SETTING> environment variable may override."""


@functools.cache
def schema_adapter() -> TypeAdapter[Config]:
    """The validator and JSON Schema of a whole document (built once, on first use)."""
    return TypeAdapter(Config)


def _under(loc: tuple[str | int, ...], places: set[tuple[str | int, ...]]) -> bool:
    return any(loc[:n] in places for n in range(len(loc) + 1))


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Read and validate a YAML file; raise ConfigError listing every problem."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read ({exc.strerror or exc})"]) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError([f"{path}: invalid YAML{where}"]) from None
    return parse_config(
        {} if raw is None else raw, env=os.environ if env is None else env, base_dir=file.parent
    )


def parse_config(raw: Any, *, env: Mapping[str, str], base_dir: Path | None = None) -> Config:
    """Validate an already-parsed document (a mapping) against the schema."""
    if not isinstance(raw, dict):
        raise ConfigError(["(top level): must be a mapping of settings"])
    storage = tuple(f.name for f in fields(StorageConfig))
    doc, origin = envvars.apply_overrides(dict(raw), env, SCALARS, storage)
    doc, unset = envvars.expand(doc, env)
    found: list[Problem] = [(at, f"environment variable {name} is not set") for at, name in unset]
    doc, inherited = crosschecks.prepare(doc, Config, POOL_SETTINGS, base_dir)
    config: Config | None = None
    try:
        config = schema_adapter().validate_python(doc)
    except ValidationError as exc:
        # reported where the value was written (the top-level setting a pool copied), or not
        # at all when it is "" for an unset variable (that is the problem)
        skip = {at for at, _ in unset} | inherited
        found += [p for p in problems.from_error(exc) if not _under(p[0], skip)]
    found += crosschecks.check(doc)
    if found or config is None:
        raise ConfigError(problems.lines(found, origin, TOP_LEVEL))
    return config
