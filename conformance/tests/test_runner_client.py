"""runner.client: a client program that misbehaves is a harness error, not a hang."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from poolswitch_testing.conformance.client import ClientProcess, HarnessError

ECHO = """import sys, json
for line in sys.stdin:
    r = json.loads(line)
    {body}
    sys.stdout.flush()
"""


def client(tmp_path: Path, body: str) -> ClientProcess:
    program = tmp_path / "client.py"
    program.write_text(ECHO.format(body=body))
    return ClientProcess([sys.executable, str(program)], tmp_path / "client.log")


def test_a_well_behaved_client(tmp_path: Path) -> None:
    c = client(tmp_path, 'print(json.dumps({"id": r["id"], "result": {"status": 200}}))')
    try:
        line, result = c.call({"id": "1"}, 10)
        assert result == {"status": 200} and '"id": "1"' in line
        assert c.call({"id": "2"}, 10)[1] == {"status": 200}
    finally:
        c.close()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('print(json.dumps({"id": r["id"], "harness_error": "boom"}))', "reports: boom"),
        ('print(json.dumps({"id": "other", "result": {}}))', "out of turn"),
        ('print("not json")', "not JSON"),
        ('print(json.dumps({"id": r["id"], "result": 3}))', "no result object"),
        ("sys.stderr.write('dying words\\n'); sys.exit(3)", "exited (exit code 3)"),
        ("import time; time.sleep(30)", "no answer within 0.5s"),
    ],
)
def test_misbehaving_clients(tmp_path: Path, body: str, message: str) -> None:
    c = client(tmp_path, body)
    try:
        with pytest.raises(HarnessError, match=re.escape(message)) as info:
            c.call({"id": "1"}, 0.5)
        if "exit code 3" in message:
            assert "dying words" in str(info.value)
    finally:
        c.close()


def test_a_dead_client_is_restarted_for_the_next_call(tmp_path: Path) -> None:
    c = client(
        tmp_path,
        'print(json.dumps({"id": r["id"], "result": {}})) if r["id"] != "1" else sys.exit(1)',
    )
    try:
        with pytest.raises(HarnessError):
            c.call({"id": "1"}, 5)
        assert c.call({"id": "2"}, 5)[1] == {}
    finally:
        c.close()
