"""The outage guard: tell an upstream outage from failing keys.

When most keys fail the same not-the-key's-fault way within a short window — 5xx, overload,
connection errors or timeouts; or the same 429 on many keys at once, the signature of an
account- or IP-wide limit — parking keys one by one would only darken the pool. The guard trips
instead and the pool reports itself degraded. What else it does depends on the kind:

- `upstream` (5xx, overload, network, timeouts): keys are no longer parked for repeated 5xx, and
  only one request at a time (a probe, at most one per `probe_interval`) goes upstream; the
  others are answered at once (`holds`).
- `rate_limited`: nothing is held. Each 429 already parks its key for as long as the provider
  says, so the pool itself knows the accurate answer: a key still available is tried, and when
  every key is parked the caller gets `no_available_keys` with the real wait — not a guess.

The first success clears it, and so does an operator enabling a key (`reset`). Pure: time is
injected.
"""

from __future__ import annotations

import collections
from collections.abc import Callable

from poolswitch.classifier import Fault, Outcome, Verdict

WINDOW_SECONDS = 10.0
PROBE_INTERVAL = 0.5
MIN_FAILURES = 3
HOLDING_KIND = "upstream"
"""The one kind of trip that holds requests; see the module docstring."""


class OutageGuard:
    def __init__(
        self,
        key_count: int,
        clock: Callable[[], float],
        *,
        window: float = WINDOW_SECONDS,
        probe_interval: float = PROBE_INTERVAL,
    ) -> None:
        self.clock = clock
        self.window = window
        self.probe_interval = probe_interval
        self.threshold = key_count // 2 + 1  # distinct keys: a majority of the pool
        self._events: collections.deque[tuple[float, int, str]] = collections.deque()
        self.tripped_kind: str | None = None
        self.since: float | None = None
        self._probing = False
        self._next_probe = 0.0
        # Successes that came after failures: a key whose run of failures spans one of these
        # failed while other keys answered (see Pool.record).
        self.recoveries = 0

    @property
    def tripped(self) -> bool:
        """The pool is degraded: most keys failed alike, not through their own fault."""
        return self.tripped_kind is not None

    @property
    def holds(self) -> bool:
        """Requests are held (one probe at a time): the upstream itself is failing."""
        return self.tripped_kind == HOLDING_KIND

    def failure(self, key: int, verdict: Verdict) -> None:
        """An attempt on key `key` ended in `verdict`: counted when it was not the key's fault
        (the upstream's, or either's), or a rate limit (many keys at once: account-wide)."""
        if verdict.outcome is Outcome.RATE_LIMITED:
            kind = "rate_limited"
        elif verdict.fault in (Fault.UPSTREAM, Fault.EITHER):
            kind = "upstream"
        else:
            return
        now = self.clock()
        events = self._events
        events.append((now, key, kind))
        while events and events[0][0] < now - self.window:
            events.popleft()
        if self.tripped_kind == kind or self.tripped_kind == HOLDING_KIND:
            return  # already tripped; a rate-limit storm may still turn into an outage
        same = [k for _, k, c in events if c == kind]
        if len(same) >= MIN_FAILURES and len(set(same)) >= self.threshold:
            self.tripped_kind = kind
            self.since = now

    def success(self) -> None:
        """The upstream answered well: whatever was wrong is over."""
        self.reset()

    def reset(self) -> None:
        """Forget what was seen (a success, or an operator putting a key back in service)."""
        if self._events:
            self._events.clear()
            self.recoveries += 1
        if self.tripped_kind is not None:
            self.tripped_kind = None
            self.since = None
            self._probing = False

    def admit(self) -> bool:
        """May a request go upstream now? Always, unless it holds: then one probe at a time."""
        if self.tripped_kind != HOLDING_KIND:
            return True
        now = self.clock()
        if self._probing or now < self._next_probe:
            return False
        self._probing = True
        self._next_probe = now + self.probe_interval
        return True

    def probe_done(self) -> None:
        self._probing = False

    def retry_after(self) -> float:
        return max(self._next_probe - self.clock(), self.probe_interval)
