"""The `/status` and `/health` types carry every field of docs/status.example.json."""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Any

import pytest

from poolswitch_client import HealthDocument, Outage, StatusDocument

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "status.example.json"


def fields(cls: Any) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def typed_dicts(hint: Any) -> list[Any]:
    """The TypedDicts inside a field's type (`list[KeyStatus]`, `Outage | None`, ...)."""
    if typing.is_typeddict(hint):
        return [hint]
    return [found for arg in typing.get_args(hint) for found in typed_dicts(arg)]


def unknown_keys(value: Any, cls: Any, where: str) -> list[str]:
    """Every key of `value` (recursively) that is not a field of `cls`."""
    problems: list[str] = []
    hints = fields(cls)
    for key, item in value.items():
        if key not in hints:
            problems.append(f"{where}.{key}")
            continue
        [*inner] = typed_dicts(hints[key])
        items = item if isinstance(item, list) else [item]
        for i, element in enumerate(items):
            if isinstance(element, dict):
                assert len(inner) == 1, f"{where}.{key}: no TypedDict for an object"
                problems += unknown_keys(element, inner[0], f"{where}.{key}[{i}]")
    return problems


def missing_keys(value: Any, cls: Any, where: str) -> list[str]:
    """Every required field of `cls` that `value` lacks (recursively)."""
    problems = [f"{where}.{key}" for key in cls.__required_keys__ if key not in value]
    hints = fields(cls)
    for key, item in value.items():
        for inner in typed_dicts(hints.get(key)):
            for i, element in enumerate(item if isinstance(item, list) else [item]):
                if isinstance(element, dict):
                    problems += missing_keys(element, inner, f"{where}.{key}[{i}]")
    return problems


def test_every_key_of_the_example_status_is_a_field_of_the_types() -> None:
    document = json.loads(EXAMPLE.read_text())
    assert unknown_keys(document, StatusDocument, "status") == []
    assert missing_keys(document, StatusDocument, "status") == []


def test_the_single_pool_fields_are_optional() -> None:
    compatibility = {"strategy", "upstream_base_url", "provider", "outage", "keys"}
    assert StatusDocument.__optional_keys__ == compatibility | {"replicas"}
    assert StatusDocument.__required_keys__ == {
        "storage",
        "storage_health",
        "degraded",
        "pools",
        "callers",
        "config_version",
        "reloaded_at",
    }


def test_an_outage_is_typed_too() -> None:
    # the example's outages are null: check the type with one that is not
    document = json.loads(EXAMPLE.read_text())
    document["pools"][0]["outage"] = document["outage"] = {"kind": "upstream", "since": 1.5}
    assert unknown_keys(document, StatusDocument, "status") == []
    assert set(fields(Outage)) == {"kind", "since"}


def test_an_unknown_key_is_found() -> None:
    document = json.loads(EXAMPLE.read_text())
    document["pools"][0]["keys"][0]["secret"] = 1
    document["callers"][0]["token"] = "t"
    assert unknown_keys(document, StatusDocument, "status") == [
        "status.pools[0].keys[0].secret",
        "status.callers[0].token",
    ]


@pytest.mark.parametrize("status", ["ok", "degraded"])
def test_the_health_document(status: str) -> None:
    document = {
        "status": status,
        "keys_available": 1,
        "keys_total": 2,
        "pools": [{"name": "openai", "status": status, "keys_available": 1, "keys_total": 2}],
        "storage": {
            "backend": "redis",
            "status": status,
            "reason": None if status == "ok" else "redis at redis://127.0.0.1:6379: no answer",
            "since": None if status == "ok" else 1795491759.9,
            "outages": 0 if status == "ok" else 1,
        },
    }
    assert unknown_keys(document, HealthDocument, "health") == []
    assert missing_keys(document, HealthDocument, "health") == []
