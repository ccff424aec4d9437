"""Prometheus metrics on an injected registry.

Counters and histograms are updated on the request path (in one process as plain numbers,
collected at scrape time: tally.py); key state is read from the pool at scrape time by a
collector, so there is nothing to keep in sync. Labels come from closed sets
only: method, status class, outcome, reason, configured pool name and key id, configured caller
id (`-` when none). Never a path, a client address or a token. Every metric about keys carries
the `pool` label: key ids are unique per pool only.

Under `poolswitch start --workers N` each worker has PROMETHEUS_MULTIPROC_DIR set (workers.py):
prometheus_client then keeps the counters and histograms in files there, and a scrape sums every
worker's files instead of reading this process's own counters, so no total depends on which
worker answers. Key state is read from this worker's pools, a mirror of the shared store.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from poolswitch.keys import AVAILABLE, COOLING_DOWN, DISABLED
from poolswitch.pool import Clock, KeySnapshot
from poolswitch.tally import Tally

PoolView = tuple[str, Sequence[KeySnapshot], bool]
"""What the collector reads of a pool at scrape time: (name, key snapshots, guard tripped)."""
StorageView = tuple[str, bool, int]
"""What the collector reads of the store at scrape time: (backend, usable now, outages)."""

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_PROPAGATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class CounterLike(Protocol):
    def labels(self, *values: str) -> Incrementable: ...


class Incrementable(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class HistogramLike(Protocol):
    def observe(self, amount: float) -> None: ...


MakeCounter = Callable[[str, str, Sequence[str]], CounterLike]
MakeHistogram = Callable[[str, str, Sequence[float]], HistogramLike]


def _tallied_metrics(registry: CollectorRegistry) -> tuple[MakeCounter, MakeHistogram]:
    tally = Tally()
    registry.register(tally)
    return tally.counter, tally.histogram


def _shared_metrics() -> tuple[MakeCounter, MakeHistogram]:
    """prometheus_client's metrics, on no registry: the multiprocess collector reads them."""

    def counter(name: str, documentation: str, labelnames: Sequence[str]) -> CounterLike:
        return Counter(name, documentation, labelnames, registry=None)

    def histogram(name: str, documentation: str, buckets: Sequence[float]) -> HistogramLike:
        return Histogram(name, documentation, buckets=buckets, registry=None)

    return counter, histogram


def method_label(method: str) -> str:
    return method if method in METHODS else "OTHER"


def status_class(status: int) -> str:
    return f"{status // 100}xx"


class Metrics:
    def __init__(
        self,
        registry: CollectorRegistry,
        pools: Callable[[], Sequence[PoolView]],
        clock: Clock,
        storage: Callable[[], StorageView] | None = None,
    ) -> None:
        self.registry = registry
        shared = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        # One process: plain numbers, collected at scrape time (tally.py). In multiprocess
        # mode prometheus_client's own metrics, whose files every worker's scrape reads.
        counter, histogram = _shared_metrics() if shared else _tallied_metrics(registry)
        self.requests = counter(
            "poolswitch_requests",
            "Requests answered, by method, status class, caller and pool (- when none).",
            ["method", "status_class", "caller", "pool"],
        )
        self.caller_rejections = counter(
            "poolswitch_caller_rejections",
            "Requests refused for a caller's limits, by caller and reason (rpm, concurrency, "
            "pool); nothing was sent upstream.",
            ["caller", "reason"],
        )
        self.proxy_errors = counter(
            "poolswitch_proxy_errors", "Answers the proxy made itself, by error code.", ["code"]
        )
        self.upstream_attempts = counter(
            "poolswitch_upstream_attempts",
            "Attempts sent upstream, by pool, key and outcome.",
            ["pool", "key_id", "outcome"],
        )
        self.failovers = counter(
            "poolswitch_failovers",
            "Times a request moved on to another key, by pool and reason.",
            ["pool", "reason"],
        )
        self.request_duration = histogram(
            "poolswitch_request_duration_seconds",
            "Time from request received to response headers sent, retries included.",
            _BUCKETS,
        )
        self.upstream_duration = histogram(
            "poolswitch_upstream_duration_seconds",
            "Time of one upstream attempt until its response headers arrived.",
            _BUCKETS,
        )
        self.propagation = histogram(
            "poolswitch_state_propagation_seconds",
            "From another process's key transition (its clock) to this one applying it to its "
            "key selection; shared stores only.",
            _PROPAGATION_BUCKETS,
        )
        self.config_reloads = counter(
            "poolswitch_config_reloads",
            "Config reloads (SIGHUP, `poolswitch reload`), by result: ok, or failed (the old "
            "config kept serving).",
            ["result"],
        )
        for result in ("ok", "failed"):
            self.config_reloads.labels(result)
        if shared:
            MultiProcessCollector(registry, shared)  # type: ignore[no-untyped-call]
        registry.register(_KeyCollector(pools, clock))
        if storage is not None:
            registry.register(_StorageCollector(storage))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _KeyCollector(Collector):
    """Key state gauges, computed from the pools at scrape time."""

    def __init__(self, pools: Callable[[], Sequence[PoolView]], clock: Clock) -> None:
        self.pools = pools
        self.clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = self.clock()
        state = GaugeMetricFamily(
            "poolswitch_key_state",
            "1 for the state each key is in, 0 for the others.",
            labels=["pool", "key_id", "state"],
        )
        cooldown = GaugeMetricFamily(
            "poolswitch_key_cooldown_remaining_seconds",
            "Seconds until a cooling key returns (0 when available or disabled).",
            labels=["pool", "key_id"],
        )
        available = GaugeMetricFamily(
            "poolswitch_keys_available", "Keys that can serve a request now.", labels=["pool"]
        )
        configured = GaugeMetricFamily("poolswitch_keys", "Keys configured.", labels=["pool"])
        tripped = GaugeMetricFamily(
            "poolswitch_outage_guard_tripped",
            "1 while the pool's outage guard is tripped (most keys failing alike), else 0.",
            labels=["pool"],
        )
        for name, keys, degraded in self.pools():
            ready = 0
            for key in keys:
                for value in (AVAILABLE, COOLING_DOWN, DISABLED):
                    state.add_metric([name, key.id, value], 1.0 if key.state == value else 0.0)
                until = key.cooldown_until
                cooldown.add_metric([name, key.id], 0.0 if until is None else max(until - now, 0.0))
                ready += key.state == AVAILABLE
            available.add_metric([name], ready)
            configured.add_metric([name], len(keys))
            tripped.add_metric([name], 1.0 if degraded else 0.0)
        yield state
        yield cooldown
        yield available
        yield configured
        yield tripped


class _StorageCollector(Collector):
    """Whether the key-state store can be used now, and how often it could not."""

    def __init__(self, storage: Callable[[], StorageView]) -> None:
        self.storage = storage

    def collect(self) -> Iterator[Metric]:
        backend, usable, outages = self.storage()
        up = GaugeMetricFamily(
            "poolswitch_storage_up",
            "1 while the key-state store answers, 0 while the proxy serves on local state.",
            labels=["backend"],
        )
        up.add_metric([backend], 1.0 if usable else 0.0)
        down = CounterMetricFamily(
            "poolswitch_storage_outages",
            "Times the key-state store became unusable (the proxy went on serving).",
            labels=["backend"],
        )
        down.add_metric([backend], outages)
        yield up
        yield down
