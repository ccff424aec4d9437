"""What the schema of one field cannot say: the document before validation (pools take the
top-level settings as defaults, `null` means the default, sqlite_path and upstream_ca_file are
relative to the file)
and the checks across fields (duplicates, a caller's pools, which form of config this is).

The checks read the document, not the validated config, so that they run even when other
fields are wrong: every problem is reported at once.
"""

from __future__ import annotations

import functools
import re
import types
import typing
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, TypeGuard, Union

from poolswitch.fieldtypes import KEY_ID, POOL_NAME
from poolswitch.problems import Loc, Problem, where

_KEY_ID = re.compile(KEY_ID)
_POOL_NAME = re.compile(POOL_NAME)
MISSING_URL = "missing (the API to forward to, e.g. https://api.openai.com)"
MISSING_KEYS = "missing (at least one key is needed)"
CA_FILE = "upstream_ca_file"


def _parts(hint: Any) -> list[Any]:
    """The types a hint is made of, through Annotated, unions and tuple[X, ...]."""
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        return _parts(typing.get_args(hint)[0])
    if origin in (Union, types.UnionType, tuple):
        return [part for arg in typing.get_args(hint) for part in _parts(arg)]
    return [hint]


@functools.cache
def _shape(cls: type) -> dict[str, tuple[bool, type | None]]:
    """Each field of a config dataclass: (may be null, the dataclass it holds if any)."""
    hints = typing.get_type_hints(cls, include_extras=True)
    shape: dict[str, tuple[bool, type | None]] = {}
    for f in fields(cls):
        parts = _parts(hints[f.name])
        nested = next((p for p in parts if isinstance(p, type) and is_dataclass(p)), None)
        shape[f.name] = (type(None) in parts, nested)
    return shape


def _drop_nulls(value: Any, cls: type) -> Any:
    """`setting: null` means the default, except where null is a value (auth_scheme)."""
    if isinstance(value, list):
        return [_drop_nulls(item, cls) for item in value]
    if not isinstance(value, dict):
        return value
    shape = _shape(cls)
    kept = {}
    for name, item in value.items():
        nullable, nested = shape.get(name, (True, None)) if isinstance(name, str) else (True, None)
        if item is None and not nullable:
            continue
        kept[name] = _drop_nulls(item, nested) if nested is not None else item
    return kept


def prepare(
    doc: dict[str, Any], config: type, settings: tuple[str, ...], base_dir: Path | None
) -> tuple[dict[str, Any], set[Loc]]:
    """The document as the schema reads it, and the fields whose value came from elsewhere
    (a pool's copy of a top-level setting, a route made from the name): their problems are
    reported where the value was written."""
    doc = _drop_nulls(doc, config)
    storage = doc.get("storage")
    if isinstance(storage, dict) and base_dir is not None:
        path = storage.get("sqlite_path", "poolswitch.db")
        if isinstance(path, str) and path.strip() and not Path(path).is_absolute():
            doc["storage"] = {**storage, "sqlite_path": str(base_dir / path)}
    doc = _relative_to(doc, base_dir, CA_FILE)
    inherited: set[Loc] = set()
    if isinstance(doc.get("pools"), list):
        pools = []
        for i, pool in enumerate(doc["pools"]):
            if isinstance(pool, dict):
                pool = _relative_to(dict(pool), base_dir, CA_FILE)
                if "route" not in pool:
                    if _is(pool.get("name"), _POOL_NAME.match):
                        pool["route"] = "/" + pool["name"]
                    else:  # the name's problem is the one to report
                        inherited.add(("pools", i, "route"))
                for name in settings:
                    if name not in pool and name in doc:
                        pool[name] = doc[name]
                        inherited.add(("pools", i, name))
            pools.append(pool)
        doc["pools"] = pools
    return doc, inherited


def _relative_to(doc: dict[str, Any], base_dir: Path | None, name: str) -> dict[str, Any]:
    """A relative path in setting `name` as seen from the config file's directory."""
    path = doc.get(name)
    relative = isinstance(path, str) and path.strip() and not Path(path).is_absolute()
    if base_dir is not None and relative:
        return {**doc, name: str(base_dir / str(path))}
    return doc


def check(doc: dict[str, Any]) -> list[Problem]:
    """The problems across fields of a prepared document."""
    found: list[Problem] = []
    pools = doc.get("pools")
    if pools is None:
        if "upstream_base_url" not in doc:
            found.append((("upstream_base_url",), MISSING_URL))
        if "keys" not in doc:
            found.append((("keys",), MISSING_KEYS))
        found += _keys(doc.get("keys"), ("keys",))
        names = ["default"]
    else:
        if "keys" in doc:
            found.append((("keys",), "set keys inside each pool when pools is set"))
        names = []
        for i, pool in _entries(pools):
            at: Loc = ("pools", i)
            if "upstream_base_url" not in pool:
                found.append(
                    ((*at, "upstream_base_url"), MISSING_URL[:-1] + "; here or at the top level)")
                )
            if "keys" not in pool:
                found.append(((*at, "keys"), MISSING_KEYS))
            found += _keys(pool.get("keys"), (*at, "keys"))
        found += _unique(pools, ("pools",), "name", "duplicate name (also {})", _POOL_NAME.match)
        named = _unique(pools, ("pools",), "name", "", _POOL_NAME.match)
        again = {loc[1] for loc, _ in named}  # a duplicate name's route is no news
        listed = pools if isinstance(pools, list) else []
        routes = [{} if i in again else p for i, p in enumerate(listed)]
        found += _unique(routes, ("pools",), "route", "same route as {}", _route)
        names = [p["name"] for _, p in _entries(pools) if _is(p.get("name"), _POOL_NAME.match)]
    found += _callers(doc, names)
    storage = doc.get("storage")
    if (
        isinstance(storage, dict)
        and storage.get("backend") == "redis"
        and not storage.get("redis_url")
    ):
        found.append((("storage", "redis_url"), "is required with backend: redis"))
    return found


def _is(value: Any, test: Any) -> TypeGuard[str]:
    return isinstance(value, str) and bool(test(value))


def _entries(raw: Any) -> list[tuple[int, dict[Any, Any]]]:
    return (
        [(i, e) for i, e in enumerate(raw) if isinstance(e, dict)] if isinstance(raw, list) else []
    )


def _unique(raw: Any, at: Loc, name: str, message: str, valid: Any) -> list[Problem]:
    """Each entry's `name` differs from every earlier entry's (only valid values compared)."""
    seen: dict[str, int] = {}
    found: list[Problem] = []
    for i, entry in _entries(raw):
        value = entry.get(name)
        if not _is(value, valid):
            continue
        if value in seen:
            found.append(((*at, i, name), message.format(where((*at, seen[value])))))
        else:
            seen[value] = i
    return found


def _valid_value(value: str) -> bool:
    return bool(value) and not any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value)


def _keys(raw: Any, at: Loc) -> list[Problem]:
    return _unique(raw, at, "id", "duplicate id (also {})", _KEY_ID.match) + _unique(
        raw, at, "value", "same value as {}", _valid_value
    )


def _route(value: str) -> bool:
    return value.startswith("/")


def _token(value: str) -> bool:
    return len(value) >= 16 and all("!" <= c <= "~" for c in value)


def _callers(doc: dict[str, Any], pools: list[str]) -> list[Problem]:
    found: list[Problem] = []
    callers = doc.get("callers")
    ids: dict[str, int] = {}
    for i, caller in _entries(callers):
        caller_id = caller.get("id")
        if _is(caller_id, _KEY_ID.match):
            if caller_id in ids:
                found.append(
                    (
                        ("callers", i, "id"),
                        f"duplicate id {caller_id!r} (also callers[{ids[caller_id]}])",
                    )
                )
            else:
                ids[caller_id] = i
        token = caller.get("token")
        for other in ("admin_token", "metrics_token"):
            if _is(token, _token) and token == doc.get(other):
                found.append((("callers", i, "token"), f"same value as {other}"))
                break
        allowed = caller.get("pools")
        for j, name in enumerate(allowed if isinstance(allowed, list) else ()):
            if pools and _is(name, _POOL_NAME.match) and name not in pools:
                found.append(
                    (("callers", i, "pools", j), f"names no pool (pools: {', '.join(pools)})")
                )
    tokens = _unique(callers, ("callers",), "token", "same value as {}.token", _token)
    return found + tokens
