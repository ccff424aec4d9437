"""The provider profiles as data: `providers.json`, read once and checked.

The file holds every rule by which an upstream answer is read (which status, identifier or
phrase means a rate limit, a spent quota, an invalid key, an overload; which headers, body
fields and phrases say when a key may be used again, and in which format) for each profile.
The classifier (classifier.py) and the reset parsers (resets.py) take their tables from here,
and the embedded Node client embeds the same file at build time: one source of truth, proven by
the shared vectors in conformance/vectors/classifier.json. Its schema: README.md beside it.

`load()` checks the document's shape and that every name it uses is known (a kind, an outcome,
a format), so a mistyped rule fails at import with the place named, not at the first answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

__all__ = [
    "FORMATS",
    "KINDS_USED",
    "OUTCOMES",
    "RULES",
    "VALUE_FORMATS",
    "Deadline",
    "Kind",
    "Profile",
    "ProfileError",
    "Refinement",
    "Rules",
    "Signal",
    "load",
    "parse",
]

OUTCOMES = frozenset(
    {
        "rate_limited",
        "quota_exhausted",
        "key_invalid",
        "upstream_overloaded",
        "upstream_error",
        "client_error",
    }
)
"""The outcomes a kind may name (success, network_error and timeout are never read from data)."""

FORMATS = frozenset({"retry_after", "millis", "epoch", "duration", "rfc3339", "date_utc"})
"""The reset formats a parser exists for (resets.py; sdk-node/src/embedded/resets.ts)."""
VALUE_FORMATS = FORMATS - {"date_utc"}
"""The formats of a header's or a body field's value (`date_utc` reads a phrase: prose only)."""
KINDS_USED = ("rate", "overloaded", "error", "client")
"""Kinds the rules name themselves (a status with no kind of its own: `client`, or `error` for
a 5xx; an `overloaded` marker on a 5xx; a `rate` limit may be refined): the file must have them."""


class ProfileError(ValueError):
    """providers.json is not what the code expects; the message names the place."""


@dataclass(frozen=True, slots=True)
class Deadline:
    """A quota's own reset: `month_start` (00:00 on the 1st of next month) or `midnight` (the
    next one), in `zone`; `fallback_utc_offset_hours` where the tz database lacks it."""

    until: str
    zone: str
    fallback_utc_offset_hours: float | None
    source: str


@dataclass(frozen=True, slots=True)
class Kind:
    """What an answer is, finer than its outcome where the cooldown differs."""

    name: str
    outcome: str
    deadline: Deadline | None = None
    at_least_cooldown_seconds: bool = False  # park at least cooldown_seconds (Gemini limit 0)
    source: str | None = None  # the cooldown's source, whatever signal set it


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    hosts: tuple[str, ...]
    host_suffixes: tuple[str, ...]
    markers: Mapping[str, str]  # identifier -> kind: the common ones, then the profile's own
    phrases: tuple[tuple[str, str], ...]  # (lower-cased text, kind), checked first
    verify_path: str | None
    verify_headers: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Refinement:
    """One way a rate limit turns out to be a quota (refine_rate.rules)."""

    kind: str
    quota_value: str | None = None  # a violation's quotaValue equal to this
    text_pattern: re.Pattern[str] | None = None  # or this in the body's lower-cased text
    quota_id_contains: str | None = None  # a violation's quotaId containing this


@dataclass(frozen=True, slots=True)
class Signal:
    """A header or body field that says when a key may be used again."""

    name: str
    format: str
    dimension: str | None = None  # a rate window's dimension (requests, tokens, ...)
    remaining: str | None = None  # the header that says what is left of that dimension
    source: str | None = None  # the name shown as the cooldown's source (default: `name`)


@dataclass(frozen=True, slots=True)
class Rules:
    version: int
    body_bytes: int
    max_reset_seconds: float
    default_rate_limit_cooldown: float
    kinds: Mapping[str, Kind]
    status_kinds: Mapping[int, str]
    identifier_fields: tuple[str, ...]
    profiles: Mapping[str, Profile]
    refine_fields: frozenset[str]
    refine_quota_ids: bool
    refinements: tuple[Refinement, ...]
    event_status: Mapping[str, int]
    header_signals: tuple[Signal, ...]
    windows: tuple[Signal, ...]
    dimension_types: frozenset[str]
    body_fields: tuple[Signal, ...]
    fact_fields: tuple[str, ...]
    prose: tuple[tuple[re.Pattern[str], str], ...]
    duration_units: Mapping[str, float]
    remaining_quota_headers: tuple[str, ...]


class _Reader:
    """Typed access to the JSON document that names the place of every problem."""

    def __init__(self, doc: Any, where: str) -> None:
        self.doc = doc
        self.where = where

    def fail(self, problem: str) -> ProfileError:
        return ProfileError(f"providers.json: {self.where}: {problem}")

    def get(self, name: str, default: Any = ...) -> _Reader:
        if not isinstance(self.doc, dict):
            raise self.fail("must be an object")
        if name not in self.doc:
            if default is ...:
                raise _Reader(None, self._at(name)).fail("missing")
            return _Reader(default, self._at(name))
        return _Reader(self.doc[name], self._at(name))

    def _at(self, name: str) -> str:
        return f"{self.where}.{name}" if self.where else name

    def items(self) -> list[tuple[str, _Reader]]:
        if not isinstance(self.doc, dict):
            raise self.fail("must be an object")
        return [(k, _Reader(v, self._at(k))) for k, v in self.doc.items() if not k.startswith("$")]

    def each(self) -> list[_Reader]:
        if not isinstance(self.doc, list):
            raise self.fail("must be a list")
        return [_Reader(v, f"{self.where}[{i}]") for i, v in enumerate(self.doc)]

    def text(self) -> str:
        if not isinstance(self.doc, str) or not self.doc:
            raise self.fail("must be a non-empty string")
        return self.doc

    def maybe_text(self) -> str | None:
        return None if self.doc is None else self.text()

    def number(self) -> float:
        if isinstance(self.doc, bool) or not isinstance(self.doc, (int, float)):
            raise self.fail("must be a number")
        return float(self.doc)

    def integer(self) -> int:
        if isinstance(self.doc, bool) or not isinstance(self.doc, int):
            raise self.fail("must be an integer")
        return self.doc

    def flag(self) -> bool:
        if not isinstance(self.doc, bool):
            raise self.fail("must be true or false")
        return self.doc

    def texts(self) -> tuple[str, ...]:
        return tuple(item.text() for item in self.each())

    def pattern(self) -> re.Pattern[str]:
        try:
            return re.compile(self.text())
        except re.error as exc:
            raise self.fail(f"not a regular expression: {exc}") from None

    def one_of(self, known: Mapping[str, Any] | frozenset[str], what: str) -> str:
        value = self.text()
        if value not in known:
            raise self.fail(f"unknown {what} {value!r}")
        return value


def _kinds(doc: _Reader) -> dict[str, Kind]:
    kinds = {}
    for name, kind in doc.items():
        deadline = None
        spec = kind.get("deadline", None)
        if spec.doc is not None:
            offset = spec.get("fallback_utc_offset_hours", None)
            deadline = Deadline(
                until=spec.get("until").one_of(frozenset({"month_start", "midnight"}), "deadline"),
                zone=spec.get("zone").text(),
                fallback_utc_offset_hours=None if offset.doc is None else offset.number(),
                source=spec.get("source").text(),
            )
        kinds[name] = Kind(
            name=name,
            outcome=kind.get("outcome").one_of(OUTCOMES, "outcome"),
            deadline=deadline,
            at_least_cooldown_seconds=kind.get("at_least_cooldown_seconds", False).flag(),
            source=kind.get("source", None).maybe_text(),
        )
    return kinds


def _signal(doc: _Reader, name_field: str = "name") -> Signal:
    dimension = doc.get("dimension", None).maybe_text()
    return Signal(
        name=doc.get(name_field).text(),
        format=doc.get("format").one_of(VALUE_FORMATS, "format"),
        dimension=dimension,
        remaining=doc.get("remaining", None).maybe_text(),
        source=doc.get("source", None).maybe_text(),
    )


def _refinement(rule: _Reader, kinds: Mapping[str, Kind]) -> Refinement:
    pattern = rule.get("text_pattern", None)
    return Refinement(
        kind=rule.get("kind").one_of(kinds, "kind"),
        quota_value=rule.get("quota_value", None).maybe_text(),
        text_pattern=None if pattern.doc is None else pattern.pattern(),
        quota_id_contains=rule.get("quota_id_contains", None).maybe_text(),
    )


def parse(document: Any) -> Rules:
    """The rules of a providers.json document; ProfileError names what is wrong."""
    root = _Reader(document, "")
    kinds = _kinds(root.get("kinds"))
    for needed in KINDS_USED:
        if needed not in kinds:
            raise root.get("kinds").fail(
                f"the kind {needed!r} is missing (the classifier names it)"
            )
    markers = {k: v.one_of(kinds, "kind") for k, v in root.get("markers").items()}
    profiles = {}
    for name, doc in root.get("profiles").items():
        verify = doc.get("verify")
        own = {k: v.one_of(kinds, "kind") for k, v in doc.get("markers").items()}
        profiles[name] = Profile(
            name=name,
            hosts=doc.get("hosts").texts(),
            host_suffixes=doc.get("host_suffixes").texts(),
            markers={**markers, **own},
            phrases=tuple(
                (p.get("text").text().lower(), p.get("kind").one_of(kinds, "kind"))
                for p in doc.get("phrases").each()
            ),
            verify_path=verify.get("path").maybe_text(),
            verify_headers=tuple((k, v.text()) for k, v in verify.get("headers").items()),
        )
    refine = root.get("refine_rate")
    refinements = tuple(_refinement(rule, kinds) for rule in refine.get("rules").each())
    resets = root.get("resets")
    limits = root.get("limits")
    status_kinds = {}
    for status, kind in root.get("status_kinds").items():
        if not status.isdigit():
            raise kind.fail("must be an HTTP status")
        status_kinds[int(status)] = kind.one_of(kinds, "kind")
    units = {unit: value.number() for unit, value in resets.get("duration_units").items()}
    return Rules(
        version=root.get("version").integer(),
        body_bytes=limits.get("body_bytes").integer(),
        max_reset_seconds=limits.get("max_reset_seconds").number(),
        default_rate_limit_cooldown=limits.get("default_rate_limit_cooldown").number(),
        kinds=kinds,
        status_kinds=status_kinds,
        identifier_fields=root.get("identifier_fields").texts(),
        profiles=profiles,
        refine_fields=frozenset(refine.get("when_fields").texts()),
        refine_quota_ids=refine.get("when_quota_ids").flag(),
        refinements=refinements,
        event_status={k: v.integer() for k, v in root.get("event_status").items()},
        header_signals=tuple(_signal(s) for s in resets.get("headers").each()),
        windows=tuple(_signal(s) for s in resets.get("windows").each()),
        dimension_types=frozenset(resets.get("dimension_types").texts()),
        body_fields=tuple(_signal(s, "field") for s in resets.get("body_fields").each()),
        fact_fields=resets.get("fact_fields").texts(),
        prose=tuple(
            (p.get("pattern").pattern(), p.get("format").one_of(FORMATS, "format"))
            for p in resets.get("prose").each()
        ),
        duration_units=units,
        remaining_quota_headers=root.get("remaining_quota_headers").texts(),
    )


def load(text: str | None = None) -> Rules:
    """The rules of `text` (a providers.json document), by default the packaged file."""
    if text is None:
        text = resources.files(__name__).joinpath("providers.json").read_text(encoding="utf-8")
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise ProfileError(f"providers.json: not JSON: {exc}") from None
    return parse(document)


RULES = load()
