"""The fake upstream's behaviours as declarative models: one per kind, strict (an unknown kind or
field, a wrong type, a value out of range is an error), frozen.

    ok echo rate_limit quota_exhausted invalid_key server_error overloaded bad_request
            a JSON answer: status, headers, delay, json, gzip
    text    status, headers, delay, body, gzip
    blob    status, headers, delay, size, chunked, gzip, tail, interval
    mirror  status, headers, delay (answers the request's own body and Content-Type)
    sse     status, headers, delay, events, interval, first_delay, done, cut
    drop    delay (then the connection is closed)
    hang    delay (then it never answers)

`validate_behaviour(mapping)` checks one and returns a private plain copy (only the fields given:
the fake applies the defaults), or raises BehaviourError naming the field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
)

__all__ = [
    "BLOB_DEFAULT",
    "JSON_KINDS",
    "MAX_BLOB",
    "MAX_WAIT",
    "Behaviour",
    "BehaviourError",
    "blob_bytes",
    "validate_behaviour",
]

MAX_WAIT = 600.0  # upper bound for every scripted wait (delay, hang, intervals)
MAX_BLOB = 1 << 30
BLOB_DEFAULT = 1024
JSON_KINDS = (
    "ok",
    "echo",
    "rate_limit",
    "quota_exhausted",
    "invalid_key",
    "server_error",
    "overloaded",
    "bad_request",
)


class BehaviourError(ValueError):
    """A behaviour or a script is invalid (the message names the culprit)."""


def blob_bytes(size: int) -> bytes:
    """The deterministic body of a ``blob`` behaviour: bytes 0..255 repeated, cut to `size`."""
    if size < 0:
        raise ValueError("size must be >= 0")
    return (bytes(range(256)) * (size // 256 + 1))[:size]


def _no_newline(value: str) -> str:
    if "\r" in value or "\n" in value:
        raise ValueError("no CR or LF")
    return value


def _json_value(value: Any) -> Any:
    try:
        json.dumps(value, allow_nan=False)
    except TypeError as exc:
        raise ValueError(str(exc)) from None
    return value


Line = Annotated[StrictStr, AfterValidator(_no_newline)]
HeaderName = Annotated[StrictStr, Field(min_length=1), AfterValidator(_no_newline)]
Seconds = Annotated[float, Field(ge=0, le=MAX_WAIT)]  # strict: an int or a float, not a bool
Status = Annotated[StrictInt, Field(ge=100, le=999)]
JsonValue = Annotated[Any, AfterValidator(_json_value)]

_MODEL = ConfigDict(frozen=True, extra="forbid", strict=True)


class SseEvent(BaseModel):
    """One server-sent event: `data` (split on newlines into data: lines), `event`, `id`."""

    model_config = _MODEL
    data: StrictStr
    event: Line | None = None
    id: Line | None = None


class _Answer(BaseModel):
    model_config = _MODEL
    status: Status = 200  # the kind's own status when left out
    headers: dict[HeaderName, Line] = {}
    delay: Seconds = 0


class JsonAnswer(_Answer):
    """A JSON answer: a chat completion (ok), the request itself (echo), or a provider error."""

    kind: Literal[
        "ok",
        "echo",
        "rate_limit",
        "quota_exhausted",
        "invalid_key",
        "server_error",
        "overloaded",
        "bad_request",
    ]
    json_: JsonValue = Field(None, alias="json")
    gzip: StrictBool = False


class Text(_Answer):
    kind: Literal["text"]
    body: StrictStr = ""
    gzip: StrictBool = False


class Blob(_Answer):
    kind: Literal["blob"]
    size: Annotated[StrictInt, Field(ge=0, le=MAX_BLOB)] = BLOB_DEFAULT
    chunked: StrictBool = False
    gzip: StrictBool = False
    tail: StrictStr = ""
    interval: Seconds = 0


class Mirror(_Answer):
    kind: Literal["mirror"]


class Sse(_Answer):
    kind: Literal["sse"]
    events: list[StrictStr | SseEvent] | None = None
    interval: Seconds = 0.05
    first_delay: Seconds = 0
    done: StrictBool = True
    cut: StrictBool = False


class Drop(BaseModel):
    model_config = _MODEL
    kind: Literal["drop"]
    delay: Seconds = 0


class Hang(BaseModel):
    model_config = _MODEL
    kind: Literal["hang"]
    delay: Seconds = 0


Behaviour = Annotated[
    JsonAnswer | Text | Blob | Mirror | Sse | Drop | Hang, Field(discriminator="kind")
]
_ADAPTER: TypeAdapter[Any] = TypeAdapter(Behaviour)

_EXPECTED = {
    "status": "an integer in [100, 999]",
    "headers": "an object of header names to values (no CR/LF)",
    "json": "JSON-serialisable",
    "delay": f"a number of seconds in [0, {MAX_WAIT:g}]",
    "interval": f"a number of seconds in [0, {MAX_WAIT:g}]",
    "first_delay": f"a number of seconds in [0, {MAX_WAIT:g}]",
    "events": 'a list of strings or {"data", "event"?, "id"?} objects',
    "size": f"an integer in [0, {MAX_BLOB}]",
    "body": "a string",
    "tail": "a string",
    **dict.fromkeys(("done", "cut", "chunked", "gzip"), "a boolean"),
}


def _message(kind: str, errors: list[Any]) -> str:
    unknown = sorted(
        str(e["loc"][1]) for e in errors if e["type"] == "extra_forbidden" and len(e["loc"]) == 2
    )
    if unknown:
        return f"unknown field(s) for kind {kind!r}: {', '.join(unknown)}"
    name = str(errors[0]["loc"][1]) if len(errors[0]["loc"]) > 1 else "kind"
    expected = _EXPECTED.get(name, errors[0]["msg"])
    return f"field {name!r} of kind {kind!r} must be {expected}"


def validate_behaviour(behaviour: Mapping[str, Any]) -> dict[str, Any]:
    """Check a behaviour strictly; return a private plain copy. Raises BehaviourError."""
    if not isinstance(behaviour, Mapping):
        raise BehaviourError(f"behaviour must be an object, got {behaviour!r}")
    kind = behaviour.get("kind")
    try:
        model = _ADAPTER.validate_python(dict(behaviour))
    except ValidationError as exc:
        errors = exc.errors()
        if any(e["type"].startswith("union_tag") for e in errors):
            raise BehaviourError(f"unknown behaviour kind: {kind!r}") from None
        raise BehaviourError(_message(str(kind), errors)) from None
    plain: dict[str, Any] = model.model_dump(by_alias=True, exclude_unset=True)
    return plain
