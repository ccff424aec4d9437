"""Propagation delay between two replicas on one Redis: transitions made on replica A through
its admin API (disable and enable of one key, alternately), and for each the time until
replica B's `/status` shows it; plus B's own `poolswitch_state_propagation_seconds` histogram.

Every wait is bounded: an admin call or a `/status` poll by HTTP_TIMEOUT_S, one transition's
wait for B by `bound_s` (counted as not seen when it runs out).
"""

from __future__ import annotations

import http.client
import json
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any

from proc import BenchError

HTTP_TIMEOUT_S = 5.0
GAP_S = 0.01  # between one transition seen on B and the next one made on A
METRIC = "poolswitch_state_propagation_seconds"
_BUCKET = re.compile(METRIC + r'_bucket\{[^}]*le="([^"]+)"[^}]*\}\s+([0-9.eE+-]+)')


def percentile(sorted_ms: list[float], q: float) -> float:
    """The nearest-rank percentile `q` (0-100) of an ascending, non-empty list."""
    rank = max(1, math.ceil(q / 100 * len(sorted_ms)))
    return sorted_ms[min(rank, len(sorted_ms)) - 1]


def parse_buckets(text: str) -> dict[str, float]:
    """Cumulative bucket counts of METRIC by `le`, summed over label sets (workers, if any)."""
    out: dict[str, float] = {}
    for le, count in _BUCKET.findall(text):
        out[le] = out.get(le, 0.0) + float(count)
    return out


@dataclass
class PropagationResult:
    transitions: int
    bound_s: float
    delays_ms: list[float] = field(default_factory=list)  # A's admin call sent -> B shows it
    admin_ms: list[float] = field(default_factory=list)  # A's admin call, sent -> answered
    not_seen: int = 0  # B did not show the transition within bound_s
    buckets: dict[str, int] = field(default_factory=dict)  # B's histogram, per bucket (not cum.)
    observed: int = 0  # B's histogram count over the run

    def summary_ms(self) -> dict[str, float] | None:
        """min/p50/p90/p99/max of the delays; a transition not seen counts as +inf."""
        if not self.delays_ms and not self.not_seen:
            return None
        values = sorted(self.delays_ms) + [math.inf] * self.not_seen
        return {
            "min": values[0],
            "p50": percentile(values, 50),
            "p90": percentile(values, 90),
            "p99": percentile(values, 99),
            "max": values[-1],
        }

    def share_within(self, le: str) -> float | None:
        """The share of B's observations in buckets up to `le` (say "0.1")."""
        if not self.observed:
            return None
        limit = float(le)
        within = sum(n for b, n in self.buckets.items() if b != "+Inf" and float(b) <= limit)
        return within / self.observed

    def to_json(self) -> dict[str, Any]:
        return {
            "transitions": self.transitions,
            "bound_s": self.bound_s,
            "summary_ms": self.summary_ms(),
            "delays_ms": self.delays_ms,
            "admin_ms": self.admin_ms,
            "not_seen": self.not_seen,
            "histogram_buckets": self.buckets,
            "histogram_count": self.observed,
        }


class _Client:
    """One keep-alive HTTP/1.1 connection to a replica (reopened if the server closes it)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=HTTP_TIMEOUT_S)

    def request(self, method: str, path: str, headers: dict[str, str] | None = None) -> bytes:
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, headers=headers or {})
                resp = self.conn.getresponse()
                body = resp.read()
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                if attempt == 2:
                    raise
                continue
            if resp.status != 200:
                raise BenchError(f"{method} {path} on port {self.port} answered {resp.status}")
            return body
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.conn.close()


def _key_state(doc: dict[str, Any], key_id: str) -> str | None:
    for key in doc.get("keys", []):
        if key.get("id") == key_id:
            state: str = key.get("state", "")
            return state
    return None


def measure(
    port_a: int, port_b: int, admin_token: str, key_id: str, transitions: int, bound_s: float
) -> PropagationResult:
    """Make `transitions` transitions of `key_id` on A (disable, enable, ...) and time each one
    until B's `/status` shows it; B's histogram is read before and after."""
    a, b = _Client(port_a), _Client(port_b)
    res = PropagationResult(transitions, bound_s)
    auth = {"Authorization": f"Bearer {admin_token}"}
    try:
        before = parse_buckets(b.request("GET", "/metrics").decode())
        for i in range(transitions):
            action, want = ("disable", "disabled") if i % 2 == 0 else ("enable", "available")
            sent = time.perf_counter()
            a.request("POST", f"/poolswitch/admin/keys/{key_id}/{action}", auth)
            res.admin_ms.append((time.perf_counter() - sent) * 1000)
            deadline = sent + bound_s
            while True:
                state = _key_state(json.loads(b.request("GET", "/status")), key_id)
                now = time.perf_counter()
                if state == want:
                    res.delays_ms.append((now - sent) * 1000)
                    break
                if now >= deadline:
                    res.not_seen += 1
                    break
            time.sleep(GAP_S)
        time.sleep(0.2)  # let a last message still in flight be observed
        after = parse_buckets(b.request("GET", "/metrics").decode())
    finally:
        a.close()
        b.close()
    previous = 0.0
    for le in sorted(after, key=lambda v: math.inf if v == "+Inf" else float(v)):
        cumulative = after[le] - before.get(le, 0.0)
        res.buckets[le] = round(cumulative - previous)
        previous = cumulative
    res.observed = round(previous)
    return res
