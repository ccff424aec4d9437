"""The environment's part in a config: `POOLSWITCH_<SETTING>` overrides and `${ENV}` references.

    POOLSWITCH_LISTEN_PORT=9000          replaces the top-level listen_port (read as YAML: a
                                         number; `null` is null)
    POOLSWITCH_STORAGE_BACKEND=sqlite    replaces storage.backend (also _STORAGE_SQLITE_PATH)
    value: ${OPENAI_KEY}                 any string in the document; ${NAME:-default} too

The overrides are read by pydantic-settings (an `EnvSettingsSource` over the given mapping, not
`os.environ`, so tests pass their own); the values are validated with the rest of the document,
and a problem with one names the variable: `listen_port (from POOLSWITCH_LISTEN_PORT): ...`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, create_model

if TYPE_CHECKING:
    from pydantic_settings import BaseSettings

from poolswitch.fieldtypes import scalar

PREFIX = "POOLSWITCH_"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

Loc = tuple[str | int, ...]


@functools.cache
def _overrides_model(
    scalars: tuple[str, ...], storage_parts: tuple[str, ...]
) -> type[BaseSettings]:
    """The settings an environment variable may override, each taken as raw text."""
    from pydantic_settings import BaseSettings, SettingsConfigDict

    parts: dict[str, Any] = {name: (Any, None) for name in storage_parts}
    storage = create_model("StorageOverrides", **parts)
    settings: dict[str, Any] = {name: (Any, None) for name in scalars}
    model = create_model(
        "Overrides", __base__=BaseSettings, storage=(storage | None, None), **settings
    )
    model.model_config = SettingsConfigDict(
        env_prefix=PREFIX,
        env_nested_delimiter="_",
        env_nested_max_split=1,  # POOLSWITCH_STORAGE_SQLITE_PATH -> storage.sqlite_path
        extra="ignore",
    )
    return model


def _read(env: Mapping[str, str], model: type[BaseSettings]) -> dict[str, Any]:
    """What pydantic-settings' environment source finds for `model` in `env` (a mapping, not
    os.environ). Imported here: `poolswitch validate` starts faster without it."""
    from pydantic.fields import FieldInfo
    from pydantic_settings import EnvSettingsSource
    from pydantic_settings.sources.utils import parse_env_vars

    class Source(EnvSettingsSource):
        def _load_env_vars(self) -> Mapping[str, str | None]:
            return parse_env_vars(
                env, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str
            )

        def decode_complex_value(self, field_name: str, field: FieldInfo, value: Any) -> Any:
            return {}  # POOLSWITCH_STORAGE itself is not a setting: only its parts are

    return Source(model)()


def apply_overrides(
    doc: dict[str, Any],
    env: Mapping[str, str],
    scalars: tuple[str, ...],
    storage_parts: tuple[str, ...],
) -> tuple[dict[str, Any], dict[str, str]]:
    """The document with POOLSWITCH_<SETTING> applied for each of `scalars` (top-level
    settings) and `storage_parts`, and which variable set which field."""
    if not any(name.upper().startswith(PREFIX) for name in env):
        return doc, {}
    found = _read(env, _overrides_model(scalars, storage_parts))
    origin: dict[str, str] = {}
    for name, value in found.items():
        if name == "storage":
            parts = value.model_dump() if isinstance(value, BaseModel) else dict(value or {})
            parts = {k: v for k, v in parts.items() if v is not None}
            if not parts:
                continue
            storage = doc.get("storage")
            doc["storage"] = {**(storage if isinstance(storage, dict) else {}), **parts}
            for part in parts:
                origin[f"storage.{part}"] = f"{PREFIX}STORAGE_{part.upper()}"
        elif name in scalars and value is not None:
            doc[name] = scalar(value)
            origin[name] = PREFIX + name.upper()
    return doc, origin


def expand(doc: Any, env: Mapping[str, str]) -> tuple[Any, list[tuple[Loc, str]]]:
    """Every `${NAME}` / `${NAME:-default}` in a string of the document replaced, and the
    (field, variable) of each reference to an unset variable (replaced by "")."""
    unset: list[tuple[Loc, str]] = []

    def walk(value: Any, loc: Loc) -> Any:
        if isinstance(value, str) and "${" in value:

            def substitute(match: re.Match[str]) -> str:
                name, default = match.group(1), match.group(2)
                if name in env:
                    return env[name]
                if default is not None:
                    return default
                unset.append((loc, name))
                return ""

            return _ENV_REF.sub(substitute, value)
        if isinstance(value, dict):
            return {k: walk(v, (*loc, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, (*loc, i)) for i, v in enumerate(value)]
        return value

    return walk(doc, ()), unset
