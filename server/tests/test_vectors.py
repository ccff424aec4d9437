"""The shared classifier test vectors (conformance/vectors/classifier.json), run against the
server's classifier; the Node embedded client runs the same file."""

from __future__ import annotations

import base64
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from poolswitch.classifier import PROFILES, Classifier, Verdict, detect_provider
from poolswitch.poolsettings import StatusRule

VECTORS_FILE = Path(__file__).parents[2] / "conformance/vectors/classifier.json"
GENERATOR = VECTORS_FILE.with_name("make_vectors.py")
DOCUMENT: dict[str, Any] = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))
VECTORS: list[dict[str, Any]] = DOCUMENT["vectors"]
KINDS = ("classify", "stream_start", "detect")
DEFAULT_COOLDOWN = 3600.0
TOLERANCE = 1e-6


def classifier(vector: dict[str, Any]) -> Classifier:
    config = vector.get("config", {})
    rules = tuple(
        StatusRule(r["status"], r["action"], r.get("match"), r.get("seconds"))
        for r in config.get("on_status", [])
    )
    return Classifier(
        vector["provider"], float(config.get("cooldown_seconds", DEFAULT_COOLDOWN)), rules
    )


def headers(vector: dict[str, Any]) -> dict[str, str]:
    return {name.lower(): value for name, value in vector.get("headers", {}).items()}


def body(vector: dict[str, Any]) -> bytes:
    if "body_b64" in vector:
        return base64.b64decode(vector["body_b64"])
    text: str = vector.get("body", "")
    return text.encode("utf-8")


def as_expect(verdict: Verdict) -> dict[str, Any]:
    return {
        "outcome": verdict.outcome.value,
        "cooldown": verdict.cooldown,
        "source": verdict.source,
        "failover": verdict.failover,
        "disable": verdict.disable,
        "backoff": verdict.backoff,
        "confirm": verdict.confirm,
    }


def check(got: Verdict | None, expect: dict[str, Any] | None) -> None:
    if expect is None:
        assert got is None, "content: no verdict"
        return
    assert got is not None, "an error: a verdict"
    actual = as_expect(got)
    assert set(actual) == set(expect), "an expectation names every verdict field"
    want, seconds = dict(expect), expect["cooldown"]
    if seconds is not None and actual["cooldown"] is not None:
        assert math.isclose(actual["cooldown"], seconds, rel_tol=0.0, abs_tol=TOLERANCE), actual
        want["cooldown"] = actual["cooldown"]
    assert actual == want


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector(vector: dict[str, Any]) -> None:
    kind = vector["kind"]
    if kind == "detect":
        assert detect_provider(vector["url"]) == vector["expect"]["profile"]
    elif kind == "classify":
        got = classifier(vector).classify(
            vector["status"], headers(vector), body(vector), vector["now"]
        )
        check(got, vector["expect"])
    else:
        assert kind == "stream_start"
        event = vector["event"].encode("utf-8")
        got_event = classifier(vector).classify_stream_start(event, headers(vector), vector["now"])
        check(got_event, vector["expect"])


def test_names_are_unique() -> None:
    names = [v["name"] for v in VECTORS]
    assert len(names) == len(set(names))


def test_enough_vectors() -> None:
    assert len(VECTORS) >= 180


def test_every_provider_and_kind_appears() -> None:
    assert {v["kind"] for v in VECTORS} == set(KINDS)
    providers = {v["provider"] for v in VECTORS if v["kind"] != "detect"}
    assert providers == set(PROFILES)
    for kind in ("classify", "stream_start"):
        assert {v["provider"] for v in VECTORS if v["kind"] == kind} == set(PROFILES), kind
    assert {v["expect"]["profile"] for v in VECTORS if v["kind"] == "detect"} == set(PROFILES)


def test_every_vector_is_well_formed() -> None:
    for v in VECTORS:
        prefix = "detect" if v["kind"] == "detect" else v["provider"]
        assert v["name"].startswith(prefix + "/"), v["name"]
        assert v["kind"] in KINDS and isinstance(v["rule"], str) and v["rule"], v["name"]
        if v["kind"] == "classify":
            assert isinstance(v["status"], int) and isinstance(v["now"], float), v["name"]
            assert ("body" in v) != ("body_b64" in v), v["name"]


def test_the_file_is_what_the_generator_writes() -> None:
    done = subprocess.run(
        [sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
