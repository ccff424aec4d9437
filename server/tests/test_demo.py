"""`poolswitch demo` (democli.py, demo.py, demo_burst.py, demo_upstream.py): the real command in
a subprocess, its JSON summary, its live view under a real terminal (tmux), Ctrl-C, and that
rich stays off the proxy's import path.

The terminal test saves the screen it saw to `<test tmp>/demo-screen.txt`; with
POOLSWITCH_UPDATE_DEMO_SCREEN=1 it also writes it to docs/demo-screen.txt (the capture the
README shows), and otherwise checks that the committed capture still shows what the live view
shows (the key ids and their states), so the docs cannot drift from the product."""

from __future__ import annotations

import json
import os
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from poolswitch.classifier import Classifier
from poolswitch.demo_burst import Tally, parse_trace, request_body
from poolswitch.demo_upstream import (
    KEYS,
    QUOTA_BODY,
    RETRY_AFTER_SECONDS,
    invalid_key_body,
    rate_limit_body,
)

from conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
SCREEN_DOC = ROOT / "docs" / "demo-screen.txt"
DEMO = [sys.executable, "-m", "poolswitch", "demo"]
STATES = {"out-of-quota": "cooling_down", "invalid": "disabled", "healthy": "available"}
"""Where the live view shows these keys once the first requests have failed over."""


def run_demo(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*DEMO, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_the_json_summary_shows_each_failover_cause_and_no_caller_error() -> None:
    port = free_port()
    started = time.monotonic()
    done = run_demo("--json", "--exit-after-summary", "--port", str(port))
    assert done.returncode == 0, done.stdout + done.stderr
    assert time.monotonic() - started < 30
    doc: dict[str, Any] = json.loads(done.stdout)  # one JSON object, nothing else
    assert doc["proxy_url"] == f"http://127.0.0.1:{port}"
    assert doc["requests"] == doc["succeeded"] == 40
    assert doc["streamed"] == 8
    assert doc["caller_errors"] == 0 and doc["errors"] == []
    causes = doc["failovers_by_cause"]
    assert causes["quota_exhausted"] >= 1
    assert causes["rate_limited"] >= 1
    assert causes["key_invalid"] >= 1
    assert doc["failovers"] == sum(causes.values())
    assert doc["first_failover_seconds"] < 10
    keys = {key["id"]: key for key in doc["keys"]}
    assert [key["id"] for key in doc["keys"]] == [key.id for key in KEYS]
    assert keys["out-of-quota"]["state"] == "cooling_down"
    assert keys["out-of-quota"]["reason"] == "quota_exhausted"
    assert keys["out-of-quota"]["returns_in_seconds"] > 3000  # cooldown_seconds: no reset named
    assert keys["out-of-quota"]["why"].startswith("out of quota: parked, back in ")
    assert keys["invalid"]["state"] == "disabled"
    assert keys["invalid"]["reason"] == "key_invalid"
    assert keys["rate-limited"]["state"] == "available"  # its Retry-After passed: back
    assert keys["rate-limited"]["successes"] >= 1
    assert doc["served_by"]["healthy"] >= 1
    assert f"http://127.0.0.1:{port}/v1" in doc["try"]["python"]
    assert f"http://127.0.0.1:{port}/v1/chat/completions" in doc["try"]["curl"]
    for key in KEYS:  # no key value in anything the demo prints
        assert key.value not in done.stdout + done.stderr
        assert key.value[-12:] not in done.stdout + done.stderr
    assert "Traceback" not in done.stderr


def test_no_traffic_only_serves_and_a_taken_port_is_one_line_and_exit_1() -> None:
    done = run_demo("--no-traffic", "--json", "--exit-after-summary")
    assert done.returncode == 0, done.stdout + done.stderr
    doc = json.loads(done.stdout)
    assert set(doc) == {"proxy_url", "try"}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        done = run_demo("--no-traffic", "--port", str(taken.getsockname()[1]))
    assert done.returncode == 1
    assert "cannot listen on 127.0.0.1:" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_ctrl_c_during_the_burst_exits_0_without_a_traceback() -> None:
    with subprocess.Popen(
        [*DEMO, "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as demo:
        assert demo.stderr is not None
        ready, _, _ = select.select([demo.stderr], [], [], 20)  # the burst takes about 5 s
        assert ready, "no warning from the proxy: the burst did not start"
        first = demo.stderr.readline()  # a key disabled: the burst is under way
        demo.send_signal(signal.SIGINT)
        out, err = demo.communicate(timeout=30)
        err = first + err
    assert demo.returncode == 0, out + err
    assert "key invalid disabled" in first
    assert out == ""  # stopped before the summary
    assert "Traceback" not in err


def test_the_two_lines_to_try_work_against_the_serving_demo() -> None:
    curl = shutil.which("curl")
    if curl is None:  # fail, never skip: CI installs it (noxfile: tests)
        pytest.fail("curl is missing: apt-get install curl", pytrace=False)
    with subprocess.Popen(
        [*DEMO, "--no-traffic", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as demo:
        try:
            assert demo.stdout is not None
            ready, _, _ = select.select([demo.stdout], [], [], 20)
            assert ready, "the demo printed nothing"
            lines = json.loads(demo.stdout.readline())["try"]
            sdk = subprocess.run(
                [sys.executable, "-c", lines["python"]],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            assert sdk.returncode == 0, sdk.stderr
            assert sdk.stdout == "Hello from the PoolSwitch demo upstream!\n"
            answer = subprocess.run(
                ["sh", "-c", lines["curl"]], capture_output=True, text=True, timeout=30
            )
            assert answer.stdout.startswith("HTTP/1.1 200"), answer.stdout + answer.stderr
            assert "x-poolswitch-trace: " in answer.stdout
            assert "Hello from the PoolSwitch demo upstream!" in answer.stdout
        finally:
            demo.send_signal(signal.SIGINT)
            out, err = demo.communicate(timeout=30)
    assert demo.returncode == 0, out + err
    assert "Traceback" not in err


def test_bad_arguments_exit_2() -> None:
    for args in (["--port", "70000"], ["--requests", "0"], ["--requests", "many"]):
        done = run_demo(*args, timeout=20)
        assert done.returncode == 2, args
        assert "error: argument" in done.stderr


def test_the_proxy_commands_do_not_import_the_demos_libraries() -> None:
    """rich (the live view) and aiohttp (the demo's upstream and traffic) load with the demo
    alone: not in a serving proxy's memory."""
    code = (
        "import sys\n"
        "import poolswitch.app, poolswitch.cli\n"
        "poolswitch.cli.parser().parse_args(['demo', '--json'])\n"
        "poolswitch.cli.parser().parse_args(['start', '--config', 'x.yaml'])\n"
        "print(*(m in sys.modules for m in ('rich', 'aiohttp', 'poolswitch.demo')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split() == ["False", "False", "False"], done.stdout + done.stderr


def test_parse_trace() -> None:
    assert parse_trace("a rate_limited 0ms, b success 3ms") == [
        ("a", "rate_limited"),
        ("b", "success"),
    ]
    assert parse_trace("none") == []
    assert parse_trace("") == []


def test_the_tally_counts_failovers_by_cause_and_caller_errors() -> None:
    tally = Tally(total=3, started=100.0)
    trace = "out-of-quota quota_exhausted 0ms, invalid key_invalid 0ms, healthy success 0ms"
    headers = {"x-poolswitch-trace": trace, "x-poolswitch-key-id": "healthy"}
    tally.answered(1, 200, headers, True, 100.5)
    assert (tally.failovers, tally.succeeded, tally.first_failover) == (2, 1, 0.5)
    assert dict(tally.by_cause) == {"quota_exhausted": 1, "key_invalid": 1}
    assert [(e.key_id, e.to) for e in tally.recent] == [
        ("out-of-quota", "invalid"),
        ("invalid", "healthy"),
    ]
    tally.answered(2, 200, {"x-poolswitch-key-id": "healthy"}, False, 101.0)  # a cut stream
    tally.answered(3, 429, {"x-poolswitch-error": "no_available_keys"}, True, 101.0)
    assert tally.errors == ["request 2: 200 incomplete", "request 3: 429 no_available_keys"]
    assert tally.served_by == {"healthy": 1}
    assert request_body(5)["stream"] is True and "stream" not in request_body(4)


def test_the_upstream_answers_are_classified_as_each_key_is_meant_to_fail() -> None:
    classifier = Classifier("openai", 3600.0)
    quota = classifier.classify(429, {}, json.dumps(QUOTA_BODY).encode(), 0.0)
    assert (quota.outcome.value, quota.failover, quota.cooldown) == ("quota_exhausted", True, 3600)
    rate_headers = {"retry-after": str(RETRY_AFTER_SECONDS)}
    body = json.dumps(rate_limit_body(RETRY_AFTER_SECONDS)).encode()
    rate = classifier.classify(429, rate_headers, body, 0.0)
    assert (rate.outcome.value, rate.failover, rate.cooldown) == ("rate_limited", True, 3)
    value = KEYS[3].value
    invalid = classifier.classify(401, {}, json.dumps(invalid_key_body(value)).encode(), 0.0)
    assert (invalid.outcome.value, invalid.disable) == ("key_invalid", True)
    assert value not in json.dumps(invalid_key_body(value))  # it echoes a part, as OpenAI does


def _tmux() -> str:
    found = shutil.which("tmux")
    if found is None:  # fail, never skip: CI installs it (noxfile: tests)
        pytest.fail("tmux is missing: apt-get install tmux", pytrace=False)
    return found


def test_the_live_view_shows_each_key_and_its_state_in_a_terminal(tmp_path: Path) -> None:
    tmux = [_tmux(), "-L", f"poolswitch-demo-{os.getpid()}", "-f", os.devnull]
    command = shlex.join([*DEMO, "--port", str(free_port())])
    script = f"{command}; echo demo exited $?; sleep 60"
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "48"}
    subprocess.run(
        [*tmux, "new-session", "-d", "-s", "demo", "-x", "120", "-y", "48", script],
        check=True,
        env=env,
        timeout=10,
    )

    def screen() -> str:
        done = subprocess.run(
            [*tmux, "capture-pane", "-p", "-t", "demo"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return done.stdout

    def wait_for(check: Any, seconds: float) -> str:
        deadline = time.monotonic() + seconds
        text = screen()
        while not check(text) and time.monotonic() < deadline:
            time.sleep(0.1)
            text = screen()
        return text

    try:
        live = wait_for(lambda text: all(_shows(text, k, s) for k, s in STATES.items()), 20)
        (tmp_path / "demo-screen.txt").write_text(live)
        for key_id, state in STATES.items():
            assert _shows(live, key_id, state), live
        assert "burst" in live and "failovers:" in live
        assert "Traceback" not in live
        assert "sk-demo-" not in live  # key ids only, never a value
        done = wait_for(lambda text: "Try it yourself" in text, 20)
        assert "0 errors seen by the caller" in done, done
        final = done
        subprocess.run([*tmux, "send-keys", "-t", "demo", "C-c"], check=True, timeout=10)
        stopped = wait_for(lambda text: "demo exited" in text, 20)
        assert "demo exited 0" in stopped, stopped
        assert "Traceback" not in stopped
    finally:
        subprocess.run([*tmux, "kill-server"], check=False, timeout=10)
    if os.environ.get("POOLSWITCH_UPDATE_DEMO_SCREEN") == "1":
        SCREEN_DOC.write_text(_trimmed(final))
    committed = SCREEN_DOC.read_text()
    for key in KEYS:
        assert key.id in committed
    for key_id, state in STATES.items():
        assert _shows(committed, key_id, state), "docs/demo-screen.txt: rerun with the update"


def _shows(screen: str, key_id: str, state: str) -> bool:
    """A line of the screen's key table names `key_id` with `state`."""
    return any(f"│ {key_id} " in line and f"│ {state} " in line for line in screen.splitlines())


def _trimmed(screen: str) -> str:
    """The screen without its trailing blank lines and spaces (the port is whatever it was)."""
    lines = [line.rstrip() for line in screen.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines) + "\n"
