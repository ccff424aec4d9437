"""examples/python/embedded.py as a newcomer runs it: against a fake upstream of its own, and
against one started elsewhere (FAKE_UPSTREAM_URL), it fails over from the key whose quota is
spent to the healthy one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from poolswitch_testing.fake_upstream import FakeUpstream

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "python" / "embedded.py"
KEYS = {"sk-example-primary": "primary", "sk-example-backup": "backup"}
EXPECTED = [
    "answered by key backup after 2 attempt(s)",
    "Hello! This is a canned answer from the PoolSwitch fake upstream.",
    "streamed by key backup: Hello world",
    "key primary: cooling_down (quota_exhausted)",
    "key backup: available (ok)",
]


@pytest.mark.parametrize("where", ["own", "elsewhere"])
def test_the_example_fails_over_from_the_spent_key(where: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_KEY_1", "OPENAI_KEY_2")}
    env.pop("FAKE_UPSTREAM_URL", None)
    with FakeUpstream(KEYS) as fake:
        if where == "elsewhere":
            env["FAKE_UPSTREAM_URL"] = fake.url
        done = subprocess.run(
            [sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=60, env=env
        )
        seen = fake.key_ids()
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == EXPECTED
    assert seen == (["primary", "backup", "backup"] if where == "elsewhere" else [])
