"""The public API is exactly `poolswitch_client.__all__`, kept sorted (constants, classes, then
the rest, as ruff's RUF022 does)."""

from __future__ import annotations

import importlib.metadata
import types

import poolswitch_client


def test_all_is_sorted() -> None:
    def kind(name: str) -> tuple[int, str]:
        return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)

    assert poolswitch_client.__all__ == sorted(poolswitch_client.__all__, key=kind)


def test_every_public_name_is_exported_and_every_export_exists() -> None:
    public = {
        name
        for name, value in vars(poolswitch_client).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and name != "annotations"  # the `from __future__ import annotations` feature
    }
    assert public | {"__version__"} == set(poolswitch_client.__all__)


def test_exports_present_themselves_as_poolswitch_client() -> None:
    for name in poolswitch_client.__all__:
        value = getattr(poolswitch_client, name)
        if isinstance(value, type):
            assert value.__module__ == "poolswitch_client", name


def test_version_matches_the_distribution() -> None:
    assert poolswitch_client.__version__ == importlib.metadata.version("poolswitch-client")
