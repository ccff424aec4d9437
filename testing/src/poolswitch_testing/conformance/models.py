"""The case files' schema as declarative models (pydantic v2, frozen, unknown fields forbidden).

A model mirrors the YAML exactly (`FileDoc` > `CaseDoc` > `StepDoc` > `CallDoc` / `ExpectDoc`
...); `schema.py` turns a validated `CaseDoc` into the runner's `Case`. Every constraint is a type
here, with the message it gives (`must be an integer in [1, 200]`); the few rules across fields
(exactly one action per step, one body per call, events only on a stream, keys that belong to
the case) are wrap validators that add their problems to the fields' own, so that every problem
of a file is reported at once. `problem_lines()` names each problem by its path in the file:
`cases[2].steps[0].expect.stauts: unknown field`.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from poolswitch_testing.behaviours import BehaviourError, validate_behaviour
from poolswitch_testing.conformance.matchers import problems

__all__ = [
    "ACTIONS",
    "CALLS",
    "DEFAULT_KEYS",
    "ENDPOINTS",
    "MAX_BLOB",
    "MAX_REPLICAS",
    "MAX_WAIT",
    "PER_PROXY",
    "AttemptDoc",
    "CallDoc",
    "CaseDoc",
    "ClientDoc",
    "EndpointDoc",
    "ExpectDoc",
    "FileDoc",
    "KeyDoc",
    "PoolDoc",
    "StepDoc",
    "UpstreamDoc",
    "problem_lines",
]

CALLS = ("request", "stream", "health", "status", "metrics")
ACTIONS = (*CALLS, "wait", "restart", "kill", "script", "background")
ENDPOINTS = ("health", "status", "metrics")  # calls without side effects: `eventually` retries
PER_PROXY = (*CALLS, "restart", "kill", "background")  # the steps that may name a `replica`
MAX_REPLICAS = 3
DEFAULT_KEYS = ("alpha", "beta", "gamma")
MAX_BLOB = 64 * 1024 * 1024
MAX_WAIT = 30.0
BODY_FIELDS = ("json", "text", "body_b64", "body_blob")
EVENT_FIELDS = ("event", "data", "id")
KEY_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
POOL_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_NAME = re.compile(r"^[a-z0-9_]+$")

Loc = tuple[str | int, ...]


# ---- constrained types, each with its message ----


def _fail(message: str) -> PydanticCustomError:
    return PydanticCustomError("case", message)


def _check(test: Callable[[Any], bool], message: str) -> BeforeValidator:
    def check(value: Any) -> Any:
        if not test(value):
            raise _fail(message)
        return value

    return BeforeValidator(check)


def _integer(low: int, high: int) -> Any:
    return Annotated[
        int,
        _check(
            lambda v: type(v) is int and low <= v <= high, f"must be an integer in [{low}, {high}]"
        ),
    ]


def _number(low: float, high: float) -> Any:
    def check(value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _fail(f"must be a number in [{low:g}, {high:g}]")
        if not low <= value <= high:
            raise _fail(f"must be in [{low:g}, {high:g}], got {value:g}")
        return float(value)

    return Annotated[float, BeforeValidator(check)]


def _matchers(value: Any) -> Any:
    found = [line.partition(": ")[::2] for line in problems(value, "")]
    if found:
        raise PydanticCustomError("matchers", "{lines}", {"lines": found})
    return value


def _base64(value: Any) -> Any:
    try:
        base64.b64decode(value, validate=True)
    except (TypeError, ValueError):
        raise _fail("must be base64") from None
    return value


def _behaviour(value: Any) -> Any:
    try:
        return validate_behaviour(value)
    except BehaviourError as exc:
        raise _fail(str(exc)) from None


def _script(value: Any) -> Any:
    value = [value] if isinstance(value, Mapping) else value
    if not isinstance(value, list) or not value:
        raise _fail("must be a behaviour or a non-empty list of behaviours")
    return value


Text = Annotated[str, _check(lambda v: isinstance(v, str), "must be a string")]
Token = Annotated[
    str, _check(lambda v: isinstance(v, str) and v != "", "must be a non-empty string")
]
Expected = Annotated[Any, AfterValidator(_matchers)]
Behaviour = Annotated[dict[str, Any], BeforeValidator(_behaviour)]
Script = Annotated[tuple[Behaviour, ...], BeforeValidator(_script)]
Scripts = dict[str, Script]
KeyId = Annotated[
    str,
    _check(
        lambda v: isinstance(v, str) and bool(KEY_ID.match(v)),
        "must be a key id (1-64 of letters, digits . _ : -)",
    ),
]
PoolName = Annotated[
    str,
    _check(
        lambda v: isinstance(v, str) and bool(POOL_NAME.match(v)),
        "must be a pool name (a-z, 0-9, _ and -, at most 32)",
    ),
]
Headers = dict[str, Annotated[str, _check(lambda v: isinstance(v, str), "must be a string")]]
Settings = dict[str, Any]

_WHAT = {
    "FileDoc": "with `cases` (and an optional `description`)",
    "CaseDoc": "a case",
    "KeyDoc": "{id, weight}",
    "PoolDoc": "a pool: name, route, keys, settings",
    "StepDoc": "a step",
    "CallDoc": "the call",
    "EndpointDoc": "the call",
    "ClientDoc": "max_retries, timeout, pool, token",
    "ExpectDoc": "expectations",
    "ErrorDoc": "code, status, retry_after",
    "AttemptDoc": "an attempt",
    "UpstreamDoc": "keys, key_counts",
}


class _Doc(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _combine(
    model: str, handler: ValidatorFunctionWrapHandler, data: Any, extra: Sequence[tuple[Loc, str]]
) -> Any:
    """handler(data), with `extra` problems (loc, message) reported after the fields' own."""
    errors: list[InitErrorDetails] = []
    result = None
    try:
        result = handler(data)
    except ValidationError as exc:
        for e in exc.errors():
            errors.append(
                {
                    "type": PydanticCustomError(e["type"], e["msg"], e.get("ctx")),
                    "loc": e["loc"],
                    "input": e["input"],
                }
            )
    for loc, message in extra:
        errors.append({"type": _fail(message), "loc": loc, "input": data})
    if errors:
        raise ValidationError.from_exception_data(model, errors)
    return result


# ---- the documents ----


class KeyDoc(_Doc):
    id: KeyId
    weight: _integer(1, 1000) | None = None  # type: ignore[valid-type]

    @model_validator(mode="before")
    @classmethod
    def _bare_id(cls, data: Any) -> Any:
        return {"id": data} if not isinstance(data, Mapping) else data


class ClientDoc(_Doc):
    """Client options for the SDK under test (the request line's `client`)."""

    max_retries: _integer(0, 10) | None = None  # type: ignore[valid-type]
    timeout: _number(0.1, 120.0) | None = None  # type: ignore[valid-type]
    pool: PoolName | None = None
    token: Token | None = None


class EndpointDoc(_Doc):
    timeout: _number(0.1, 120.0) = 30.0  # type: ignore[valid-type]
    proxy: Annotated[str, _check(lambda v: v in ("live", "dead"), "must be live or dead")] = "live"
    token: Token | None = None
    client: ClientDoc | None = None


class CallDoc(EndpointDoc):
    method: Annotated[
        str,
        _check(
            lambda v: isinstance(v, str) and bool(re.match(r"^[A-Z]+$", v)),
            "must be an upper-case HTTP method",
        ),
    ] = "POST"
    path: Annotated[
        str, _check(lambda v: isinstance(v, str) and v.startswith("/"), "must start with /")
    ] = "/v1/chat/completions"
    headers: Headers = {}
    json_: Any = Field(None, alias="json")
    text: Text | None = None
    body_b64: Annotated[str, BeforeValidator(_base64)] | None = None
    body_blob: _integer(0, MAX_BLOB) | None = None  # type: ignore[valid-type]

    @model_validator(mode="wrap")
    @classmethod
    def _one_body(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        extra: list[tuple[Loc, str]] = []
        if isinstance(data, Mapping):
            bodies = [name for name in BODY_FIELDS if name in data]
            if len(bodies) > 1:
                extra.append(((), f"give one body, not {' and '.join(bodies)}"))
        return _combine(cls.__name__, handler, data, extra)

    def body(self) -> tuple[str | None, Any]:
        for name in BODY_FIELDS:
            if name in self.model_fields_set or (
                name == "json" and "json_" in self.model_fields_set
            ):
                return name, getattr(self, "json_" if name == "json" else name)
        return None, None


class ErrorDoc(_Doc):
    code: Expected = None
    status: Expected = None
    retry_after: Expected = None


def _events(value: Any) -> Any:
    """A stream's events: a list of data strings or {event, data, id} subsets (or a matcher)."""
    if not isinstance(value, list):
        return _matchers(value)
    found: list[tuple[str, str]] = []
    for i, event in enumerate(value):
        if isinstance(event, Mapping):
            found += [(f"[{i}].{k}", "unknown field") for k in event if k not in EVENT_FIELDS]
        elif not isinstance(event, str):
            found.append((f"[{i}]", "must be the data (a string) or {event, data, id}"))
        found += [line.partition(": ")[::2] for line in problems(event, f"[{i}]")]
    if found:
        raise PydanticCustomError("events", "{lines}", {"lines": found})
    return value


class AttemptDoc(_Doc):
    key_id: Expected = None
    method: Expected = None
    path: Expected = None
    query_string: Expected = None
    headers: dict[str, Expected] | None = None
    body_sha256: Expected = None
    body_length: Expected = None
    body_text: Text | None = None
    body_b64: Annotated[str, BeforeValidator(_base64)] | None = None
    body_blob: _integer(0, MAX_BLOB) | None = None  # type: ignore[valid-type]


class ExpectDoc(_Doc):
    status: Expected = None
    error: ErrorDoc | None = None
    key_id: Expected = None
    attempts: Expected = None
    headers: dict[str, Expected] = {}
    json_: Expected = Field(None, alias="json")
    text: Expected = None
    blob_size: _integer(0, MAX_BLOB) | None = None  # type: ignore[valid-type]
    events: Annotated[Any, AfterValidator(_events)] = None
    events_spread: _number(0.0, MAX_WAIT) | None = None  # type: ignore[valid-type]
    upstream_keys: Expected = None
    upstream: list[AttemptDoc] | None = None
    seconds: Expected = None


class StepDoc(_Doc):
    request: CallDoc | None = None
    stream: CallDoc | None = None
    health: EndpointDoc | None = None
    status: EndpointDoc | None = None
    metrics: EndpointDoc | None = None
    background: CallDoc | None = None
    wait: _number(0.0, MAX_WAIT) | None = None  # type: ignore[valid-type]
    restart: dict[str, Any] | None = None
    kill: dict[str, Any] | None = None
    script: Scripts | None = None
    expect: ExpectDoc | None = None
    repeat: _integer(1, 200) = 1  # type: ignore[valid-type]
    replica: _integer(0, MAX_REPLICAS - 1) = 0  # type: ignore[valid-type]
    eventually: _number(0.1, MAX_WAIT) | None = None  # type: ignore[valid-type]

    @model_validator(mode="wrap")
    @classmethod
    def _one_action(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        if not isinstance(data, Mapping):
            return handler(data)
        actions = [name for name in data if name in ACTIONS]
        if len(actions) != 1:
            return _combine(
                cls.__name__, handler, {}, [((), f"needs exactly one of: {', '.join(ACTIONS)}")]
            )
        action = actions[0]
        allowed: tuple[str, ...] = (action, "expect", "repeat") if action in CALLS else (action,)
        allowed += ("replica",) if action in PER_PROXY else ()
        allowed += ("eventually",) if action in ENDPOINTS else ()
        extra: list[tuple[Loc, str]] = [
            ((str(k),), _misplaced(str(k), action)) for k in data if k not in allowed
        ]
        doc = {k: v for k, v in data.items() if k in allowed}
        if action in CALLS and doc.get(action) is None:
            doc[action] = {}
        if action in ("restart", "kill") and doc[action] not in (None, {}):
            extra.append(((action,), f"takes no settings (write `{action}: {{}}`)"))
            doc[action] = {}
        expect = doc.get("expect")
        if action != "stream" and isinstance(expect, Mapping) and "events" in expect:
            extra.append((("expect", "events"), "only a stream step has events"))
        return _combine(cls.__name__, handler, doc, extra)

    @property
    def action(self) -> str:
        return next(name for name in ACTIONS if name in self.model_fields_set)


def _misplaced(name: str, action: str) -> str:
    if name == "replica":
        return f"a {action} step talks to no proxy (no replica)"
    if name == "eventually":
        return "only a health, status or metrics step is retried until it matches"
    return "unknown field"


class UpstreamDoc(_Doc):
    keys: Expected = None
    key_counts: dict[str, Expected] = {}


class PoolDoc(_Doc):
    """A pool of the proxy: its keys (ids; the runner makes the values) and its settings."""

    name: PoolName
    route: str | None = None
    keys: Annotated[
        list[KeyDoc], _check(lambda v: isinstance(v, list) and bool(v), "must be a non-empty list")
    ]
    settings: Settings = {}


def _non_empty(value: Any) -> Any:
    if not isinstance(value, list) or not value:
        raise _fail("must be a non-empty list")
    return value


TAGS = {
    "proxy": "needs the proxy itself (its endpoints, restarts, callers, pools, storage, limits, "
    "the bytes it relays): not run with the embedded clients",
}
"""The tags a case (or a whole file) may carry, and what each means."""
Tags = Annotated[
    list[str],
    _check(
        lambda v: isinstance(v, list) and all(t in TAGS for t in v),
        f"must be a list of tags ({', '.join(TAGS)})",
    ),
]


class CaseDoc(_Doc):
    name: Annotated[
        str,
        _check(
            lambda v: isinstance(v, str) and bool(_NAME.match(v)),
            "must be a name of a-z, 0-9 and _",
        ),
    ]
    description: Text = ""
    keys: Annotated[
        list[KeyDoc],
        _check(
            lambda v: isinstance(v, list) and bool(v),
            "must be a non-empty list of key ids or {id, weight}",
        ),
    ] = Field(default_factory=lambda: [KeyDoc(id=k) for k in DEFAULT_KEYS])
    pools: Annotated[list[PoolDoc], BeforeValidator(_non_empty)] | None = None
    sdk_only: Annotated[bool, _check(lambda v: type(v) is bool, "must be true or false")] = False
    tags: Tags = Field(default_factory=list)
    replicas: _integer(1, MAX_REPLICAS) = 1  # type: ignore[valid-type]
    config: Settings = {}
    client: ClientDoc | None = None
    upstream: Scripts = {}
    steps: Annotated[list[StepDoc], BeforeValidator(_non_empty)]
    expect_upstream: UpstreamDoc = UpstreamDoc()

    @model_validator(mode="wrap")
    @classmethod
    def _case_keys(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        if not isinstance(data, Mapping):
            return handler(data)
        extra = _key_problems(data) + _replica_problems(data)
        return _combine(cls.__name__, handler, data, extra)


def _raw_id(item: Any) -> Any:
    return item.get("id") if isinstance(item, Mapping) else item


def _key_problems(data: Mapping[str, Any]) -> list[tuple[Loc, str]]:
    """Key ids: unique, and every key a script or a count names belongs to the case. A case
    with `pools` names its keys `<pool>:<id>` (a key id may repeat across pools)."""
    found: list[tuple[Loc, str]] = []
    pools = data.get("pools")
    ids: list[str] = []
    if isinstance(pools, list):
        if "keys" in data:
            found.append((("keys",), "give the keys inside each pool when the case has pools"))
        names: set[Any] = set()
        for p, pool in enumerate(pools):
            if not isinstance(pool, Mapping):
                continue
            if pool.get("name") in names:
                found.append((("pools", p, "name"), f"duplicate pool name {pool.get('name')!r}"))
            names.add(pool.get("name"))
            keys = pool.get("keys")
            for i, item in enumerate(keys if isinstance(keys, list) else []):
                key_id = f"{pool.get('name')}:{_raw_id(item)}"
                if key_id in ids:
                    found.append((("pools", p, "keys", i), f"duplicate key id {_raw_id(item)!r}"))
                ids.append(key_id)
    else:
        keys = data.get("keys", list(DEFAULT_KEYS))
        for i, item in enumerate(keys if isinstance(keys, list) else []):
            if str(_raw_id(item)) in ids:
                found.append((("keys", i), f"duplicate key id {_raw_id(item)!r}"))
            ids.append(str(_raw_id(item)))
    known = ", ".join(sorted(set(ids)))

    def names_keys(value: Any, loc: Loc) -> None:
        for key_id in value if isinstance(value, Mapping) else {}:
            if key_id not in ids:
                found.append(((*loc, str(key_id)), f"not a key of this case ({known})"))

    names_keys(data.get("upstream"), ("upstream",))
    steps = data.get("steps")
    for s, step in enumerate(steps if isinstance(steps, list) else []):
        if isinstance(step, Mapping) and len([a for a in step if a in ACTIONS]) == 1:
            names_keys(step.get("script"), ("steps", s, "script"))
    expect_upstream = data.get("expect_upstream")
    if isinstance(expect_upstream, Mapping):
        names_keys(expect_upstream.get("key_counts"), ("expect_upstream", "key_counts"))
    return found


def _replica_problems(data: Mapping[str, Any]) -> list[tuple[Loc, str]]:
    """Replicas share key state through Redis (a case with `replicas: 2` needs the redis
    backend), and a step names one of the case's replicas."""
    found: list[tuple[Loc, str]] = []
    replicas = data.get("replicas", 1)
    if type(replicas) is not int or not 1 <= replicas <= MAX_REPLICAS:
        return found  # the field's own check reports it
    config = data.get("config")
    storage = config.get("storage") if isinstance(config, Mapping) else None
    backend = storage.get("backend") if isinstance(storage, Mapping) else None
    if replicas > 1 and backend != "redis":
        found.append((("replicas",), "needs config.storage.backend: redis (replicas share it)"))
    steps = data.get("steps")
    for s, step in enumerate(steps if isinstance(steps, list) else []):
        replica = step.get("replica") if isinstance(step, Mapping) else None
        if type(replica) is int and 0 <= replica < MAX_REPLICAS and replica >= replicas:
            found.append(
                (("steps", s, "replica"), f"no replica {replica}: the case has {replicas}, from 0")
            )
    return found


class FileDoc(_Doc):
    description: Text = ""
    tags: Tags = Field(default_factory=list)  # every case of the file has them
    cases: Annotated[list[Any], BeforeValidator(_non_empty)]


# ---- messages ----


def _where(loc: Loc) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


_MESSAGES = {
    "extra_forbidden": "unknown field",
    "missing": "missing",
    "dict_type": "must be a mapping",
    "list_type": "must be a list",
    "string_type": "must be a string",
    "tuple_type": "must be a list",
}


def problem_lines(exc: ValidationError, prefix: Loc = ()) -> list[tuple[str, str]]:
    """(path, message) per problem, the path as in the file: `cases[0].steps[1].wait`."""
    found: list[tuple[str, str]] = []
    for e in exc.errors():
        where = _where((*prefix, *e["loc"]))
        ctx = e.get("ctx") or {}
        if "lines" in ctx:
            found.extend((where + suffix, message) for suffix, message in ctx["lines"])
        elif e["type"] in ("model_type", "model_attributes_type"):
            what = _WHAT.get(str(ctx.get("class_name")), "")
            found.append((where, f"must be a mapping ({what})" if what else "must be a mapping"))
        elif e["type"] == "missing" and e["loc"] and e["loc"][-1] in ("steps", "cases", "keys"):
            found.append((where, "must be a non-empty list"))
        else:
            found.append((where, _MESSAGES.get(e["type"], e["msg"])))
    return found
