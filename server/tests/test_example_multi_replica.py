"""examples/multi-replica/multi_replica.py end to end: redis-server, three replicas and nginx, as a
newcomer runs it (needs the Debian packages redis-server and nginx; fails without them)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "multi-replica" / "multi_replica.py"
TIMEOUT = 180.0
SUMMARY = re.compile(
    r"^summary: ok: 60 requests, 0 errors; k1 sent upstream (\d+) time\(s\) "
    r"\(A (\d+), B (\d+), C (\d+)\), by \d+ of the \d+ requests sent after its first failure; "
    r"k1 cooling_down on 3 of 3 replicas$",
    re.MULTILINE,
)


@pytest.mark.parametrize("concurrency", [1, 6])
def test_no_replica_sends_the_exhausted_key_again(concurrency: int) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--requests", "60", "--concurrency", str(concurrency)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    found = SUMMARY.search(done.stdout)
    assert found is not None, done.stdout
    total, *per_replica = (int(n) for n in found.groups())
    assert total == sum(per_replica) >= 1
    # each replica sends k1 at most once per request it had in flight when k1 first failed
    assert all(n <= concurrency for n in per_replica), done.stdout
