"""The embedded client's keyword options -> one validated `PoolConfig`, by the server's schema.

The options are the settings of one pool in Python spelling, validated exactly as a config file's
top level is (config.py: the schema, then crosschecks.py): a bad option raises the server's
`ConfigError`, one line per problem naming the option (`keys[1].value: same value as keys[0]`),
never a value. Keys may be plain strings: their ids are `key-1`, `key-2`, ... by position, never
derived from the value. No `${ENV}` expansion: the values are taken as given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from poolswitch import crosschecks, problems
from poolswitch.config import POOL_SETTINGS, TOP_LEVEL, Config, PoolConfig, schema_adapter
from poolswitch.errors import ConfigError


class _Default:
    """The type of `DEFAULT`: an option left to the server's default."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<server default>"


DEFAULT: Any = _Default()
"""An option not given: the server's default applies (typed Any so it fits every option)."""


def key_entries(keys: Any) -> Any:
    """`keys` as the schema reads them: a plain string becomes `{id: key-N, value}` (N its
    position from 1); mappings are taken as they are; anything else is left for the schema to
    name (`keys[2]: must be a mapping with id and value`)."""
    if isinstance(keys, (str, bytes)) or not isinstance(keys, Sequence):
        return keys  # the schema says: must be a list
    entries: list[Any] = []
    for n, key in enumerate(keys, start=1):
        if isinstance(key, str):
            entries.append({"id": f"key-{n}", "value": key})
        elif isinstance(key, Mapping):
            entries.append(dict(key))
        else:
            entries.append(key)
    return entries


def pool_config(options: Mapping[str, Any]) -> PoolConfig:
    """The one pool the options describe (named `default`, at route `/`, as a config file's
    single-pool form), or ConfigError listing every problem."""
    doc: dict[str, Any] = {name: value for name, value in options.items() if value is not DEFAULT}
    if "keys" in doc:
        doc["keys"] = key_entries(doc["keys"])
    if "on_status" in doc and isinstance(doc["on_status"], Sequence):
        doc["on_status"] = [dict(r) if isinstance(r, Mapping) else r for r in doc["on_status"]]
    doc, _ = crosschecks.prepare(doc, Config, POOL_SETTINGS, None)
    found: list[problems.Problem] = []
    config: Config | None = None
    try:
        config = schema_adapter().validate_python(doc)
    except ValidationError as exc:
        found += problems.from_error(exc)
    found += crosschecks.check(doc)
    if found or config is None:
        raise ConfigError(problems.lines(found, {}, TOP_LEVEL))
    return config.pools[0]
