"""Configuration: YAML plus environment -> frozen, validated dataclasses.

Every problem is reported at once, one line each, naming its YAML path:
`keys[1].value: environment variable OPENAI_KEY_2 is not set`. A message names the field and
what is wrong with it, never the value (any value may be a key pasted in the wrong place): the
type of a wrong value, the scheme and host of a URL. Any string setting (a key value
above all) may be written `${ENV_VAR}` or `${ENV_VAR:-default}`, and `POOLSWITCH_<SETTING>`
environment variables override top-level settings (`POOLSWITCH_LISTEN_PORT=9000`,
`POOLSWITCH_STORAGE_BACKEND=sqlite`).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from poolswitch.errors import ConfigError

STRATEGIES = ("round_robin", "least_used", "random", "quota_failover")
STORAGE_BACKENDS = ("memory", "sqlite")
PROVIDERS = ("auto", "openai", "anthropic", "gemini", "generic")
RULE_ACTIONS = ("retry", "failover", "cooldown", "disable", "relay")
MIB = 1024 * 1024

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_KEY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_HOST = re.compile(r"^[a-z0-9_]([a-z0-9_.-]{0,252})$")
_FIELD_NAME = re.compile(r"^[a-z_]{1,40}$")
"""An unknown field is named only when it looks like a setting, not like a pasted key."""


@dataclass(frozen=True)
class KeyConfig:
    """One key of the pool. `value` is the secret; it never appears in a repr."""

    id: str
    value: str = field(repr=False)
    weight: int = 1
    metadata: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class StatusRule:
    """An `on_status` override: answers with `status` (and, if set, `match` somewhere in the
    body's head, case-insensitive) get `action`; `seconds` goes with `cooldown`."""

    status: int
    action: str
    match: str | None = None
    seconds: float | None = None


@dataclass(frozen=True)
class CallerConfig:
    """A caller allowed to use the proxy. `token` is the secret; it never appears in a repr."""

    id: str
    token: str = field(repr=False)
    pools: tuple[str, ...] | None = None
    rpm: int | None = None
    max_concurrency: int | None = None


@dataclass(frozen=True)
class PoolConfig:
    name: str
    route: str
    upstream_base_url: str
    keys: tuple[KeyConfig, ...]
    auth_header_name: str = "Authorization"
    auth_scheme: str | None = "Bearer"
    auth_query_param: str | None = None
    provider: str = "auto"
    strategy: str = "round_robin"
    retry_attempts: int = 3
    cooldown_seconds: float = 3600.0
    request_timeout_seconds: float = 600.0
    connect_timeout_seconds: float = 10.0
    attempt_timeout_seconds: float | None = None
    queue_timeout_seconds: float = 0.0
    retry_non_idempotent: bool = False
    verify_path: str | None = "auto"
    on_status: tuple[StatusRule, ...] = ()


@dataclass(frozen=True)
class StorageConfig:
    backend: str = "memory"
    sqlite_path: str = "poolswitch.db"


@dataclass(frozen=True)
class Config:
    upstream_base_url: str
    keys: tuple[KeyConfig, ...]
    listen_host: str = "127.0.0.1"
    listen_port: int = 8080
    auth_header_name: str = "Authorization"
    auth_scheme: str | None = "Bearer"
    strategy: str = "round_robin"
    retry_attempts: int = 3
    cooldown_seconds: float = 3600.0
    request_timeout_seconds: float = 600.0
    connect_timeout_seconds: float = 10.0
    max_request_body_bytes: int = 32 * MIB
    storage: StorageConfig = StorageConfig()
    provider: str = "auto"
    auth_query_param: str | None = None
    admin_token: str | None = field(default=None, repr=False)
    retry_non_idempotent: bool = False
    queue_timeout_seconds: float = 0.0
    attempt_timeout_seconds: float | None = None
    on_status: tuple[StatusRule, ...] = ()
    # caller authentication and browser checks (callers.py, origins.py)
    callers: tuple[CallerConfig, ...] = ()
    allow_unauthenticated: bool = False
    metrics_token: str | None = field(default=None, repr=False)
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    verify_path: str | None = "auto"  # "auto": the provider profile's (verify.DEFAULT_PATHS)
    max_header_bytes: int = 64 * 1024
    max_header_count: int = 100
    header_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 30.0
    keepalive_timeout_seconds: float = 15.0
    max_connections: int = 1000
    max_in_flight_requests: int = 512
    max_buffered_body_bytes: int = 256 * MIB
    pools: tuple[PoolConfig, ...] = ()


POOL_SETTINGS = (
    "upstream_base_url",
    "auth_header_name",
    "auth_scheme",
    "auth_query_param",
    "provider",
    "strategy",
    "retry_attempts",
    "cooldown_seconds",
    "request_timeout_seconds",
    "connect_timeout_seconds",
    "attempt_timeout_seconds",
    "queue_timeout_seconds",
    "retry_non_idempotent",
    "verify_path",
    "on_status",
)


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

_SCALARS = (
    "listen_host",
    "listen_port",
    "upstream_base_url",
    "auth_header_name",
    "auth_scheme",
    "strategy",
    "retry_attempts",
    "cooldown_seconds",
    "request_timeout_seconds",
    "connect_timeout_seconds",
    "max_request_body_bytes",
    "provider",
    "auth_query_param",
    "admin_token",
    "retry_non_idempotent",
    "queue_timeout_seconds",
    "attempt_timeout_seconds",
    "allow_unauthenticated",
    "metrics_token",
    "verify_path",
    *LIMITS,
)
TOP_LEVEL = (
    *_SCALARS,
    "storage",
    "keys",
    "on_status",
    "callers",
    "allowed_hosts",
    "allowed_origins",
    "pools",
)


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
    v = _Validator(env)
    if not isinstance(raw, dict):
        raise ConfigError(["(top level): must be a mapping of settings"])
    doc = dict(raw)
    _apply_env_overrides(doc, env, v)
    v.unknown(doc, TOP_LEVEL, "")
    raw_pools = doc.pop("pools", None)
    raw_callers = doc.get("callers")
    if isinstance(raw_callers, list):
        doc["callers"] = [
            {k: e[k] for k in ("id", "token") if k in e} if isinstance(e, dict) else e
            for e in raw_callers
        ]
    if raw_pools is not None:
        pools = []
        for i, entry in enumerate(raw_pools):
            merged = {k: doc[k] for k in POOL_SETTINGS if k in doc}
            merged.update({k: val for k, val in entry.items() if k not in ("name", "route")})
            sub = parse_config(merged, env=env, base_dir=base_dir)
            p = sub.pools[0]
            pools.append(
                PoolConfig(
                    **{
                        **p.__dict__,
                        "name": entry["name"],
                        "route": entry.get("route", "/" + entry["name"]),
                    }
                )
            )
        doc = {**doc, "keys": [{"id": "unused", "value": "unused"}]}
        doc.setdefault("upstream_base_url", "http://unused.invalid")

    defaults = Config(upstream_base_url="", keys=())
    url = v.url(doc, "upstream_base_url")
    storage = v.storage(doc.get("storage"), base_dir)
    keys = v.keys(doc.get("keys"))
    cfg = Config(
        upstream_base_url=url,
        keys=keys,
        listen_host=v.text(doc, "listen_host", defaults.listen_host),
        listen_port=v.integer(doc, "listen_port", defaults.listen_port, low=1, high=65535),
        auth_header_name=v.token(doc, "auth_header_name", defaults.auth_header_name),
        auth_scheme=v.scheme(doc, "auth_scheme", defaults.auth_scheme),
        strategy=v.choice(doc, "strategy", defaults.strategy, STRATEGIES),
        retry_attempts=v.integer(doc, "retry_attempts", defaults.retry_attempts, low=1, high=100),
        cooldown_seconds=v.number(doc, "cooldown_seconds", defaults.cooldown_seconds, low=0),
        request_timeout_seconds=v.number(
            doc, "request_timeout_seconds", defaults.request_timeout_seconds, positive=True
        ),
        connect_timeout_seconds=v.number(
            doc, "connect_timeout_seconds", defaults.connect_timeout_seconds, positive=True
        ),
        max_request_body_bytes=v.integer(
            doc, "max_request_body_bytes", defaults.max_request_body_bytes, low=0
        ),
        storage=storage,
        provider=v.choice(doc, "provider", defaults.provider, PROVIDERS),
        auth_query_param=v.optional_token(doc, "auth_query_param"),
        admin_token=v.optional_secret(doc, "admin_token"),
        retry_non_idempotent=v.boolean(doc, "retry_non_idempotent", False),
        queue_timeout_seconds=v.number(doc, "queue_timeout_seconds", 0.0, low=0),
        attempt_timeout_seconds=None
        if doc.get("attempt_timeout_seconds") is None
        else v.number(doc, "attempt_timeout_seconds", 1.0, positive=True),
        on_status=v.rules(doc.get("on_status")),
        callers=v.callers(doc.get("callers")),
        allow_unauthenticated=v.boolean(doc, "allow_unauthenticated", False),
        metrics_token=v.optional_secret(doc, "metrics_token"),
        allowed_hosts=v.names(doc.get("allowed_hosts"), "allowed_hosts", _host_name),
        allowed_origins=v.names(doc.get("allowed_origins"), "allowed_origins", _origin),
        verify_path=v.verify_path(doc),
        max_header_bytes=v.integer(
            doc, "max_header_bytes", defaults.max_header_bytes, low=1024, high=16 * MIB
        ),
        max_header_count=v.integer(
            doc, "max_header_count", defaults.max_header_count, low=1, high=10_000
        ),
        header_timeout_seconds=v.number(
            doc, "header_timeout_seconds", defaults.header_timeout_seconds, positive=True
        ),
        body_timeout_seconds=v.number(
            doc, "body_timeout_seconds", defaults.body_timeout_seconds, positive=True
        ),
        keepalive_timeout_seconds=v.number(
            doc, "keepalive_timeout_seconds", defaults.keepalive_timeout_seconds, positive=True
        ),
        max_connections=v.integer(doc, "max_connections", defaults.max_connections, low=1),
        max_in_flight_requests=v.integer(
            doc, "max_in_flight_requests", defaults.max_in_flight_requests, low=1
        ),
        max_buffered_body_bytes=v.integer(
            doc, "max_buffered_body_bytes", defaults.max_buffered_body_bytes, low=0
        ),
    )
    _check_tokens(cfg, v)
    if v.problems:
        raise ConfigError(v.problems)
    if raw_callers is not None and isinstance(raw_callers, list):
        extra = {c.get("id"): c for c in raw_callers if isinstance(c, dict)}
        callers = tuple(
            CallerConfig(
                c.id,
                c.token,
                None if extra[c.id].get("pools") is None else tuple(extra[c.id]["pools"]),
                extra[c.id].get("rpm"),
                extra[c.id].get("max_concurrency"),
            )
            for c in cfg.callers
        )
        cfg = dataclasses.replace(cfg, callers=callers)
    if raw_pools is not None:
        return dataclasses.replace(cfg, keys=(), pools=tuple(pools))
    single = PoolConfig(
        name="default",
        route="/",
        keys=cfg.keys,
        **{k: getattr(cfg, k) for k in POOL_SETTINGS},
    )
    return dataclasses.replace(cfg, pools=(single,))


def _check_tokens(cfg: Config, v: _Validator) -> None:
    """A caller token must not open more than the caller's door."""
    for i, caller in enumerate(cfg.callers):
        if caller.token in (cfg.admin_token, cfg.metrics_token):
            other = "admin_token" if caller.token == cfg.admin_token else "metrics_token"
            v.problem(f"callers[{i}].token", f"same value as {other}")


def _host_name(value: str) -> str | None:
    """A Host name without port, lower-cased (`[::1]` for IPv6), or None when invalid."""
    name = value.strip().lower().rstrip(".")
    if name == "*":
        return name
    if name.startswith("[") and name.endswith("]") and ":" in name:
        return name
    if ":" in name and all(c in "0123456789abcdef:." for c in name):
        return f"[{name}]"  # a bare IPv6 address
    if not name or not _HOST.match(name):
        return None
    return name


def _origin(value: str) -> str | None:
    """A browser origin, `scheme://host[:port]`, lower-cased, or None when invalid."""
    origin = value.strip().lower()
    try:
        parts = urlsplit(origin)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:  # "http://[" and friends
        return None
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.path
        or parts.query
        or parts.fragment
        or parts.username
        or parts.password
        or origin != f"{parts.scheme}://{parts.netloc}"
    ):
        return None
    return origin


def _apply_env_overrides(doc: dict[str, Any], env: Mapping[str, str], v: _Validator) -> None:
    """POOLSWITCH_<SETTING> replaces a top-level setting; POOLSWITCH_STORAGE_<X> a storage one."""
    for name in _SCALARS:
        var = "POOLSWITCH_" + name.upper()
        if var in env:
            doc[name] = _env_scalar(env[var])
            v.origin[name] = var
    for name in ("backend", "sqlite_path"):
        var = "POOLSWITCH_STORAGE_" + name.upper()
        if var in env:
            storage = doc.get("storage")
            merged = dict(storage) if isinstance(storage, dict) else {}
            merged[name] = env[var]
            doc["storage"] = merged
            v.origin["storage." + name] = var


def _env_scalar(text: str) -> Any:
    """Environment values are typed as YAML scalars: `8080` is a number, `null` is null."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, (str, int, float, bool)) or value is None else text


class _Validator:
    """Collects problems; each getter returns a usable value even when it records a problem."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []
        self.origin: dict[str, str] = {}

    def problem(self, where: str, message: str) -> None:
        via = self.origin.get(where)
        self.problems.append(f"{where}{f' (from {via})' if via else ''}: {message}")

    def unknown(self, doc: Mapping[Any, Any], allowed: tuple[str, ...], prefix: str) -> None:
        for name in doc:
            if name not in allowed:
                if isinstance(name, str) and _FIELD_NAME.match(name):
                    self.problem(f"{prefix}{name}", "unknown field")
                else:
                    self.problem(
                        prefix.rstrip(".") or "(top level)",
                        "unknown field (name not shown: it does not look like a setting)",
                    )

    def expand(self, value: Any, where: str) -> Any:
        if not isinstance(value, str) or "${" not in value:
            return value

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name not in self.env and default is not None:
                return default
            if name not in self.env:
                self.problem(where, f"environment variable {name} is not set")
                return ""
            return self.env[name]

        return _ENV_REF.sub(substitute, value)

    def _get(self, doc: Mapping[str, Any], name: str, where: str) -> Any:
        return self.expand(doc.get(name), where)

    def text(self, doc: Mapping[str, Any], name: str, default: str, where: str = "") -> str:
        where = where or name
        value = self._get(doc, name, where)
        if value is None:
            return default
        if not isinstance(value, str) or not value.strip():
            self.problem(where, "must be a non-empty string")
            return default
        return value

    def token(self, doc: Mapping[str, Any], name: str, default: str) -> str:
        value = self.text(doc, name, default)
        if not _TOKEN.match(value):
            self.problem(name, "must be a valid HTTP header name (letters, digits, - and _)")
        return value

    def optional_token(self, doc: Mapping[str, Any], name: str) -> str | None:
        if doc.get(name) is None:
            return None
        return self.token(doc, name, "")

    def optional_secret(self, doc: Mapping[str, Any], name: str) -> str | None:
        if doc.get(name) is None:
            return None
        value = self.text(doc, name, "")
        if len(value) < 16 or any(c.isspace() for c in value):
            self.problem(name, "must be at least 16 characters without whitespace")
            return None
        return value

    def callers(self, raw: Any) -> tuple[CallerConfig, ...]:
        if raw is None:
            return ()
        if not isinstance(raw, list) or not raw:
            self.problem("callers", "must be a non-empty list of {id, token} entries")
            return ()
        callers: list[CallerConfig] = []
        seen_ids: dict[str, int] = {}
        seen_tokens: dict[str, int] = {}
        for i, entry in enumerate(raw):
            at = f"callers[{i}]"
            if not isinstance(entry, dict):
                self.problem(at, "must be a mapping with id and token")
                continue
            self.unknown(entry, ("id", "token"), at + ".")
            caller_id = self.expand(entry.get("id"), at + ".id")
            token = self.expand(entry.get("token"), at + ".token")
            ok = True
            if caller_id is None:
                self.problem(at + ".id", "missing")
                ok = False
            elif not isinstance(caller_id, str) or not _KEY_ID.match(caller_id):
                self.problem(at + ".id", "must be 1-64 characters of letters, digits, . _ : -")
                ok = False
            elif caller_id in seen_ids:
                self.problem(
                    at + ".id", f"duplicate id {caller_id!r} (also callers[{seen_ids[caller_id]}])"
                )
                ok = False
            else:
                seen_ids[caller_id] = i
            if token is None:
                self.problem(at + ".token", "missing")
                ok = False
            elif not isinstance(token, str) or len(token) < 16:
                if "${" not in str(entry.get("token")) or token:
                    self.problem(at + ".token", "must be a string of at least 16 characters")
                ok = False
            elif not all("!" <= c <= "~" for c in token):
                self.problem(
                    at + ".token",
                    "must be printable ASCII without whitespace or control characters",
                )
                ok = False
            elif token in seen_tokens:
                self.problem(at + ".token", f"same value as callers[{seen_tokens[token]}].token")
                ok = False
            else:
                seen_tokens[token] = i
            if ok:
                callers.append(CallerConfig(caller_id, token))
        return tuple(callers)

    def names(
        self, raw: Any, where: str, normalise: Callable[[str], str | None]
    ) -> tuple[str, ...]:
        if raw is None:
            return ()
        if not isinstance(raw, list):
            self.problem(where, "must be a list of strings")
            return ()
        names: list[str] = []
        for i, entry in enumerate(raw):
            value = self.expand(entry, f"{where}[{i}]")
            name = normalise(value) if isinstance(value, str) else None
            if name is None:
                kind = (
                    "a host name"
                    if where == "allowed_hosts"
                    else "an origin (scheme://host[:port])"
                )
                self.problem(f"{where}[{i}]", f"must be {kind}")
            elif name not in names:
                names.append(name)
        return tuple(names)

    def verify_path(self, doc: Mapping[str, Any]) -> str | None:
        if "verify_path" not in doc:
            return "auto"
        value = self._get(doc, "verify_path", "verify_path")
        if value is None or value == "auto":
            return value  # type: ignore[no-any-return]
        if (
            not isinstance(value, str)
            or not value.startswith("/")
            or any(c.isspace() or ord(c) < 32 or c in "#?" for c in value)
        ):
            self.problem("verify_path", "must be a path starting with / (no query), auto or null")
            return "auto"
        return value

    def boolean(self, doc: Mapping[str, Any], name: str, default: bool) -> bool:
        value = self._get(doc, name, name)
        if value is None:
            return default
        if isinstance(value, str):
            value = _env_scalar(value)
        if not isinstance(value, bool):
            self.problem(name, f"must be true or false, got {_kind(value)}")
            return default
        return value

    def rules(self, raw: Any) -> tuple[StatusRule, ...]:
        if raw is None:
            return ()
        if not isinstance(raw, list):
            self.problem("on_status", "must be a list of {status, match?, action} rules")
            return ()
        rules = []
        for i, entry in enumerate(raw):
            at = f"on_status[{i}]"
            if not isinstance(entry, dict):
                self.problem(at, "must be a mapping with status, match and action")
                continue
            self.unknown(entry, ("status", "match", "action"), at + ".")
            if entry.get("status") is None:
                self.problem(at + ".status", "missing")
            status = self.integer(entry, "status", 0, low=100, high=599, where=at + ".status")
            match = entry.get("match")
            if match is not None and (not isinstance(match, str) or not match):
                self.problem(at + ".match", "must be a non-empty string")
                match = None
            action, seconds = self.action(entry.get("action"), at + ".action")
            if status and action:
                rules.append(StatusRule(status, action, match, seconds))
        return tuple(rules)

    def action(self, raw: Any, where: str) -> tuple[str, float | None]:
        words = raw.split() if isinstance(raw, str) else []
        if len(words) == 1 and words[0] in RULE_ACTIONS and words[0] != "cooldown":
            return words[0], None
        if len(words) == 2 and words[0] == "cooldown":
            try:
                seconds = float(words[1])
            except ValueError:
                seconds = -1.0
            if 0 <= seconds < math.inf:
                return "cooldown", seconds
        self.problem(where, "must be one of: retry, failover, cooldown SECONDS, disable, relay")
        return "", None

    def scheme(self, doc: Mapping[str, Any], name: str, default: str | None) -> str | None:
        if name in doc and doc[name] is None:
            return None
        value = self.text(doc, name, default or "")
        if not _TOKEN.match(value):
            self.problem(name, "must be a single word such as Bearer, or null for the raw key")
        return value

    def choice(
        self,
        doc: Mapping[str, Any],
        name: str,
        default: str,
        allowed: tuple[str, ...],
        where: str = "",
    ) -> str:
        value = self.text(doc, name, default, where)
        if value not in allowed:
            self.problem(where or name, f"unknown value (one of: {', '.join(allowed)})")
            return default
        return value

    def _typed(
        self,
        doc: Mapping[str, Any],
        name: str,
        default: Any,
        check: Callable[[Any], bool],
        kind: str,
        where: str,
    ) -> Any:
        value = self._get(doc, name, where)
        if value is None:
            return default
        if isinstance(value, str):
            value = _env_scalar(value)
        if isinstance(value, bool) or not check(value):
            self.problem(where, f"must be {kind}, got {_kind(value)}")
            return default
        return value

    def integer(
        self,
        doc: Mapping[str, Any],
        name: str,
        default: int,
        *,
        low: int,
        high: int | None = None,
        where: str = "",
    ) -> int:
        where = where or name
        value: int = self._typed(
            doc, name, default, lambda x: isinstance(x, int), "an integer", where
        )
        if value < low or (high is not None and value > high):
            bound = f"between {low} and {high}" if high is not None else f"at least {low}"
            self.problem(where, f"must be {bound}, got {value}")
            return default
        return value

    def number(
        self,
        doc: Mapping[str, Any],
        name: str,
        default: float,
        *,
        low: float = 0,
        positive: bool = False,
    ) -> float:
        raw = self._typed(
            doc, name, default, lambda x: isinstance(x, (int, float)), "a number", name
        )
        try:
            value = float(raw)
        except OverflowError:  # an integer beyond any float
            value = math.inf
        if value < low or (positive and value <= 0) or not math.isfinite(value):
            self.problem(
                name, f"must be {'greater than 0' if positive else 'at least 0'}, got {value:g}"
            )
            return default
        return value

    def url(self, doc: Mapping[str, Any], name: str) -> str:
        value = self._get(doc, name, name)
        if value is None:
            self.problem(name, "missing (the API to forward to, e.g. https://api.openai.com)")
            return ""
        if not isinstance(value, str):
            self.problem(name, "must be an http or https URL")
            return ""
        try:
            parts = urlsplit(value)
        except ValueError:  # found by nox -s fuzz: "http://[::1" (an unclosed IPv6 bracket)
            self.problem(name, "must be an http or https URL with a host")
            return ""
        if parts.scheme not in ("http", "https") or not parts.hostname:
            self.problem(name, f"must be an http or https URL with a host, got {_url_kind(parts)}")
            return ""
        if parts.query or parts.fragment or parts.username or parts.password:
            self.problem(name, "must not carry a query, fragment or credentials")
            return ""
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError:
            self.problem(name, f"has an invalid port ({parts.scheme}://{parts.hostname})")
            return ""
        return value.rstrip("/")

    def storage(self, raw: Any, base_dir: Path | None) -> StorageConfig:
        if raw is None:
            return StorageConfig()
        if not isinstance(raw, dict):
            self.problem("storage", "must be a mapping with backend and sqlite_path")
            return StorageConfig()
        self.unknown(raw, ("backend", "sqlite_path"), "storage.")
        backend = self.choice(raw, "backend", "memory", STORAGE_BACKENDS, "storage.backend")
        path = self.text(raw, "sqlite_path", StorageConfig.sqlite_path, "storage.sqlite_path")
        if base_dir is not None and not Path(path).is_absolute():
            path = str(base_dir / path)
        return StorageConfig(backend=backend, sqlite_path=path)

    def keys(self, raw: Any) -> tuple[KeyConfig, ...]:
        if raw is None:
            self.problem("keys", "missing (at least one key is needed)")
            return ()
        if not isinstance(raw, list) or not raw:
            self.problem("keys", "must be a non-empty list of {id, value} entries")
            return ()
        keys: list[KeyConfig] = []
        seen_ids: dict[str, int] = {}
        seen_values: dict[str, int] = {}
        for i, entry in enumerate(raw):
            at = f"keys[{i}]"
            if not isinstance(entry, dict):
                self.problem(at, "must be a mapping with id and value")
                continue
            self.unknown(entry, ("id", "value", "weight", "metadata"), at + ".")
            key_id = self.expand(entry.get("id"), at + ".id")
            value = self.expand(entry.get("value"), at + ".value")
            if key_id is None:
                self.problem(at + ".id", "missing")
            elif not isinstance(key_id, str) or not _KEY_ID.match(key_id):
                self.problem(at + ".id", "must be 1-64 characters of letters, digits, . _ : -")
            elif key_id in seen_ids:
                self.problem(at + ".id", f"duplicate id (also keys[{seen_ids[key_id]}])")
            else:
                seen_ids[key_id] = i
            if value is None:
                self.problem(at + ".value", "missing")
            elif not isinstance(value, str) or not value:
                if "${" not in str(entry.get("value")):
                    self.problem(at + ".value", "must be a non-empty string")
            elif any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value):
                self.problem(at + ".value", "must not contain whitespace or control characters")
            elif value in seen_values:
                self.problem(at + ".value", f"same value as keys[{seen_values[value]}]")
            else:
                seen_values[value] = i
            weight = self.integer(entry, "weight", 1, low=1, high=1000, where=at + ".weight")
            metadata = self.metadata(entry.get("metadata"), at + ".metadata")
            if isinstance(key_id, str) and isinstance(value, str):
                keys.append(KeyConfig(key_id, value, weight, metadata))
        return tuple(keys)

    def metadata(self, raw: Any, where: str) -> tuple[tuple[str, str], ...]:
        if raw is None:
            return ()
        if not isinstance(raw, dict) or not all(
            isinstance(k, str) and isinstance(v, (str, int, float, bool)) for k, v in raw.items()
        ):
            self.problem(where, "must be a mapping of names to plain values")
            return ()
        return tuple((k, str(v)) for k, v in raw.items())


def _kind(value: Any) -> str:
    """What a wrong value is, without showing it."""
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _url_kind(parts: Any) -> str:
    """A URL that is not http(s) with a host, described by its scheme and host only (a key
    pasted into its path or query stays out of the message)."""
    scheme = parts.scheme if re.fullmatch(r"[a-z][a-z0-9+.-]{0,15}", parts.scheme or "") else ""
    if not scheme:
        return "no scheme"
    return f"scheme {scheme!r}" + (f", host {parts.hostname!r}" if parts.hostname else ", no host")
