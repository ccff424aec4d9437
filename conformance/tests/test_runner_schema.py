"""runner.schema: loading cases strictly, with messages that name the place."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from poolswitch_testing.behaviours import blob_bytes
from poolswitch_testing.conformance.matchers import MISSING
from poolswitch_testing.conformance.schema import (
    CHAT,
    CaseError,
    load_cases,
    parse_file,
    placeholders,
    substitute,
)

GOOD = """
description: a file
cases:
  - name: one
    keys: [alpha, {id: beta, weight: 3}]
    config: {strategy: quota_failover, storage: {backend: sqlite}}
    upstream:
      alpha: {kind: rate_limit, headers: {Retry-After: "2"}}
    steps:
      - request: {}
        expect: {status: 200, key_id: beta, upstream: [{key_id: alpha, body_text: hé}]}
      - stream: {method: GET, path: /s}
        repeat: 2
        expect: {events: [a, {event: x}], events_spread: 0.5}
      - wait: 0.5
      - restart: {}
      - script: {beta: [{kind: ok}]}
      - health:
      - status: {proxy: dead, timeout: 2, token: tok-caller}
    expect_upstream: {keys: [alpha, beta], key_counts: {alpha: 1}}
"""


def problems_of(text: str) -> list[str]:
    with pytest.raises(CaseError) as info:
        parse_file("t.yaml", text)
    return list(info.value.problems)


def case_with(body: str) -> str:
    return "cases:\n  - name: c\n" + "".join(f"    {line}\n" for line in body.strip().splitlines())


def test_a_good_file() -> None:
    [case] = parse_file("failover.yaml", GOOD)
    assert case.id == "failover/one"
    assert [(k.id, k.weight) for k in case.keys] == [("alpha", None), ("beta", 3)]
    assert case.upstream["alpha"][0]["kind"] == "rate_limit"
    assert [s.action for s in case.steps] == [
        "request",
        "stream",
        "wait",
        "restart",
        "script",
        "health",
        "status",
    ]
    request, stream, wait = case.steps[0], case.steps[1], case.steps[2]
    assert request.call is not None and request.call.method == "POST"
    assert request.call.body_kind == "json" and request.call.body == CHAT
    assert request.expect.error is None and request.expect.json is MISSING
    upstream = request.expect.upstream
    assert upstream == [
        {
            "key_id": "alpha",
            "body_sha256": hashlib.sha256("hé".encode()).hexdigest(),
            "body_length": 3,
        }
    ]
    assert stream.repeat == 2 and stream.call is not None and stream.call.body_kind is None
    assert wait.seconds == 0.5
    status = case.steps[6].call
    assert status is not None and status.dead_proxy and status.timeout == 2
    assert status.token == "tok-caller" and request.call.token is None
    assert case.expect_upstream.key_counts == {"alpha": 1}


def test_defaults() -> None:
    [case] = parse_file("t.yaml", case_with("steps: [{stream: {}}]"))
    assert [k.id for k in case.keys] == ["alpha", "beta", "gamma"]
    call = case.steps[0].call
    assert call is not None and call.path == "/v1/chat/completions"
    assert call.body == {**CHAT, "stream": True}


def test_unknown_fields_are_errors_with_their_path() -> None:
    text = case_with("""
colour: red
steps:
  - request: {methd: GET}
    expect: {stauts: 200, error: {cod: x}}
""")
    assert sorted(problems_of(text)) == [
        "t.yaml: cases[0].colour: unknown field",
        "t.yaml: cases[0].steps[0].expect.error.cod: unknown field",
        "t.yaml: cases[0].steps[0].expect.stauts: unknown field",
        "t.yaml: cases[0].steps[0].request.methd: unknown field",
    ]


def test_duplicate_yaml_keys_are_errors() -> None:
    [line] = problems_of("cases:\n  - name: a\n    name: b\n    steps: [{wait: 1}]\n")
    assert "duplicate key 'name'" in line and "line 3" in line


def test_behaviours_are_checked() -> None:
    text = case_with("""
upstream: {alpha: [{kind: explode}], zeta: [{kind: ok}]}
steps: [{wait: 1}]
""")
    assert problems_of(text) == [
        "t.yaml: cases[0].upstream.alpha[0]: unknown behaviour kind: 'explode'",
        "t.yaml: cases[0].upstream.zeta: not a key of this case (alpha, beta, gamma)",
    ]


def test_proxy_settings_are_checked_by_the_server() -> None:
    text = case_with("""
config: {strategy: nope, retry_atempts: 2, keys: []}
steps: [{wait: 1}]
""")
    lines = problems_of(text)
    assert lines == ["t.yaml: cases[0].config.keys: set by the runner"]
    lines = problems_of(case_with("config: {strategy: nope, retry_atempts: 2}\nsteps: [{wait: 1}]"))
    assert "t.yaml: cases[0].config.retry_atempts: unknown field" in lines
    assert any(line.startswith("t.yaml: cases[0].config.strategy: ") for line in lines)


def test_steps_need_exactly_one_action() -> None:
    assert problems_of(case_with("steps: [{wait: 1, restart: {}}]")) == [
        "t.yaml: cases[0].steps[0]: needs exactly one of: request, stream, health, status, "
        "metrics, wait, restart, kill, script, background"
    ]
    assert problems_of(case_with("steps: [{wait: 1, expect: {}}]")) == [
        "t.yaml: cases[0].steps[0].expect: unknown field"
    ]


def test_values_are_checked() -> None:
    text = case_with("""
steps:
  - request: {path: v1, text: 3, json: {}}
    repeat: 0
    expect: {status: {$rx: 1}, events: [a]}
  - wait: 99
""")
    assert problems_of(text) == [
        "t.yaml: cases[0].steps[0].request.path: must start with /",
        "t.yaml: cases[0].steps[0].request.text: must be a string",
        "t.yaml: cases[0].steps[0].request: give one body, not json and text",
        "t.yaml: cases[0].steps[0].expect.status: unknown matcher $rx (one of $absent, $all, "
        "$contains, $from_now, $one_of, $present, $range, $re)",
        "t.yaml: cases[0].steps[0].repeat: must be an integer in [1, 200]",
        "t.yaml: cases[0].steps[0].expect.events: only a stream step has events",
        "t.yaml: cases[0].steps[1].wait: must be in [0, 30], got 99",
    ]


def test_placeholders_must_be_known() -> None:
    text = case_with("""
upstream: {alpha: [{kind: text, body: "{{key:zeta}} {{key:alpha}}"}]}
steps: [{wait: 1}]
""")
    assert problems_of(text) == [
        "t.yaml: cases[0]: unknown placeholder {{key:zeta}} (key:ID, upstream or dead_url)"
    ]


def test_duplicate_case_names() -> None:
    text = "cases:\n  - {name: a, steps: [{wait: 1}]}\n  - {name: a, steps: [{wait: 1}]}\n"
    assert problems_of(text) == ["t.yaml: cases[1].name: duplicate case name 'a'"]


def test_substitute_and_placeholders() -> None:
    value = {"a": ["x {{key:alpha}} y", {"b": "{{dead_url}}"}], "n": 3, "o": "{{other}}"}
    assert placeholders(value) == {"key:alpha", "dead_url", "other"}
    table = {"key:alpha": "sk-1", "dead_url": "http://d"}
    assert substitute(value, table) == {
        "a": ["x sk-1 y", {"b": "http://d"}],
        "n": 3,
        "o": "{{other}}",
    }


def test_body_blob_upstream_expectation() -> None:
    [case] = parse_file(
        "t.yaml", case_with("steps: [{request: {}, expect: {upstream: [{body_blob: 300}]}}]")
    )
    assert case.steps[0].expect.upstream == [
        {"body_sha256": hashlib.sha256(blob_bytes(300)).hexdigest(), "body_length": 300}
    ]


def test_the_shipped_cases_load() -> None:
    cases = load_cases(Path(__file__).resolve().parent.parent / "cases")
    assert len(cases) >= 122  # issue 11: at least 120 in all
    assert len({case.id for case in cases}) == len(cases)


def test_a_token_must_be_a_non_empty_string() -> None:
    text = case_with("""
steps:
  - request: {token: ""}
  - health: {token: 3}
""")
    assert problems_of(text) == [
        "t.yaml: cases[0].steps[0].request.token: must be a non-empty string",
        "t.yaml: cases[0].steps[1].health.token: must be a non-empty string",
    ]


def test_keys_and_wrong_types_each_have_a_line() -> None:
    text = case_with("""
keys: [alpha, alpha, {id: b, weight: 0}, "a b"]
steps:
  - request: {headers: {a: 1}}
    expect: {upstream: [{body_text: 3, key_id: {$re: 1}}], error: 4}
  - stream: {}
    expect: {events: [3, {x: 1}]}
""")
    assert problems_of(text) == [
        "t.yaml: cases[0].keys[2].weight: must be an integer in [1, 1000]",
        "t.yaml: cases[0].keys[3].id: must be a key id (1-64 of letters, digits . _ : -)",
        "t.yaml: cases[0].steps[0].request.headers.a: must be a string",
        "t.yaml: cases[0].steps[0].expect.error: must be a mapping (code, status, retry_after)",
        "t.yaml: cases[0].steps[0].expect.upstream[0].key_id: $re needs a pattern string",
        "t.yaml: cases[0].steps[0].expect.upstream[0].body_text: must be a string",
        "t.yaml: cases[0].steps[1].expect.events[0]: "
        "must be the data (a string) or {event, data, id}",
        "t.yaml: cases[0].steps[1].expect.events[1].x: unknown field",
        "t.yaml: cases[0].keys[1]: duplicate key id 'alpha'",
    ]


def test_a_file_that_is_not_a_list_of_cases() -> None:
    assert problems_of("x: 1\ncases: [3]\n") == [
        "t.yaml: x: unknown field",
        "t.yaml: cases[0]: must be a mapping (a case)",
    ]


POOLS = """
cases:
  - name: pools
    pools:
      - {name: a, route: /a, keys: [alpha, beta], settings: {strategy: least_used}}
      - {name: b, keys: [alpha]}
    client: {max_retries: 2, timeout: 5}
    upstream: {"a:alpha": {kind: rate_limit}}
    steps:
      - request: {path: /a/v1/models, client: {pool: b, max_retries: 0}}
        expect: {upstream_keys: ["b:alpha"]}
      - background: {path: /a/slow, token: t}
      - script: {"b:alpha": [{kind: ok, json: {k: "{{key:b:alpha}}", u: "{{upstream}}"}}]}
    expect_upstream: {key_counts: {"a:beta": 0}}
"""


def test_pools_and_client_options() -> None:
    [case] = parse_file("pools.yaml", POOLS)
    assert [p.name for p in case.pools] == ["a", "b"]
    assert [k.id for k in case.keys] == ["a:alpha", "a:beta", "b:alpha"]
    assert [k.proxy_id for k in case.keys] == ["alpha", "beta", "alpha"]
    assert case.pools[0].route == "/a" and case.pools[1].route is None
    assert case.pools[0].settings == {"strategy": "least_used"}
    call = case.steps[0].call
    assert call is not None and call.client == {"max_retries": 0, "timeout": 5.0, "pool": "b"}
    assert case.steps[1].action == "background"


def test_pool_keys_are_named_by_pool() -> None:
    text = POOLS.replace('"a:alpha": {kind', '"alpha": {kind').replace(
        "- {name: b, keys: [alpha]}",
        "- {name: b, keys: [alpha, alpha]}\n      - {name: b, keys: [x]}",
    )
    lines = problems_of(text.replace("client: {max_retries: 2", "client: {max_retries: 11"))
    assert lines == [
        "t.yaml: cases[0].client.max_retries: must be an integer in [0, 10]",
        "t.yaml: cases[0].pools[1].keys[1]: duplicate key id 'alpha'",
        "t.yaml: cases[0].pools[2].name: duplicate pool name 'b'",
        "t.yaml: cases[0].upstream.alpha: not a key of this case (a:alpha, a:beta, b:alpha, b:x)",
        # and the proxy's own loader, which the case's config is checked with, says so too
        "t.yaml: cases[0].config.pools[2].name: duplicate name (also pools[1])",
    ]


REPLICAS = """
cases:
  - name: r
    replicas: 3
    config: {storage: {backend: redis}}
    steps:
      - request: {}
        replica: 2
        repeat: 2
      - status: {}
        replica: 1
        eventually: 2
      - kill: {}
        replica: 1
      - restart: {}
      - background: {}
        replica: 2
      - health: {}
"""


def test_replicas_and_the_steps_that_name_one() -> None:
    [case] = parse_file("t.yaml", REPLICAS)
    assert case.replicas == 3 and case.uses_redis
    assert [(s.action, s.replica, s.eventually) for s in case.steps] == [
        ("request", 2, None),
        ("status", 1, 2.0),
        ("kill", 1, None),
        ("restart", 0, None),
        ("background", 2, None),
        ("health", 0, None),
    ]
    assert case.steps[0].label() == "request POST /v1/chat/completions, replica 2"
    assert case.steps[2].label() == "kill, replica 1" and case.steps[3].label() == "restart"
    [single] = parse_file("t.yaml", case_with("steps: [{status: {}}]"))
    assert single.replicas == 1 and not single.uses_redis


def test_replica_problems_name_the_field() -> None:
    text = case_with("""
replicas: 2
config: {storage: {backend: sqlite}}
steps:
  - wait: 1
    replica: 1
  - status: {}
    replica: 2
  - request: {}
    eventually: 1
  - kill: {now: true}
""")
    assert problems_of(text) == [
        "t.yaml: cases[0].steps[0].replica: a wait step talks to no proxy (no replica)",
        "t.yaml: cases[0].steps[2].eventually: only a health, status or metrics step is "
        "retried until it matches",
        "t.yaml: cases[0].steps[3].kill: takes no settings (write `kill: {}`)",
        "t.yaml: cases[0].replicas: needs config.storage.backend: redis (replicas share it)",
        "t.yaml: cases[0].steps[1].replica: no replica 2: the case has 2, from 0",
    ]
    text = case_with("""
replicas: 4
config: {storage: {backend: redis, redis_url: "redis://h:1/0", namespace: n}}
steps: [{status: {}, replica: 3, eventually: 31}]
""")
    assert problems_of(text) == [
        "t.yaml: cases[0].replicas: must be an integer in [1, 3]",
        "t.yaml: cases[0].steps[0].replica: must be an integer in [0, 2]",
        "t.yaml: cases[0].steps[0].eventually: must be in [0.1, 30], got 31",
        "t.yaml: cases[0].config.storage.redis_url: set by the runner",
        "t.yaml: cases[0].config.storage.namespace: set by the runner",
    ]


def test_tags_of_the_file_and_of_a_case_add_up() -> None:
    text = "tags: [proxy]\n" + case_with("steps: [{status: {}}]")
    [case] = parse_file("t.yaml", text)
    assert case.tags == {"proxy"}
    [case] = parse_file("t.yaml", case_with("tags: [proxy]\nsteps: [{status: {}}]"))
    assert case.tags == {"proxy"}
    [case] = parse_file("t.yaml", case_with("steps: [{status: {}}]"))
    assert case.tags == frozenset()


def test_an_unknown_tag_is_an_error() -> None:
    found = problems_of("tags: [proxi]\n" + case_with("steps: [{status: {}}]"))
    assert found == ["t.yaml: tags: must be a list of tags (proxy)"]
    found = problems_of(case_with("tags: proxy\nsteps: [{status: {}}]"))
    assert found == ["t.yaml: cases[0].tags: must be a list of tags (proxy)"]
