"""The kinds of value a config holds, as pydantic types whose problems say what is expected and
never show the value (any value may be a key pasted in the wrong place).

A rule that fails raises `fail(message)`; `OnError(message)` names what a field expects when
pydantic itself refuses the value (a list where a mapping belongs, a number for a string).
Numbers and booleans may be written as strings (`"8080"`, as `${PORT}` or an environment
variable gives them): they are read as YAML scalars first.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BeforeValidator,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    Strict,
    ValidationError,
    WithJsonSchema,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

from poolswitch import upstreamtls

PROBLEM = "poolswitch"
"""The error type of every problem our rules raise: its message is the line we print."""

KEY_ID = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
POOL_NAME = r"^[a-z0-9][a-z0-9_-]{0,31}$"
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_HOST = re.compile(r"^[a-z0-9_]([a-z0-9_.-]{0,252})$")
BUILT_IN_PATHS = ("/health", "/status", "/metrics", "/poolswitch")


def fail(message: str) -> PydanticCustomError:
    return PydanticCustomError(PROBLEM, message)


@dataclass(frozen=True)
class OnError:
    """What the field expects, said when pydantic refuses the value itself (wrong type, a
    mapping or list that is not one); problems found inside the value keep their own line."""

    message: str

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return self.wrap(handler(source))

    def wrap(self, schema: CoreSchema) -> CoreSchema:
        def wrap(value: Any, validate: core_schema.ValidatorFunctionWrapHandler) -> Any:
            try:
                return validate(value)
            except ValidationError as exc:
                if any(not e["loc"] and e["type"] != PROBLEM for e in exc.errors()):
                    raise fail(self.message) from None
                raise

        return core_schema.no_info_wrap_validator_function(wrap, schema)


class Doc:
    """Extra JSON Schema keywords for what a rule checks (a pattern, a minimum length)."""

    def __init__(self, **extra: Any) -> None:
        self.extra = extra

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        value = handler(schema)
        value.update(self.extra)
        return value


@dataclass(frozen=True)
class NotEmpty:
    """A list with at least one entry; else `message` (which names what an entry holds)."""

    message: str

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        def check(value: Any) -> Any:
            if isinstance(value, (list, tuple)) and not value:
                raise fail(self.message)
            return value

        return OnError(self.message).wrap(
            core_schema.no_info_before_validator_function(check, handler(source))
        )

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        value = handler(schema)
        value["minItems"] = 1
        return value


def _num(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Range:
    """`low <= value` (`low < value` when `above`), `value <= high`, finite."""

    low: float
    high: float | None = None
    above: bool = False

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        value = handler(schema)
        value["exclusiveMinimum" if self.above else "minimum"] = self.low
        if self.high is not None:
            value["maximum"] = self.high
        return value

    def check(self, value: float) -> float:
        infinite = isinstance(value, float) and not math.isfinite(value)
        bad = infinite or value < self.low or (self.above and value <= self.low)
        if bad or (self.high is not None and value > self.high):
            if self.high is not None:
                bound = f"between {_num(self.low)} and {_num(self.high)}"
            else:
                bound = f"{'greater than' if self.above else 'at least'} {_num(self.low)}"
            raise fail(f"must be {bound}, got {_num(value)}")
        return value


@dataclass(frozen=True)
class Choice:
    """One of a few words."""

    options: tuple[str, ...]
    message: str = ""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        said = self.message or f"unknown value (one of: {', '.join(self.options)})"

        def check(value: Any) -> str:
            if not isinstance(value, str) or value not in self.options:
                raise fail(said)
            return value

        return core_schema.no_info_plain_validator_function(
            check, json_schema_input_schema=core_schema.str_schema()
        )

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "string", "enum": list(self.options)}


def kind(value: Any) -> str:
    """What a wrong value is, without showing it."""
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return "null" if value is None else type(value).__name__


def scalar(value: Any) -> Any:
    """A string read as a YAML scalar (`8080`, `12.5`, `true`, `null`); anything else as is."""
    if not isinstance(value, str):
        return value
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        return value
    return parsed if isinstance(parsed, (str, int, float, bool)) or parsed is None else value


def _number(value: Any) -> Any:
    value = scalar(value)
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:  # found by nox -s fuzz: an integer beyond any float
            return math.inf
    return value


@dataclass(frozen=True)
class Rule:
    """`test(value)` must hold, else `message`; also said when pydantic refuses the value."""

    message: str
    test: Callable[[Any], Any] = bool

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        def check(value: Any) -> Any:
            if not self.test(value):
                raise fail(self.message)
            return value

        inner = core_schema.no_info_after_validator_function(check, handler(source))
        return OnError(self.message).wrap(inner)


def _non_blank(value: str) -> bool:
    return bool(value.strip())


def _url(value: str) -> str:
    try:
        parts = urlsplit(value)
    except ValueError:  # found by nox -s fuzz: "http://[::1" (an unclosed IPv6 bracket)
        raise fail("must be an http or https URL with a host") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise fail(f"must be an http or https URL with a host, got {_url_kind(parts)}")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise fail("must not carry a query, fragment or credentials")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise fail(f"has an invalid port ({parts.scheme}://{parts.hostname})") from None
    return value.rstrip("/")


def _ca_file(value: str) -> str:
    if not value.strip():
        raise fail("must be a path to a PEM file of CA certificates")
    problem = upstreamtls.ca_problem(value)
    if problem is not None:
        raise fail(problem)
    return value


def _redis_url(value: str) -> str:
    """redis://[user:password@]host[:port][/db] or rediss:// (TLS); the message never repeats
    the URL (it may carry the password)."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise fail("must be a redis:// or rediss:// URL with a host and a valid port") from None
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise fail(f"must be a redis:// or rediss:// URL with a host, got {_url_kind(parts)}")
    db = parts.path.strip("/")
    if db and not db.isdigit():
        raise fail("must name the database as a number (redis://host:6379/0)")
    return value


def _url_kind(parts: Any) -> str:
    """A URL that is not http(s) with a host, described by its scheme and host only (a key
    pasted into its path or query stays out of the message)."""
    scheme = parts.scheme if re.fullmatch(r"[a-z][a-z0-9+.-]{0,15}", parts.scheme or "") else ""
    if not scheme:
        return "no scheme"
    return f"scheme {scheme!r}" + (f", host {parts.hostname!r}" if parts.hostname else ", no host")


def host_name(value: str) -> str | None:
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


def origin(value: str) -> str | None:
    """A browser origin, `scheme://host[:port]`, lower-cased, or None when invalid."""
    text = value.strip().lower()
    try:
        parts = urlsplit(text)
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
        or text != f"{parts.scheme}://{parts.netloc}"
    ):
        return None
    return text


def _normalised(normalise: Callable[[str], str | None], message: str) -> AfterValidator:
    def check(value: str) -> str:
        name = normalise(value)
        if name is None:
            raise fail(message)
        return name

    return AfterValidator(check)


def _unique(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def _route(value: str) -> str:
    if not value.startswith("/") or (value != "/" and value.endswith("/")):
        raise fail('must start with "/" and not end with "/" (e.g. /openai)')
    if any(c in "?#%" or c.isspace() or ord(c) < 32 for c in value):
        raise fail("must be a plain path: no ?, #, % or whitespace")
    if any(part in (".", "..") for part in value.split("/")):
        raise fail('must not have "." or ".." segments')
    if any(value == path or value.startswith(path + "/") for path in BUILT_IN_PATHS):
        raise fail(f"must not be or start with a built-in path ({', '.join(BUILT_IN_PATHS)})")
    return value


def _verify_path(value: str) -> str:
    if value != "auto" and (
        not value.startswith("/") or any(c.isspace() or ord(c) < 32 or c in "#?" for c in value)
    ):
        raise fail(VERIFY_PATH)
    return value


def _metadata(value: Any) -> Any:
    if isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, (str, int, float, bool)) for k, v in value.items()
    ):
        return tuple((k, str(v)) for k, v in value.items())
    if isinstance(value, tuple):
        return value
    raise fail("must be a mapping of names to plain values")


def _no_control(value: str) -> bool:
    return not any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value)


HEADER = "must be a valid HTTP header name (letters, digits, - and _)"
VERIFY_PATH = "must be a path starting with / (no query), auto or null"
ID = "must be 1-64 characters of letters, digits, . _ : -"
ORIGIN = "must be an origin (scheme://host[:port])"
NAMESPACE = "must be 1-64 letters, digits, _ . and -"
NAME = "must be 1-32 lower-case letters, digits, _ and -, starting with a letter or digit"

Integer = Annotated[int, Strict(), BeforeValidator(scalar)]
Number = Annotated[float, Strict(), BeforeValidator(_number)]
Boolean = Annotated[bool, Strict(), BeforeValidator(scalar)]
Text = Annotated[str, Strict(), Rule("must be a non-empty string", _non_blank)]
NonEmptyText = Annotated[str, Strict(), Rule("must be a non-empty string")]
HeaderName = Annotated[str, Strict(), Rule(HEADER, _TOKEN.match), Doc(pattern=_TOKEN.pattern)]
QueryParam = Annotated[
    str,
    Strict(),
    Rule("must be a valid query parameter name (letters, digits, - and _)", _TOKEN.match),
    Doc(pattern=_TOKEN.pattern),
]
Scheme = Annotated[
    str,
    Strict(),
    Rule("must be a single word such as Bearer, or null for the raw key", _TOKEN.match),
    Doc(pattern=_TOKEN.pattern),
]
Secret = Annotated[
    str,
    Strict(),
    Rule(
        "must be at least 16 characters without whitespace",
        lambda v: len(v) >= 16 and not any(c.isspace() for c in v),
    ),
    Doc(minLength=16),
]
Url = Annotated[
    str,
    Strict(),
    AfterValidator(_url),
    OnError("must be an http or https URL"),
    Doc(format="uri", pattern="^https?://"),
]
CaFile = Annotated[
    str,
    Strict(),
    AfterValidator(_ca_file),
    OnError("must be a path to a PEM file of CA certificates"),
]
RedisUrl = Annotated[
    str,
    Strict(),
    AfterValidator(_redis_url),
    OnError("must be a redis:// or rediss:// URL"),
    Doc(format="uri", pattern="^rediss?://"),
]
KeyId = Annotated[str, Strict(), Rule(ID, re.compile(KEY_ID).match), Doc(pattern=KEY_ID)]
KeyValue = Annotated[
    str,
    Strict(),
    Rule("must be a non-empty string"),
    Rule("must not contain whitespace or control characters", _no_control),
    Doc(minLength=1),
]
CallerToken = Annotated[
    str,
    Strict(),
    Rule("must be a string of at least 16 characters", lambda v: len(v) >= 16),
    Rule(
        "must be printable ASCII without whitespace or control characters",
        lambda v: all("!" <= c <= "~" for c in v),
    ),
    Doc(minLength=16),
]
Namespace = Annotated[
    str,
    Strict(),
    Rule(NAMESPACE, re.compile(r"^[A-Za-z0-9_.-]{1,64}$").match),
    Doc(pattern=r"^[A-Za-z0-9_.-]{1,64}$"),
]
PoolName = Annotated[str, Strict(), Rule(NAME, re.compile(POOL_NAME).match), Doc(pattern=POOL_NAME)]
Route = Annotated[
    str,
    Strict(),
    AfterValidator(_route),
    OnError('must be a path such as "/openai"'),
    Doc(pattern="^/"),
]
VerifyPath = Annotated[str, Strict(), AfterValidator(_verify_path), OnError(VERIFY_PATH)]
HostName = Annotated[
    str, Strict(), _normalised(host_name, "must be a host name"), OnError("must be a host name")
]
Origin = Annotated[
    str,
    Strict(),
    _normalised(origin, ORIGIN),
    OnError(ORIGIN),
]
Names = Annotated[
    tuple[HostName, ...], AfterValidator(_unique), OnError("must be a list of strings")
]
Origins = Annotated[
    tuple[Origin, ...], AfterValidator(_unique), OnError("must be a list of strings")
]
Metadata = Annotated[
    tuple[tuple[str, str], ...],
    BeforeValidator(_metadata),
    WithJsonSchema(
        {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}}
    ),
]
