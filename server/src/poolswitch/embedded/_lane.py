"""One pool inside the app and the pieces of an attempt on it: the pool with its memory store,
the classifier, the verifier and the redactor; the key put in a request (header or query
parameter); outcomes recorded under the lock; an invalid key confirmed (verify.py's rule, its
verification carried out as a `Verify` effect). The loop itself is `_loop.py`.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

import httpx

from poolswitch.classifier import NETWORK_ERROR, SUCCESS, Classifier, Verdict
from poolswitch.config import PoolConfig
from poolswitch.embedded._effects import Close, Loop, Send, Verify
from poolswitch.embedded._reading import read
from poolswitch.errors import TransportError
from poolswitch.pool import Pool
from poolswitch.proxy import RESPONSE_DROP, remaining_quota, upstream_headers
from poolswitch.redact import Redactor
from poolswitch.retry import TRY, Step, after_attempt
from poolswitch.storage import MemoryStore
from poolswitch.verify import (
    UNKNOWN,
    VERIFY_HEADERS,
    VERIFY_READ,
    VERIFY_TIMEOUT,
    Confirming,
    Judgement,
    Verifier,
    default_path,
    reading,
)

log = logging.getLogger("poolswitch.embedded")


@dataclass(slots=True)
class Call:
    """One request, ready to send to any key: `target` is the path and query to append to the
    base URL (any `auth_query_param` of the caller's removed); `request` the caller's own, with
    no key in it, which the answer carries."""

    method: str
    target: str
    headers: list[tuple[bytes, bytes]]
    body: bytes
    request: httpx.Request
    deadline: float
    """Monotonic seconds: the whole call, retries included."""


class LaneBase:
    """One pool, its key state and the pieces of an attempt (`_loop.py` has the loop).
    `clock`: Unix seconds (cooldowns, `/status`); `monotonic`: deadlines and the verifier's
    memory; `sync`: bodies still arriving are read by a sync client (else an async one)."""

    def __init__(
        self,
        config: PoolConfig,
        *,
        clock: Callable[[], float],
        monotonic: Callable[[], float],
        rng: random.Random,
        sync: bool,
    ) -> None:
        self.config = config
        self.lock = threading.Lock()
        self.store = MemoryStore()
        self.pool = Pool(config, self.store, clock=clock, rng=rng)
        self.classifier = Classifier.from_config(config)
        self.monotonic = monotonic
        self.rng = rng
        self.sync = sync
        verify_path = config.verify_path
        if verify_path == "auto":
            verify_path = default_path(self.classifier.profile, config.upstream_base_url)
        self.verifier = Verifier(verify_path, monotonic)
        self._verify_headers = [
            (n.encode("latin-1"), v.encode())
            for n, v in VERIFY_HEADERS.get(self.classifier.profile, ())
        ]
        self.query_param = config.auth_query_param
        # With auth_query_param the key travels in the query string, not in a header.
        auth_header = None if self.query_param else config.auth_header_name
        self._auth_header = None if auth_header is None else auth_header.encode("latin-1")
        self._auth_values = [key.auth_value.encode() for key in self.pool.keys]
        self._key_ids = [key.id.encode("ascii") for key in self.pool.keys]
        self.redactor = Redactor((key.secret, key.id) for key in self.pool.keys)
        self._query_keys = [
            f"{self.query_param}={quote(key.secret, safe='')}" if self.query_param else ""
            for key in self.pool.keys
        ]
        self.base_url = config.upstream_base_url.rstrip("/")

    def __repr__(self) -> str:
        return f"Lane({self.config.name!r}, keys={list(self.pool.key_ids)!r})"

    # -- one attempt -----------------------------------------------------------------------

    def _target(self, target: str, i: int) -> str:
        if not self.query_param:
            return target
        return target + ("&" if "?" in target else "?") + self._query_keys[i]

    def _upstream(
        self, method: str, target: str, call: Call | None, i: int, timeout: float
    ) -> httpx.Request:
        """The request to the upstream with key `i` (`call`: the caller's headers and body;
        None: a verification, with no caller header)."""
        headers = list(call.headers) if call is not None else list(self._verify_headers)
        if self._auth_header is not None:
            headers.append((self._auth_header, self._auth_values[i]))
        body = call.body if call is not None else b""
        # as the proxy's forwarder: no body at all for a bodiless GET or HEAD
        content = body if body or method not in ("GET", "HEAD") else None
        request = httpx.Request(method, self.base_url + target, headers=headers, content=content)
        request.extensions["timeout"] = {
            "connect": self.config.connect_timeout_seconds,
            "read": timeout,
            "write": timeout,
            "pool": timeout,
        }
        return request

    def _after_attempt(
        self,
        i: int,
        verdict: Verdict,
        attempts: int,
        method: str,
        sent: bool,
        deadline: float,
        answered: bool,
    ) -> Step:
        """Record an unsuccessful attempt; the next step (TRY: another attempt)."""
        config = self.config
        step = after_attempt(
            verdict,
            answered=answered,
            attempts=attempts,
            retry_attempts=config.retry_attempts,
            method=method,
            sent=sent,
            retry_non_idempotent=config.retry_non_idempotent,
            now=self.monotonic(),
            deadline=deadline,
        )
        with self.lock:
            self.pool.record(i, verdict, failover=step is TRY)
        return step

    def _record_success(self, i: int, resp: httpx.Response) -> None:
        with self.lock:
            self.pool.record(i, SUCCESS, remaining_quota=remaining_quota(resp.headers))

    def _record_cut(self, i: int) -> None:
        """The upstream failed mid-answer, too late to fail over: counted against the key."""
        log.warning(
            "upstream failed mid-stream on key %s; the caller's answer was cut short",
            self.pool.keys[i].id,
        )
        with self.lock:
            self.pool.record(i, NETWORK_ERROR)

    def _response_headers(
        self, resp: httpx.Response, i: int, attempts: int
    ) -> list[tuple[bytes, bytes]]:
        headers = self.redactor.redact_headers(upstream_headers(resp.headers.raw, RESPONSE_DROP))
        headers.append((b"x-poolswitch-key-id", self._key_ids[i]))
        headers.append((b"x-poolswitch-attempts", str(attempts).encode()))
        return headers

    # -- confirming an invalid key (verify.py) -----------------------------------------------

    def _confirm(self, i: int, verdict: Verdict, call: Call, confirming: Confirming) -> Loop:
        verifier = self.verifier
        method, path = call.method, call.target.partition("?")[0]
        with self.lock:
            successes = self.pool.states[i].successes
            known = verifier.known(i)
            decision = verifier.decide(i, known, method, path, successes, confirming)
        if decision is Judgement.VERIFY:
            known = yield Verify(i, self._verify(i, call.deadline))
            with self.lock:
                decision = verifier.decide(i, known, method, path, successes, confirming)
        with self.lock:
            return verifier.settle(i, verdict, decision, known, method, path, successes, confirming)

    def _confirm_by_peer(self, confirming: Confirming) -> None:
        """Another key succeeded where one failed with an unconfirmed 401/403: that one is bad."""
        with self.lock:
            i = self.verifier.confirmed_by_peer(confirming)
            if i is not None:
                self.pool.confirmed_invalid(i, "confirmed: another key succeeded")

    def _verify(self, i: int, deadline: float) -> Loop:
        """GET verify_path with key `i` (and no caller header): what it says of the key. The
        answer is never relayed; only the key's id is logged."""
        path = self.verifier.path
        assert path is not None
        timeout = max(min(VERIFY_TIMEOUT, deadline - self.monotonic()), 0.001)
        ends = self.monotonic() + timeout
        result = UNKNOWN
        reader = None
        try:
            reader = yield Send(self._upstream("GET", self._target(path, i), None, i, timeout))
            resp = reader.response
            head, _ = yield from read(reader, VERIFY_READ)
            if self.monotonic() <= ends:
                verdict = self.classifier.classify(
                    resp.status_code, resp.headers, head, self.pool.clock()
                )
                result = reading(verdict.outcome)
        except TransportError:
            result = UNKNOWN
        if reader is not None:
            yield Close(reader)
        log.info("key %s verified with GET %s: %s", self.pool.keys[i].id, path, result)
        return result
