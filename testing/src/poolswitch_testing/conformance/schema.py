"""Load `cases/*.yaml` strictly, with the declarative models of `models.py`, into the runner's
frozen `Case`s: an unknown field, a duplicate YAML key, a bad behaviour, matcher or proxy setting
is an error whose message names the file and the path in it (`failover.yaml:
cases[2].steps[0].expect.stauts: unknown field`). conformance/README.md describes the format; in
short:

    cases:
      - name: rate_limit_moves_to_next_key        # [a-z0-9_]+, unique in the file
        description: ...                          # optional
        keys: [alpha, beta]                       # default alpha, beta, gamma; or {id, weight}
        pools: [{name: a, keys: [alpha]}]         # or: several pools (keys then named a:alpha)
        config: {strategy: quota_failover}        # proxy settings over the runner's base
        client: {max_retries: 2}                  # the SDK's options for every call
        upstream: {alpha: [{kind: rate_limit}]}   # the fake upstream's script per key
        steps:                                    # request | stream | health | status |
          - request: {method: POST, path: /v1/x}  # metrics (+ expect, repeat) | wait | restart
            expect: {status: 200, key_id: beta}   # | kill | script
            replica: 1                            # with `replicas: 2` (storage: redis)
        expect_upstream: {keys: [alpha, beta]}    # every attempt the upstream saw, in order

`{{key:ID}}` in a behaviour or an expectation stands for the value of key ID, `{{dead_url}}`
for a URL where nothing listens and `{{upstream}}` for the fake upstream's URL; `substitute()`
fills them in when the case runs.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from poolswitch_testing.behaviours import blob_bytes
from poolswitch_testing.conformance.matchers import MISSING
from poolswitch_testing.conformance.models import (
    ACTIONS,
    CALLS,
    DEFAULT_KEYS,
    KEY_ID,
    AttemptDoc,
    CallDoc,
    CaseDoc,
    EndpointDoc,
    ExpectDoc,
    FileDoc,
    StepDoc,
    problem_lines,
)
from poolswitch_testing.conformance.settings import SettingsError, check_settings

__all__ = [
    "ACTIONS",
    "CALLS",
    "DEFAULT_KEYS",
    "Call",
    "Case",
    "CaseError",
    "Expect",
    "KeySpec",
    "PoolSpec",
    "Step",
    "UpstreamExpect",
    "load_cases",
    "parse_file",
    "placeholders",
    "substitute",
]

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}
PLACEHOLDERS = ("dead_url", "upstream")
_PLACEHOLDER = re.compile(r"\{\{([^{}]*)\}\}")


class CaseError(ValueError):
    """Cases that cannot be loaded; `problems` has one line per problem."""

    def __init__(self, found: Sequence[str]) -> None:
        self.problems = tuple(found)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class KeySpec:
    id: str  # the fake upstream's id: `alpha`, or `<pool>:alpha` in a case with pools
    weight: int | None = None

    @property
    def proxy_id(self) -> str:
        """The id the proxy knows the key by (`alpha`)."""
        return self.id.partition(":")[2] if ":" in self.id else self.id


@dataclass(frozen=True)
class PoolSpec:
    """A pool of a case with `pools`: its keys are `<name>:<id>` in Case.keys."""

    name: str
    route: str | None
    keys: tuple[KeySpec, ...]
    settings: Mapping[str, Any]


@dataclass(frozen=True)
class Call:
    """What the client is asked to do (one JSON line; see conformance/README.md)."""

    call: str  # request | stream | health | status | metrics
    method: str = "GET"
    path: str = "/"
    headers: tuple[tuple[str, str], ...] = ()
    body_kind: str | None = None  # json | text | body_b64 | body_blob
    body: Any = None
    timeout: float = 30.0
    dead_proxy: bool = False  # send it to a port where nothing listens
    token: str | None = None  # the caller token the SDK is given (token= / token: / WithToken)
    client: Mapping[str, Any] = field(default_factory=dict)  # max_retries, timeout, pool, token


@dataclass(frozen=True)
class Expect:
    """What one call's result must show. MISSING = not checked; `error` None = no error."""

    status: Any = MISSING
    error: Any = None
    key_id: Any = MISSING
    attempts: Any = MISSING
    headers: Mapping[str, Any] = field(default_factory=dict)
    json: Any = MISSING
    text: Any = MISSING
    blob_size: int | None = None
    events: Any = MISSING
    events_spread: float | None = None
    upstream_keys: Any = MISSING
    upstream: Any = MISSING
    seconds: Any = MISSING  # how long the call took (the runner's clock), e.g. {$range: [0, 1]}


@dataclass(frozen=True)
class Step:
    action: str
    where: str  # "failover.yaml: cases[0].steps[1]", for messages
    call: Call | None = None
    expect: Expect = field(default_factory=Expect)
    repeat: int = 1
    seconds: float = 0.0
    scripts: Mapping[str, tuple[Mapping[str, Any], ...]] = field(default_factory=dict)
    replica: int = 0  # which of the case's proxies the step talks to (restarts, kills)
    eventually: float | None = None  # an endpoint call: retried until it matches, this long

    def label(self) -> str:
        on = f", replica {self.replica}" if self.replica else ""
        if self.call is None:
            return (self.action if self.action != "wait" else f"wait {self.seconds:g}s") + on
        if self.action in ("request", "stream", "background"):
            return f"{self.action} {self.call.method} {self.call.path}{on}"
        return self.action + on


@dataclass(frozen=True)
class UpstreamExpect:
    keys: Any = MISSING
    key_counts: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Case:
    file: str  # the file's stem: "failover"
    name: str
    description: str
    keys: tuple[KeySpec, ...]
    config: Mapping[str, Any]
    upstream: Mapping[str, tuple[Mapping[str, Any], ...]]
    steps: tuple[Step, ...]
    expect_upstream: UpstreamExpect
    pools: tuple[PoolSpec, ...] = ()  # empty: the single-pool form (keys at the top level)
    sdk_only: bool = False  # about an SDK's own behaviour (retries): not run with the raw client
    tags: frozenset[str] = frozenset()  # models.TAGS, the file's and the case's own
    replicas: int = 1  # proxies sharing one Redis namespace (replicas > 1 needs backend redis)

    @property
    def id(self) -> str:
        return f"{self.file}/{self.name}"

    @property
    def uses_redis(self) -> bool:
        storage = self.config.get("storage")
        return isinstance(storage, Mapping) and storage.get("backend") == "redis"


# ---- placeholders ----


def placeholders(value: Any) -> set[str]:
    """The `{{name}}` placeholders used anywhere in a JSON-like value."""
    found: set[str] = set()
    if isinstance(value, str):
        found.update(m.group(1) for m in _PLACEHOLDER.finditer(value))
    elif isinstance(value, Mapping):
        for item in value.values():
            found |= placeholders(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            found |= placeholders(item)
    return found


def substitute(value: Any, table: Mapping[str, str]) -> Any:
    """`value` with every `{{name}}` replaced by table[name] (unknown names are left alone)."""
    if isinstance(value, str):
        return _PLACEHOLDER.sub(lambda m: table.get(m.group(1), m.group(0)), value)
    if isinstance(value, Mapping):
        return {k: substitute(v, table) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [substitute(v, table) for v in value]
    return value


# ---- YAML ----


class _StrictLoader(yaml.SafeLoader):
    """safe_load, except that a key repeated in one mapping is an error."""


def _mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def load_cases(directory: Path) -> list[Case]:
    """Every case of every `*.yaml` file in `directory`, in file then case order."""
    files = sorted(directory.glob("*.yaml"))
    if not files:
        raise CaseError([f"{directory}: no *.yaml case files"])
    cases: list[Case] = []
    found: list[str] = []
    for path in files:
        try:
            cases.extend(parse_file(path.name, path.read_text(encoding="utf-8")))
        except CaseError as exc:
            found.extend(exc.problems)
    if found:
        raise CaseError(found)
    return cases


def parse_file(filename: str, text: str) -> list[Case]:
    """The cases of one file (`filename` names it in messages; its stem prefixes case ids)."""
    try:
        doc = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        detail = getattr(exc, "problem", None) or str(exc)
        raise CaseError([f"{filename}: invalid YAML{line}: {detail}"]) from None
    found: list[str] = []

    def add(lines: Sequence[tuple[str, str]]) -> None:
        found.extend(f"{filename}: {where or '(top level)'}: {message}" for where, message in lines)

    if not isinstance(doc, Mapping):
        add([("", "must be a mapping with `cases` (and an optional `description`)")])
        raise CaseError(found)
    file_tags: frozenset[str] = frozenset()
    try:
        file_tags = frozenset(FileDoc.model_validate(doc).tags)
    except ValidationError as exc:
        add(problem_lines(exc))
    raw_cases = doc.get("cases")
    if not isinstance(raw_cases, list):
        raise CaseError(found)
    stem = Path(filename).stem
    cases: list[Case] = []
    names: set[str] = set()
    for i, raw in enumerate(raw_cases):
        at = ("cases", i)
        problems: list[tuple[str, str]] = []
        case_doc: CaseDoc | None = None
        try:
            case_doc = CaseDoc.model_validate(raw)
        except ValidationError as exc:
            problems += problem_lines(exc, at)
        if isinstance(raw, Mapping):
            problems += _settings_problems(raw, f"cases[{i}]")
            problems += _placeholder_problems(raw, f"cases[{i}]")
        add(problems)
        if case_doc is None or problems:
            continue
        if case_doc.name in names:
            add([(f"cases[{i}].name", f"duplicate case name {case_doc.name!r}")])
        names.add(case_doc.name)
        cases.append(_case(case_doc, stem, f"{filename}: cases[{i}]", file_tags))
    if found:
        raise CaseError(found)
    return cases


# ---- from the models to the runner's types ----


def _raw_keys(raw: Any) -> list[tuple[str, int | None]]:
    """The valid, distinct (id, weight) of a raw key list (the model reports the others)."""
    keys: list[tuple[str, int | None]] = []
    for item in raw if isinstance(raw, list) else []:
        key_id = item.get("id") if isinstance(item, Mapping) else item
        weight = item.get("weight") if isinstance(item, Mapping) else None
        if isinstance(key_id, str) and KEY_ID.match(key_id) and key_id not in dict(keys):
            keys.append((key_id, weight if type(weight) is int and weight >= 1 else None))
    return keys


def _settings_problems(raw: Mapping[str, Any], where: str) -> list[tuple[str, str]]:
    """The case's proxy settings, checked by the server's own validator."""
    config = raw.get("config", {})
    if not isinstance(config, Mapping):
        return []  # the model reports it
    pools: list[dict[str, Any]] | None = None
    if isinstance(raw.get("pools"), list):
        pools = [
            {
                "name": p.get("name"),
                "route": p.get("route"),
                "keys": _raw_keys(p.get("keys")),
                "settings": p.get("settings") if isinstance(p.get("settings"), Mapping) else {},
            }
            for p in raw["pools"]
            if isinstance(p, Mapping)
        ]
    try:
        check_settings(config, _raw_keys(raw.get("keys", list(DEFAULT_KEYS))), pools)
    except SettingsError as exc:
        found: list[tuple[str, str]] = []
        for line in exc.problems:
            name, _, message = line.partition(": ")
            found.append(
                (f"{where}.config.{name}", message) if message else (f"{where}.config", line)
            )
        return found
    return []


def _placeholder_problems(raw: Mapping[str, Any], where: str) -> list[tuple[str, str]]:
    ids = {key_id for key_id, _ in _raw_keys(raw.get("keys", list(DEFAULT_KEYS)))}
    for pool in raw.get("pools") or []:
        if isinstance(pool, Mapping):
            ids |= {f"{pool.get('name')}:{key_id}" for key_id, _ in _raw_keys(pool.get("keys"))}
    allowed = set(PLACEHOLDERS) | {f"key:{i}" for i in ids}
    return [
        (where, f"unknown placeholder {{{{{name}}}}} (key:ID, upstream or dead_url)")
        for name in sorted(placeholders(dict(raw)) - allowed)
    ]


def _case(doc: CaseDoc, stem: str, where: str, tags: frozenset[str]) -> Case:
    pools = tuple(
        PoolSpec(
            pool.name,
            pool.route,
            tuple(KeySpec(f"{pool.name}:{k.id}", k.weight) for k in pool.keys),
            dict(pool.settings),
        )
        for pool in doc.pools or ()
    )
    keys = (
        tuple(k for pool in pools for k in pool.keys)
        if pools
        else tuple(KeySpec(k.id, k.weight) for k in doc.keys)
    )
    defaults = doc.client.model_dump(exclude_none=True) if doc.client else {}
    steps = tuple(_step(step, f"{where}.steps[{i}]", defaults) for i, step in enumerate(doc.steps))
    expect_upstream = doc.expect_upstream
    return Case(
        file=stem,
        name=doc.name,
        description=doc.description,
        keys=keys,
        config=dict(doc.config),
        upstream=dict(doc.upstream),
        steps=steps,
        expect_upstream=UpstreamExpect(
            keys=expect_upstream.keys if "keys" in expect_upstream.model_fields_set else MISSING,
            key_counts=dict(expect_upstream.key_counts),
        ),
        pools=pools,
        sdk_only=doc.sdk_only,
        tags=tags | frozenset(doc.tags),
        replicas=doc.replicas,
    )


def _step(doc: StepDoc, where: str, client: Mapping[str, Any]) -> Step:
    action = doc.action
    if action == "wait":
        return Step("wait", where, seconds=float(doc.wait or 0.0))
    if action in ("restart", "kill"):
        return Step(action, where, replica=doc.replica)
    if action == "script":
        return Step("script", where, scripts=dict(doc.script or {}))
    call_doc = getattr(doc, action)
    call = _call(action, call_doc, client)
    expect = _expect(doc.expect) if doc.expect is not None else Expect()
    return Step(
        action,
        where,
        call=call,
        expect=expect,
        repeat=doc.repeat,
        replica=doc.replica,
        eventually=doc.eventually,
    )


def _call(action: str, doc: EndpointDoc, defaults: Mapping[str, Any]) -> Call:
    client = {**defaults, **(doc.client.model_dump(exclude_none=True) if doc.client else {})}
    common: dict[str, Any] = {
        "timeout": doc.timeout,
        "dead_proxy": doc.proxy == "dead",
        "token": doc.token,
        "client": client,
    }
    if not isinstance(doc, CallDoc):
        return Call(action, "GET", f"/{action}", **common)
    body_kind, body = doc.body()
    if body_kind is None and doc.method in ("POST", "PUT", "PATCH"):
        body = dict(CHAT, stream=True) if action == "stream" else dict(CHAT)
        body_kind = "json"
    headers = tuple((str(k), str(v)) for k, v in doc.headers.items())
    return Call(action, doc.method, doc.path, headers, body_kind, body, **common)


def _given(doc: Any, name: str, attribute: str | None = None) -> Any:
    return getattr(doc, attribute or name) if name in _set(doc) else MISSING


def _set(doc: Any) -> set[str]:
    """The fields a document gave, by their YAML names."""
    return {"json" if name == "json_" else name for name in doc.model_fields_set}


def _expect(doc: ExpectDoc) -> Expect:
    error = doc.error.model_dump(include=doc.error.model_fields_set) if doc.error else None
    return Expect(
        status=_given(doc, "status"),
        error=error,
        key_id=_given(doc, "key_id"),
        attempts=_given(doc, "attempts"),
        headers={str(k).lower(): v for k, v in doc.headers.items()},
        json=_given(doc, "json", "json_"),
        text=_given(doc, "text"),
        blob_size=doc.blob_size,
        events=_given(doc, "events"),
        events_spread=doc.events_spread,
        upstream_keys=_given(doc, "upstream_keys"),
        upstream=[_attempt(a) for a in doc.upstream] if doc.upstream is not None else MISSING,
        seconds=_given(doc, "seconds"),
    )


def _attempt(doc: AttemptDoc) -> dict[str, Any]:
    """An attempt's expectation; body_text / body_b64 / body_blob become its hash and length."""
    given = _set(doc)
    attempt = {k: getattr(doc, k) for k in given if not k.startswith("body_")}
    if "headers" in attempt:
        attempt["headers"] = {str(k).lower(): v for k, v in (doc.headers or {}).items()}
    for name in ("body_sha256", "body_length"):
        if name in given:
            attempt[name] = getattr(doc, name)
    content: bytes | None = None
    if doc.body_text is not None:
        content = doc.body_text.encode("utf-8")
    elif doc.body_b64 is not None:
        content = base64.b64decode(doc.body_b64, validate=True)
    elif doc.body_blob is not None:
        content = blob_bytes(doc.body_blob)
    if content is not None:
        attempt["body_sha256"] = hashlib.sha256(content).hexdigest()
        attempt["body_length"] = len(content)
    return attempt
