"""The provider profiles' loader: the packaged file, and a broken one refused with its place."""

from __future__ import annotations

import copy
import json
from importlib import resources
from typing import Any

import pytest

from poolswitch.classifier import PROFILES, Classifier, Outcome
from poolswitch.profiles import RULES, ProfileError, load, parse
from poolswitch.verify import DEFAULT_PATHS, VERIFY_HEADERS


def document() -> Any:
    text = resources.files("poolswitch.profiles").joinpath("providers.json").read_text("utf-8")
    return json.loads(text)


def test_the_packaged_file_loads_every_profile() -> None:
    assert set(PROFILES) == {"openai", "anthropic", "gemini", "generic"}
    assert RULES.version == 1
    assert RULES.profiles["generic"].markers == dict(document()["markers"])
    assert DEFAULT_PATHS["gemini"] == "/v1beta/models" and DEFAULT_PATHS["generic"] is None
    assert VERIFY_HEADERS["anthropic"] == (("anthropic-version", "2023-06-01"),)


def test_a_profile_marker_overrides_a_common_one_and_keeps_the_rest() -> None:
    doc = document()
    doc["profiles"]["openai"]["markers"]["insufficient_quota"] = "rate"
    rules = parse(doc)
    assert rules.profiles["openai"].markers["insufficient_quota"] == "rate"
    assert rules.profiles["anthropic"].markers["insufficient_quota"] == "quota"


def test_the_classifier_reads_its_tables_from_the_file() -> None:
    verdict = Classifier("openai", 3600).classify(
        429, {}, b'{"error": {"code": "insufficient_quota"}}', 0.0
    )
    assert verdict.outcome is Outcome.QUOTA_EXHAUSTED and verdict.source == "cooldown_seconds"


def broken(change: Any) -> Any:
    doc = copy.deepcopy(document())
    change(doc)
    return doc


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["profiles"]["gemini"]["markers"].update(unavailable="overload"),
            "profiles.gemini.markers.unavailable: unknown kind 'overload'",
        ),
        (
            lambda d: d["kinds"]["rate"].update(outcome="slow"),
            "kinds.rate.outcome: unknown outcome 'slow'",
        ),
        (
            lambda d: d["resets"]["headers"][1].update(format="minutes"),
            "resets.headers[1].format: unknown format 'minutes'",
        ),
        (lambda d: d["resets"]["windows"][0].pop("name"), "resets.windows[0].name: missing"),
        (
            lambda d: d["refine_rate"]["rules"][0].update(text_pattern="(unclosed"),
            "refine_rate.rules[0].text_pattern: not a regular expression",
        ),
        (lambda d: d["status_kinds"].update(teapot="client"), "status_kinds.teapot: must be"),
        (lambda d: d["limits"].update(body_bytes="64k"), "limits.body_bytes: must be an integer"),
        (lambda d: d.pop("markers"), "markers: missing"),
        (
            lambda d: d["resets"]["body_fields"][0].update(format="date_utc"),
            "resets.body_fields[0].format: unknown format 'date_utc'",
        ),
        (
            lambda d: d["kinds"].pop("client"),
            "kinds: the kind 'client' is missing (the classifier names it)",
        ),
    ],
)
def test_a_broken_file_is_refused_naming_the_place(change: Any, message: str) -> None:
    with pytest.raises(ProfileError) as caught:
        parse(broken(change))
    assert str(caught.value).startswith("providers.json: ")
    assert message in str(caught.value)


def test_text_that_is_not_json_is_refused() -> None:
    with pytest.raises(ProfileError, match=r"providers\.json: not JSON"):
        load("{")
