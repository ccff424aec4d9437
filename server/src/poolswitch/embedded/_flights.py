"""One verification per key at a time across the sync client's threads (verify.py's Verifier
does this for one event loop); the others wait for its result."""

from __future__ import annotations

import threading
from collections.abc import Callable

from poolswitch.verify import UNKNOWN, VERIFY_TIMEOUT


class _Flight:
    __slots__ = ("done", "result")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result = UNKNOWN


class Flights:
    """At most one verification per key at a time across threads; the others wait for its
    result (within VERIFY_TIMEOUT and a little: else they learn nothing)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[int, _Flight] = {}

    def run(self, key: int, once: Callable[[], str], skip: Callable[[], None]) -> str:
        with self._lock:
            flight = self._running.get(key)
            leader = flight is None
            if flight is None:
                flight = self._running[key] = _Flight()
        if not leader:
            skip()
            return flight.result if flight.done.wait(VERIFY_TIMEOUT + 1.0) else UNKNOWN
        try:
            flight.result = once()
        finally:
            with self._lock:
                del self._running[key]
            flight.done.set()
        return flight.result
