"""pydantic's validation errors as our problem lines: `pools[1].keys[0].value: missing`.

A line names the field (its YAML path) and what is wrong, never the value: pydantic's own
messages (and the `input` of its errors) are not used, only the kind of a wrong value. An
unknown field is named only when its name looks like a setting, not like a pasted key.
"""

from __future__ import annotations

import re

from pydantic import ValidationError

from poolswitch.fieldtypes import PROBLEM, kind

Loc = tuple[str | int, ...]
Problem = tuple[Loc, str]
"""A problem: the field (as a path) and what is wrong with it."""

_FIELD_NAME = re.compile(r"^[a-z_]{1,40}$")
_UNKNOWN = ("unexpected_keyword_argument", "extra_forbidden")
_TYPES = {
    "int_type": "must be an integer",
    "float_type": "must be a number",
    "bool_type": "must be true or false",
}
_SHAPES = {
    "string_type": "must be a string",
    "dataclass_type": "must be a mapping",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "tuple_type": "must be a list",
    "list_type": "must be a list",
    "too_short": "must not be empty",
    "missing": "missing",
}


def where(loc: Loc) -> str:
    """`("pools", 1, "keys", 0, "value")` -> `pools[1].keys[0].value`."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text or "(top level)"


def from_error(exc: ValidationError) -> list[Problem]:
    found: list[Problem] = []
    for error in exc.errors():
        loc: Loc = tuple(error["loc"])
        kind_of = error["type"]
        if kind_of == PROBLEM:
            found.append((loc, error["msg"]))
        elif kind_of in _UNKNOWN or kind_of == "invalid_key":
            name = loc[-1] if loc else None
            if kind_of != "invalid_key" and isinstance(name, str) and _FIELD_NAME.match(name):
                found.append((loc, "unknown field"))
            else:
                found.append(
                    (loc[:-1], "unknown field (name not shown: it does not look like a setting)")
                )
        elif kind_of in _TYPES:
            found.append((loc, f"{_TYPES[kind_of]}, got {kind(error.get('input'))}"))
        else:
            found.append((loc, _SHAPES.get(kind_of, f"is not valid ({kind_of})")))
    return found


def lines(found: list[Problem], origin: dict[str, str], order: tuple[str, ...]) -> list[str]:
    """One line per problem, in the order of the schema's fields (unknown ones first), each
    noting the environment variable that set the field, if one did."""

    def rank(problem: Problem) -> tuple[int, int]:
        loc = problem[0]
        top = order.index(loc[0]) if loc and loc[0] in order else -1
        index = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else -1
        return top, index

    result = []
    for loc, message in sorted(found, key=rank):
        name = where(loc)
        via = origin.get(name)
        result.append(f"{name}{f' (from {via})' if via else ''}: {message}")
    return result
