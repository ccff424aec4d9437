"""runner.cli end to end: real proxy, fake upstream, the raw client; and the report's rules."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from poolswitch_testing.conformance.cli import main

CASES = """
cases:
  - name: passes
    upstream: {alpha: [{kind: rate_limit, headers: {Retry-After: "30"}}]}
    steps:
      - request: {}
        expect: {status: 200, key_id: beta, attempts: 2, upstream_keys: [alpha, beta]}
  - name: fails
    steps:
      - request: {}
        expect: {status: 201, key_id: alpha}
  - name: leaks
    upstream: {alpha: [{kind: echo}]}
    steps:
      - request: {}
        expect: {status: 200}
"""


@pytest.fixture
def cases(tmp_path: Path) -> Path:
    directory = tmp_path / "cases"
    directory.mkdir()
    (directory / "demo.yaml").write_text(CASES)
    return directory


def run(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(["--sdk", "raw", *args], out=out)
    return code, out.getvalue()


def test_a_run_reports_each_failure_then_the_totals(cases: Path, tmp_path: Path) -> None:
    known = tmp_path / "known.txt"
    known.write_text("")
    code, out = run("--cases", str(cases), "--known-failing", str(known))
    assert code == 1
    lines = out.splitlines()
    assert lines[-2:] == ["Total cases: 3", "1 passed, 2 failed"]
    assert any(line.startswith("FAILED: demo/fails") for line in lines)
    assert "    step 1 (request POST /v1/chat/completions): status: expected 201, seen 200" in lines
    assert (
        "    step 1 (request POST /v1/chat/completions): the answer contains the value of alpha"
        in lines
    )
    assert "sk-conf-" not in out  # the runner never prints a key value either


def test_known_failing_cases_are_accepted_and_must_keep_failing(
    cases: Path, tmp_path: Path
) -> None:
    known = tmp_path / "known.txt"
    known.write_text("demo/fails  # the case expects 201\ndemo/passes  # stale entry\n")
    code, out = run("--cases", str(cases), "--known-failing", str(known), "--run", "demo/[fp]*")
    assert code == 1
    assert "known failing: demo/fails (" in out
    assert "FAILED: demo/passes" in out and "but passed: take it off the list" in out
    assert out.splitlines()[-1] == "1 passed, 1 failed"


def test_a_known_failing_pattern_that_matches_nothing_stops_the_run(
    cases: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    known = tmp_path / "known.txt"
    known.write_text("demo/nope  # gone\n")
    code, out = run("--cases", str(cases), "--known-failing", str(known))
    assert code == 2 and out == ""
    assert "'demo/nope' matches no case" in capsys.readouterr().err


def test_list_and_narrow(cases: Path, tmp_path: Path) -> None:
    code, out = run(
        "--cases",
        str(cases),
        "--known-failing",
        str(tmp_path / "none.txt"),
        "--list",
        "--run",
        "demo/p*",
        "--run",
        "demo/l*",
    )
    assert code == 0
    assert out.splitlines() == ["demo/passes", "demo/leaks"]


def test_invalid_cases_stop_the_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.yaml").write_text("cases: [{name: x, steps: [{wiat: 1}]}]\n")
    code, _ = run("--cases", str(tmp_path))
    assert code == 2
    assert "bad.yaml: cases[0].steps[0]: needs exactly one of" in capsys.readouterr().err


OPTIONS = """
cases:
  - name: options
    keys: [alpha, beta]
    config: {callers: [{id: web, token: tok-web-0123456789abcdef}]}
    client: {token: tok-web-0123456789abcdef, timeout: 5}
    upstream: {alpha: [{kind: ok, delay: 1}]}
    steps:
      - background: {}
      - wait: 0.3
      - request: {}
        expect:
          status: 200
          key_id: beta
          seconds: {$range: [0, 0.9]}
          upstream: [{key_id: beta, headers: {x-poolswitch-token: {$absent: true}}}]
      - request: {client: {token: tok-wrong-0123456789abcdef}}
        expect: {status: 401, error: {code: unauthorized}}
    expect_upstream: {keys: [alpha, beta]}
  - name: sdk
    sdk_only: true
    steps: [{request: {}, expect: {status: 201}}]
"""


def test_client_options_background_and_sdk_only(tmp_path: Path) -> None:
    directory = tmp_path / "cases"
    directory.mkdir()
    (directory / "demo.yaml").write_text(OPTIONS)
    code, out = run("--cases", str(directory), "--known-failing", str(tmp_path / "none.txt"))
    assert out.splitlines()[-2:] == ["Total cases: 1", "1 passed, 0 failed"], out
    assert "(1 about SDK behaviour skipped)" in out.splitlines()[0]
    assert code == 0


REPLICAS = """
cases:
  - name: shared
    replicas: 2
    keys: [alpha, beta]
    config: {strategy: quota_failover, storage: {backend: redis}}
    upstream: {alpha: [{kind: quota_exhausted}, {kind: ok}]}
    steps:
      - request: {}
        expect: {status: 200, key_id: beta, upstream_keys: [alpha, beta]}
      - status: {}
        replica: 1
        eventually: 2
        expect: {json: {keys: [{id: alpha, state: cooling_down}, {id: beta}]}}
      - kill: {}
        replica: 1
      - request: {}
        replica: 1
        expect: {status: 200, key_id: beta, upstream_keys: [beta]}
  - name: wrong
    replicas: 2
    keys: [alpha, beta]
    config: {strategy: quota_failover, storage: {backend: redis}}
    upstream: {alpha: [{kind: quota_exhausted}, {kind: ok}]}
    steps:
      - request: {}
        replica: 1
      - status: {}
        eventually: 0.3
        expect: {json: {keys: [{id: alpha, state: available}, {id: beta}]}}
"""


def test_replicas_share_one_redis_server(tmp_path: Path) -> None:
    directory = tmp_path / "cases"
    directory.mkdir()
    (directory / "demo.yaml").write_text(REPLICAS)
    code, out = run("--cases", str(directory), "--known-failing", str(tmp_path / "none.txt"))
    assert out.splitlines()[-2:] == ["Total cases: 2", "1 passed, 1 failed"], out
    assert (
        '    step 2 (status): json.keys[0].state: expected "available", seen "cooling_down" '
        "(still, after 0.3s)" in out.splitlines()
    ), out
    assert code == 1


def test_no_redis_server_stops_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "cases"
    directory.mkdir()
    (directory / "demo.yaml").write_text(REPLICAS)
    monkeypatch.setenv("PATH", str(tmp_path))  # a real PATH without redis-server on it
    code, out = run("--cases", str(directory), "--known-failing", str(tmp_path / "none.txt"))
    assert code == 2, out
    assert capsys.readouterr().err.startswith(
        "conformance: redis-server not found: apt-get install redis-server "
        "(storage redis in demo/shared and 1 more)"
    )
