"""Compare an expected value (from a case) with a seen one (from a result).

Expected values are JSON-like. A mapping matches as a subset: the fields it names must be there
and match, others are not looked at. A list matches element by element and must have the same
length. Scalars match by equality, except that a boolean never equals a number. A mapping with a
single key that starts with `$` is a matcher instead:

    {$re: PATTERN}          a string in which re.search finds PATTERN
    {$range: [LO, HI]}      a number n with LO <= n <= HI
    {$present: true}        anything, as long as the field is there
    {$absent: true}         the field is not there (inside a mapping, e.g. a header)
    {$contains: X}          a string containing the string X, or a list with an element equal to X
    {$one_of: [A, B, ...]}  equal to one of the values
    {$from_now: [LO, HI]}   a Unix time between now + LO and now + HI seconds
    {$all: [M1, M2, ...]}   every one of the expected values (matchers) matches

`match()` returns the differences as readable lines ("json.error.code: expected 'x', seen 'y'");
no difference means a match. `problems()` checks the matchers of an expectation when a case is
loaded, so a typo is an error there and not a silent mismatch later.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from typing import Any, final

__all__ = ["MISSING", "OPERATORS", "is_matcher", "match", "problems", "short"]

SHORT_LIMIT = 160


@final
class _Missing:
    """The value of a field that is not there."""

    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()

OPERATORS = frozenset(
    {"$re", "$range", "$present", "$absent", "$contains", "$one_of", "$from_now", "$all"}
)


def is_matcher(value: object) -> bool:
    return (
        isinstance(value, Mapping)
        and len(value) == 1
        and isinstance(next(iter(value)), str)
        and next(iter(value)).startswith("$")
    )


def short(value: object) -> str:
    """A value as a short one-line string for a message."""
    if value is MISSING:
        return "<missing>"
    try:
        text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= SHORT_LIMIT else text[: SHORT_LIMIT - 3] + "..."


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _pair(value: object) -> bool:
    return isinstance(value, list) and len(value) == 2 and all(_is_number(v) for v in value)


def problems(expected: object, where: str) -> list[str]:
    """What is wrong with the matchers in an expected value (empty when all are valid)."""
    found: list[str] = []
    if is_matcher(expected):
        assert isinstance(expected, Mapping)
        op, arg = next(iter(expected.items()))
        if op not in OPERATORS:
            found.append(f"{where}: unknown matcher {op} (one of {', '.join(sorted(OPERATORS))})")
        elif op == "$re":
            if not isinstance(arg, str):
                found.append(f"{where}: $re needs a pattern string")
            else:
                try:
                    re.compile(arg)
                except re.error as exc:
                    found.append(f"{where}: $re: invalid pattern: {exc}")
        elif op in ("$range", "$from_now") and not (_pair(arg) and arg[0] <= arg[1]):
            found.append(f"{where}: {op} needs [LO, HI] with LO <= HI")
        elif op in ("$present", "$absent") and arg is not True:
            found.append(f"{where}: {op} takes true")
        elif op in ("$one_of", "$all") and not isinstance(arg, list):
            found.append(f"{where}: {op} needs a list")
        elif op == "$all":
            for i, item in enumerate(arg):
                found.extend(problems(item, f"{where}.$all[{i}]"))
    elif isinstance(expected, Mapping):
        for name, value in expected.items():
            if not isinstance(name, str):
                found.append(f"{where}: field names must be strings, got {name!r}")
            elif name.startswith("$"):
                found.append(f"{where}.{name}: a matcher must be the only key of its mapping")
            else:
                found.extend(problems(value, f"{where}.{name}"))
    elif isinstance(expected, list):
        for i, value in enumerate(expected):
            found.extend(problems(value, f"{where}[{i}]"))
    return found


def _equal(expected: object, seen: object) -> bool:
    if isinstance(expected, bool) or isinstance(seen, bool):
        return type(expected) is type(seen) and expected == seen
    return expected == seen


def _apply(op: str, arg: Any, seen: Any, where: str, now: float) -> list[str]:
    mismatch = [f"{where}: expected {op} {short(arg)}, seen {short(seen)}"]
    if op == "$absent":
        return [] if seen is MISSING else [f"{where}: expected no value, seen {short(seen)}"]
    if seen is MISSING:
        return [f"{where}: missing (expected {op} {short(arg)})"]
    if op == "$present":
        return []
    if op == "$re":
        return [] if isinstance(seen, str) and re.search(arg, seen) else mismatch
    if op == "$range":
        return [] if _is_number(seen) and arg[0] <= seen <= arg[1] else mismatch
    if op == "$from_now":
        if _is_number(seen) and now + arg[0] <= seen <= now + arg[1]:
            return []
        offset = f"now{seen - now:+.2f}s" if _is_number(seen) else short(seen)
        return [f"{where}: expected $from_now {short(arg)}, seen {offset}"]
    if op == "$contains":
        if isinstance(seen, str) and isinstance(arg, str) and arg in seen:
            return []
        if isinstance(seen, list) and any(_equal(arg, item) for item in seen):
            return []
        return mismatch
    if op == "$one_of":
        return [] if any(_equal(option, seen) for option in arg) else mismatch
    if op == "$all":
        return [line for item in arg for line in match(item, seen, where, now=now)]
    raise ValueError(f"unknown matcher {op}")  # problems() rejects these when a case loads


def match(expected: Any, seen: Any, where: str = "value", *, now: float | None = None) -> list[str]:
    """The differences between `expected` and `seen` (see the module docstring)."""
    now = time.time() if now is None else now
    if is_matcher(expected):
        op, arg = next(iter(expected.items()))
        return _apply(op, arg, seen, where, now)
    if seen is MISSING:
        return [f"{where}: missing (expected {short(expected)})"]
    if isinstance(expected, Mapping):
        if not isinstance(seen, Mapping):
            return [f"{where}: expected an object, seen {short(seen)}"]
        found: list[str] = []
        for name, value in expected.items():
            found.extend(match(value, seen.get(name, MISSING), f"{where}.{name}", now=now))
        return found
    if isinstance(expected, list):
        if not isinstance(seen, list):
            return [f"{where}: expected a list, seen {short(seen)}"]
        if len(expected) != len(seen):
            return [
                f"{where}: expected {len(expected)} item(s), seen {len(seen)}: "
                f"expected {short(expected)}, seen {short(seen)}"
            ]
        found = []
        for i, (want, got) in enumerate(zip(expected, seen, strict=True)):
            found.extend(match(want, got, f"{where}[{i}]", now=now))
        return found
    if _equal(expected, seen):
        return []
    return [f"{where}: expected {short(expected)}, seen {short(seen)}"]
