"""Load `cases/*.yaml` into frozen dataclasses, strictly: an unknown field, a duplicate YAML key,
a bad behaviour, matcher or proxy setting is an error whose message names the file and the path
in it (`failover.yaml: cases[2].steps[0].expect.stauts: unknown field`). conformance/README.md
describes the format; in short:

    cases:
      - name: rate_limit_moves_to_next_key        # [a-z0-9_]+, unique in the file
        description: ...                          # optional
        keys: [alpha, beta]                       # default alpha, beta, gamma; or {id, weight}
        config: {strategy: quota_failover}        # proxy settings over the runner's base
        upstream: {alpha: [{kind: rate_limit}]}   # the fake upstream's script per key
        steps:                                    # request | stream | health | status |
          - request: {method: POST, path: /v1/x}  # metrics (+ expect, repeat) | wait | restart
            expect: {status: 200, key_id: beta}   # | script
        expect_upstream: {keys: [alpha, beta]}    # every attempt the upstream saw, in order

`{{key:ID}}` in a behaviour or an expectation stands for the value of key ID, and `{{dead_url}}`
for a URL where nothing listens; `substitute()` fills them in when the case runs.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from runner.matchers import MISSING, problems
from runner.settings import SettingsError, check_settings

from fake_upstream import BehaviourError, blob_bytes, validate_behaviour

__all__ = [
    "CALLS",
    "DEFAULT_KEYS",
    "Call",
    "Case",
    "CaseError",
    "Expect",
    "KeySpec",
    "Step",
    "UpstreamExpect",
    "load_cases",
    "parse_file",
    "placeholders",
    "substitute",
]

CALLS = ("request", "stream", "health", "status", "metrics")
ACTIONS = (*CALLS, "wait", "restart", "script")
DEFAULT_KEYS = ("alpha", "beta", "gamma")
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}
BODY_FIELDS = ("json", "text", "body_b64", "body_blob")
MAX_BLOB = 64 * 1024 * 1024
MAX_WAIT = 30.0
_NAME = re.compile(r"^[a-z0-9_]+$")
_KEY_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_PLACEHOLDER = re.compile(r"\{\{([^{}]*)\}\}")


class CaseError(ValueError):
    """Cases that cannot be loaded; `problems` has one line per problem."""

    def __init__(self, found: Sequence[str]) -> None:
        self.problems = tuple(found)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class KeySpec:
    id: str
    weight: int | None = None


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


@dataclass(frozen=True)
class Step:
    action: str
    where: str  # "failover.yaml: cases[0].steps[1]", for messages
    call: Call | None = None
    expect: Expect = field(default_factory=Expect)
    repeat: int = 1
    seconds: float = 0.0
    scripts: Mapping[str, tuple[Mapping[str, Any], ...]] = field(default_factory=dict)

    def label(self) -> str:
        if self.call is None:
            return self.action if self.action != "wait" else f"wait {self.seconds:g}s"
        if self.action in ("request", "stream"):
            return f"{self.action} {self.call.method} {self.call.path}"
        return self.action


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

    @property
    def id(self) -> str:
        return f"{self.file}/{self.name}"


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
    v = _Checker(filename)
    stem = Path(filename).stem
    cases: list[Case] = []
    if not isinstance(doc, Mapping):
        v.problem("", "must be a mapping with `cases` (and an optional `description`)")
        raise CaseError(v.found)
    v.unknown(doc, ("description", "cases"), "")
    raw_cases = doc.get("cases")
    if not isinstance(raw_cases, list) or not raw_cases:
        v.problem("cases", "must be a non-empty list")
        raise CaseError(v.found)
    names: set[str] = set()
    for i, raw in enumerate(raw_cases):
        case = v.case(raw, f"cases[{i}]", stem)
        if case is None:
            continue
        if case.name in names:
            v.problem(f"cases[{i}].name", f"duplicate case name {case.name!r}")
        names.add(case.name)
        cases.append(case)
    if v.found:
        raise CaseError(v.found)
    return cases


# ---- checking ----

_CASE_FIELDS = ("name", "description", "keys", "config", "upstream", "steps", "expect_upstream")
_CALL_FIELDS = ("method", "path", "headers", *BODY_FIELDS, "timeout", "proxy", "token")
_ENDPOINT_FIELDS = ("timeout", "proxy", "token")
_EXPECT_FIELDS = (
    "status",
    "error",
    "key_id",
    "attempts",
    "headers",
    "json",
    "text",
    "blob_size",
    "events",
    "events_spread",
    "upstream_keys",
    "upstream",
)
_ERROR_FIELDS = ("code", "status", "retry_after")
_EVENT_FIELDS = ("event", "data", "id")
_ATTEMPT_FIELDS = (
    "key_id",
    "method",
    "path",
    "query_string",
    "headers",
    "body_sha256",
    "body_length",
    "body_text",
    "body_b64",
    "body_blob",
)


class _Checker:
    """Collects problems, each prefixed with the file and the path in it."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.found: list[str] = []

    def problem(self, where: str, message: str) -> None:
        self.found.append(f"{self.filename}: {where or '(top level)'}: {message}")

    def unknown(self, doc: Mapping[Any, Any], allowed: Sequence[str], where: str) -> None:
        for name in doc:
            if name not in allowed:
                self.problem(f"{where}.{name}" if where else str(name), "unknown field")

    def mapping(self, value: object, where: str, what: str) -> Mapping[str, Any] | None:
        if isinstance(value, Mapping):
            return value
        self.problem(where, f"must be a mapping ({what})")
        return None

    def matchers(self, value: object, where: str) -> None:
        for line in problems(value, where):
            path, _, message = line.partition(": ")
            self.problem(path, message)

    def number(self, value: object, where: str, low: float, high: float) -> float | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.problem(where, f"must be a number in [{low:g}, {high:g}]")
            return None
        if not low <= value <= high:
            self.problem(where, f"must be in [{low:g}, {high:g}], got {value:g}")
            return None
        return float(value)

    def integer(self, value: object, where: str, low: int, high: int) -> int | None:
        if type(value) is not int or not low <= value <= high:
            self.problem(where, f"must be an integer in [{low}, {high}]")
            return None
        return value

    # -- a case --

    def case(self, raw: object, where: str, stem: str) -> Case | None:
        doc = self.mapping(raw, where, "a case")
        if doc is None:
            return None
        self.unknown(doc, _CASE_FIELDS, where)
        name = doc.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            self.problem(f"{where}.name", "must be a name of a-z, 0-9 and _")
            name = "?"
        description = doc.get("description", "")
        if not isinstance(description, str):
            self.problem(f"{where}.description", "must be a string")
            description = ""
        keys = self.keys(doc.get("keys", list(DEFAULT_KEYS)), f"{where}.keys")
        ids = {k.id for k in keys}
        config = self.mapping(doc.get("config", {}), f"{where}.config", "proxy settings") or {}
        self.config(config, keys, f"{where}.config")
        upstream = self.scripts(doc.get("upstream", {}), ids, f"{where}.upstream")
        steps_raw = doc.get("steps")
        steps: list[Step] = []
        if not isinstance(steps_raw, list) or not steps_raw:
            self.problem(f"{where}.steps", "must be a non-empty list")
        else:
            for i, step_raw in enumerate(steps_raw):
                step = self.step(step_raw, f"{where}.steps[{i}]", ids)
                if step is not None:
                    steps.append(step)
        expect_upstream = self.expect_upstream(
            doc.get("expect_upstream", {}), f"{where}.expect_upstream", ids
        )
        self.placeholders(doc, ids, where)
        return Case(
            file=stem,
            name=name,
            description=description,
            keys=keys,
            config=config,
            upstream=upstream,
            steps=tuple(steps),
            expect_upstream=expect_upstream,
        )

    def placeholders(self, doc: Mapping[str, Any], ids: set[str], where: str) -> None:
        allowed = {"dead_url"} | {f"key:{i}" for i in ids}
        for name in sorted(placeholders(dict(doc)) - allowed):
            self.problem(where, f"unknown placeholder {{{{{name}}}}} (key:ID or dead_url)")

    def keys(self, raw: object, where: str) -> tuple[KeySpec, ...]:
        if not isinstance(raw, list) or not raw:
            self.problem(where, "must be a non-empty list of key ids or {id, weight}")
            return tuple(KeySpec(k) for k in DEFAULT_KEYS)
        specs: list[KeySpec] = []
        for i, item in enumerate(raw):
            at = f"{where}[{i}]"
            if isinstance(item, Mapping):
                self.unknown(item, ("id", "weight"), at)
                key_id, weight = item.get("id"), item.get("weight")
                if weight is not None:
                    weight = self.integer(weight, f"{at}.weight", 1, 1000)
            else:
                key_id, weight = item, None
            if not isinstance(key_id, str) or not _KEY_ID.match(key_id):
                self.problem(at, "must be a key id (1-64 of letters, digits . _ : -)")
                continue
            if any(s.id == key_id for s in specs):
                self.problem(at, f"duplicate key id {key_id!r}")
            specs.append(KeySpec(key_id, weight))
        return tuple(specs)

    def config(self, config: Mapping[str, Any], keys: Sequence[KeySpec], where: str) -> None:
        try:
            check_settings(config, [(k.id, k.weight) for k in keys])
        except SettingsError as exc:
            for line in exc.problems:
                name, _, message = line.partition(": ")
                self.problem(f"{where}.{name}" if message else where, message or line)

    def scripts(
        self, raw: object, ids: set[str], where: str
    ) -> dict[str, tuple[Mapping[str, Any], ...]]:
        doc = self.mapping(raw, where, "key id -> list of behaviours")
        scripts: dict[str, tuple[Mapping[str, Any], ...]] = {}
        for key_id, behaviours in (doc or {}).items():
            at = f"{where}.{key_id}"
            if key_id not in ids:
                self.problem(at, f"not a key of this case ({', '.join(sorted(ids))})")
                continue
            if isinstance(behaviours, Mapping):
                behaviours = [behaviours]
            if not isinstance(behaviours, list) or not behaviours:
                self.problem(at, "must be a behaviour or a non-empty list of behaviours")
                continue
            checked: list[Mapping[str, Any]] = []
            for i, behaviour in enumerate(behaviours):
                try:
                    checked.append(validate_behaviour(behaviour))
                except BehaviourError as exc:
                    self.problem(f"{at}[{i}]", str(exc))
            scripts[str(key_id)] = tuple(checked)
        return scripts

    # -- a step --

    def step(self, raw: object, where: str, ids: set[str]) -> Step | None:
        doc = self.mapping(raw, where, "a step")
        if doc is None:
            return None
        actions = [name for name in doc if name in ACTIONS]
        if len(actions) != 1:
            self.problem(where, f"needs exactly one of: {', '.join(ACTIONS)}")
            return None
        action = actions[0]
        extra: tuple[str, ...] = ("expect", "repeat") if action in CALLS else ()
        self.unknown(doc, (action, *extra), where)
        value, at = doc[action], f"{where}.{action}"
        if action == "wait":
            seconds = self.number(value, at, 0.0, MAX_WAIT)
            return Step("wait", where, seconds=seconds or 0.0)
        if action == "restart":
            if value not in (None, {}):
                self.problem(at, "takes no settings (write `restart: {}`)")
            return Step("restart", where)
        if action == "script":
            return Step("script", where, scripts=self.scripts(value, ids, at))
        call = self.call(action, value, at)
        expect = self.expect(doc.get("expect", {}), f"{where}.expect", ids, action)
        repeat = self.integer(doc.get("repeat", 1), f"{where}.repeat", 1, 200) or 1
        return Step(action, where, call=call, expect=expect, repeat=repeat)

    def call(self, action: str, raw: object, where: str) -> Call:
        doc = {} if raw is None else self.mapping(raw, where, "the call") or {}
        endpoint = action not in ("request", "stream")
        self.unknown(doc, _ENDPOINT_FIELDS if endpoint else _CALL_FIELDS, where)
        timeout = self.number(doc.get("timeout", 30.0), f"{where}.timeout", 0.1, 120.0) or 30.0
        proxy = doc.get("proxy", "live")
        if proxy not in ("live", "dead"):
            self.problem(f"{where}.proxy", "must be live or dead")
        token = doc.get("token")
        if token is not None and (not isinstance(token, str) or not token):
            self.problem(f"{where}.token", "must be a non-empty string")
            token = None
        if endpoint:
            return Call(
                action,
                "GET",
                f"/{action}",
                timeout=timeout,
                dead_proxy=proxy == "dead",
                token=token,
            )
        method = doc.get("method", "POST")
        if not isinstance(method, str) or not re.match(r"^[A-Z]+$", method):
            self.problem(f"{where}.method", "must be an upper-case HTTP method")
            method = "POST"
        path = doc.get("path", "/v1/chat/completions")
        if not isinstance(path, str) or not path.startswith("/"):
            self.problem(f"{where}.path", "must start with /")
            path = "/"
        headers = self.mapping(doc.get("headers", {}), f"{where}.headers", "name -> value") or {}
        for name, value in headers.items():
            if not isinstance(name, str) or not isinstance(value, str):
                self.problem(f"{where}.headers.{name}", "names and values must be strings")
        bodies = [name for name in BODY_FIELDS if name in doc]
        body_kind, body = self.body(doc, bodies, where)
        if body_kind is None and method in ("POST", "PUT", "PATCH"):
            body = dict(CHAT, stream=True) if action == "stream" else dict(CHAT)
            body_kind = "json"
        return Call(
            action,
            method,
            path,
            tuple((str(k), str(v)) for k, v in headers.items()),
            body_kind,
            body,
            timeout,
            proxy == "dead",
            token,
        )

    def body(self, doc: Mapping[str, Any], bodies: list[str], where: str) -> tuple[str | None, Any]:
        if len(bodies) > 1:
            self.problem(where, f"give one body, not {' and '.join(bodies)}")
        if not bodies:
            return None, None
        kind = bodies[0]
        value = doc[kind]
        if kind == "text" and not isinstance(value, str):
            self.problem(f"{where}.text", "must be a string")
        elif kind == "body_b64":
            try:
                base64.b64decode(value, validate=True)
            except (TypeError, ValueError):
                self.problem(f"{where}.body_b64", "must be base64")
        elif kind == "body_blob":
            self.integer(value, f"{where}.body_blob", 0, MAX_BLOB)
        return kind, value

    def expect(self, raw: object, where: str, ids: set[str], action: str) -> Expect:
        doc = self.mapping(raw, where, "expectations") or {}
        self.unknown(doc, _EXPECT_FIELDS, where)
        for name in ("status", "key_id", "attempts", "json", "text", "upstream_keys"):
            if name in doc:
                self.matchers(doc[name], f"{where}.{name}")
        error = doc.get("error")
        if error is not None:
            error_doc = self.mapping(error, f"{where}.error", "code, status, retry_after") or {}
            self.unknown(error_doc, _ERROR_FIELDS, f"{where}.error")
            self.matchers(error_doc, f"{where}.error")
        headers_raw = self.mapping(doc.get("headers", {}), f"{where}.headers", "name -> value")
        headers = {str(k).lower(): v for k, v in (headers_raw or {}).items()}
        self.matchers(headers, f"{where}.headers")
        blob_size = doc.get("blob_size")
        if blob_size is not None:
            blob_size = self.integer(blob_size, f"{where}.blob_size", 0, MAX_BLOB)
        events = doc.get("events", MISSING)
        if events is not MISSING:
            self.events(events, f"{where}.events", action)
        spread = doc.get("events_spread")
        if spread is not None:
            spread = self.number(spread, f"{where}.events_spread", 0.0, MAX_WAIT)
        upstream = doc.get("upstream", MISSING)
        if upstream is not MISSING:
            upstream = self.attempts(upstream, f"{where}.upstream", ids)
        return Expect(
            status=doc.get("status", MISSING),
            error=error,
            key_id=doc.get("key_id", MISSING),
            attempts=doc.get("attempts", MISSING),
            headers=headers,
            json=doc.get("json", MISSING),
            text=doc.get("text", MISSING),
            blob_size=blob_size,
            events=events,
            events_spread=spread,
            upstream_keys=doc.get("upstream_keys", MISSING),
            upstream=upstream,
        )

    def events(self, raw: object, where: str, action: str) -> None:
        if action != "stream":
            self.problem(where, "only a stream step has events")
        if not isinstance(raw, list):
            self.matchers(raw, where)
            return
        for i, event in enumerate(raw):
            if isinstance(event, Mapping):
                self.unknown(event, _EVENT_FIELDS, f"{where}[{i}]")
            elif not isinstance(event, str):
                self.problem(f"{where}[{i}]", "must be the data (a string) or {event, data, id}")
            self.matchers(event, f"{where}[{i}]")

    def attempts(self, raw: object, where: str, ids: set[str]) -> list[dict[str, Any]]:
        if not isinstance(raw, list):
            self.problem(where, "must be a list of attempts ({key_id, path, ...})")
            return []
        found: list[dict[str, Any]] = []
        for i, item in enumerate(raw):
            at = f"{where}[{i}]"
            doc = self.mapping(item, at, "an attempt") or {}
            self.unknown(doc, _ATTEMPT_FIELDS, at)
            attempt = {k: v for k, v in doc.items() if not k.startswith("body_")}
            if "headers" in attempt:
                headers = self.mapping(attempt["headers"], f"{at}.headers", "name -> value") or {}
                attempt["headers"] = {str(k).lower(): v for k, v in headers.items()}
            for name in ("body_sha256", "body_length"):
                if name in doc:
                    attempt[name] = doc[name]
            content = _attempt_body(doc, self, at)
            if content is not None:
                attempt["body_sha256"] = hashlib.sha256(content).hexdigest()
                attempt["body_length"] = len(content)
            self.matchers(attempt, at)
            found.append(attempt)
        return found

    def expect_upstream(self, raw: object, where: str, ids: set[str]) -> UpstreamExpect:
        doc = self.mapping(raw, where, "keys, key_counts") or {}
        self.unknown(doc, ("keys", "key_counts"), where)
        keys = doc.get("keys", MISSING)
        if keys is not MISSING:
            self.matchers(keys, f"{where}.keys")
        counts = self.mapping(doc.get("key_counts", {}), f"{where}.key_counts", "id -> count")
        for key_id in counts or {}:
            if key_id not in ids:
                self.problem(f"{where}.key_counts.{key_id}", "not a key of this case")
        self.matchers(counts or {}, f"{where}.key_counts")
        return UpstreamExpect(keys=keys, key_counts=dict(counts or {}))


def _attempt_body(doc: Mapping[str, Any], v: _Checker, where: str) -> bytes | None:
    """The exact bytes an attempt's body must have, from body_text / body_b64 / body_blob."""
    given: list[tuple[str, Callable[[Any], bytes]]] = [
        ("body_text", lambda t: str(t).encode("utf-8")),
        ("body_b64", lambda b: base64.b64decode(b, validate=True)),
        ("body_blob", lambda n: blob_bytes(int(n))),
    ]
    for name, convert in given:
        if name in doc:
            try:
                return convert(doc[name])
            except (TypeError, ValueError):
                v.problem(f"{where}.{name}", "is not a valid body")
    return None
