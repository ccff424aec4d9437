"""The shared-state sections: (r) PoolSwitch on Redis against (rm) on memory, (w2) `--workers 2`
against (w1) `--workers 1`, and the propagation delay between two replicas on one Redis.

One redis-server serves all three, started on a free port by `poolswitch_testing`'s
RedisServer and stopped at the end. It runs on the load CPU (it inherits the harness's
affinity), beside wrk and the nginx upstream and never on the proxy's CPU: a proxy on Redis
does no Redis I/O per request (selection reads local memory, counters are flushed once a
second), so Redis costs the load side next to nothing, while unpinned it could land on the
proxy's CPU now and then and charge the proxy for it. It runs during the memory runs too, so
both sides of the ratio see the same machine.
"""

from __future__ import annotations

import functools
import secrets
import sys
from collections.abc import Callable
from typing import Protocol

import harness
from poolswitch_testing.redis_server import RedisServer, RedisServerError

import propagation
from cpu import CpuSampler, CpuUse
from nginx import NginxUpstream
from paired import paired
from payloads import CHAT_PATH
from poolswitch_proc import PoolSwitch
from proc import BenchError, Cpus, child_pids
from report import Results
from wrk import Wrk, WrkResult

SHARED_CONCURRENCY = (16, 64)
REDIS_ROUNDS = 5  # as PAIRED_ROUNDS of (p)/(p1)
WORKERS_ROUNDS = 3
SHARED_RUN_S = 5.0  # seconds per run here (shorter than the others': 2 x 2 x rounds runs)
SHARED_WARMUP_S = 1.0
TRANSITIONS = 200
PROPAGATION_BOUND_S = 2.0  # the reconcile period: past it a transition counts as not seen
KEY = "k1"


def progress(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


class Harness(harness.Harness, Protocol):
    """What these sections use of run.py's Bench."""

    duration: float
    warmup: float
    res: Results
    wrk: Wrk
    nginx: NginxUpstream | None


class SharedState:
    def __init__(self, bench: Harness, upstream_url: str) -> None:
        self.bench = bench
        self.upstream_url = upstream_url
        self.run_s = min(bench.duration, SHARED_RUN_S)
        self.warmup_s = min(bench.warmup, SHARED_WARMUP_S)
        self._redis: RedisServer | None = None

    # -- helpers -------------------------------------------------------------

    def redis(self) -> RedisServer:
        if self._redis is None:
            server = RedisServer(self.bench.tmp / "redis")
            try:
                server.start()
            except RedisServerError as exc:
                raise BenchError(f"redis-server: {exc}") from exc
            self._redis = server
            self.bench.res.meta["redis"] = f"redis-server on port {server.port}, load CPU"
            progress(f"redis-server: ready on port {server.port} (pid {server.pid})")
        return self._redis

    def storage(self, namespace: str) -> dict[str, str]:
        return {"backend": "redis", "redis_url": self.redis().url, "namespace": namespace}

    def close(self) -> None:
        if self._redis is not None:
            self._redis.stop()
            self._redis = None

    def _groups(self, ps: PoolSwitch) -> dict[str, list[int]]:
        serving = ps.serving_pids()
        groups: dict[str, list[int]] = {"poolswitch": serving}
        if ps.workers > 1 and ps.pid is not None:
            groups.update({f"worker {i}": [pid] for i, pid in enumerate(serving, 1)})
            groups["supervisor"] = [ps.pid]
        nginx = self.bench.nginx
        if nginx is not None and nginx.pid is not None:
            groups["nginx"] = [nginx.pid, *child_pids(nginx.pid)]
        if self._redis is not None and self._redis.pid is not None:
            groups["redis-server"] = [self._redis.pid]
        return groups

    def _load(self, target: str, ps: PoolSwitch, conc: int) -> tuple[WrkResult, CpuUse]:
        """A warm-up run (not reported), then the measured run with the CPU each process
        used during it."""
        url = ps.proxied(CHAT_PATH)
        wrk = self.bench.wrk
        wrk.run(url, conc, self.warmup_s)
        sampler = CpuSampler(self._groups(ps))
        sampler.start()
        r = wrk.run(url, conc, self.run_s)
        use = sampler.stop()
        bad = r.non2xx or r.errors_total
        flag = f", {r.non2xx} non-2xx, {r.errors_total} socket errors" if bad else ""
        cores = "  ".join(
            f"{n} {v:.2f}" for n, v in use.cores.items() if not n.startswith("worker ")
        )
        progress(
            f"({target}) c={conc:<3} {r.rps:10,.0f} req/s  p99 {r.p99_ms:.3f} ms  cores: "
            f"{cores}  machine {use.machine:.2f}{flag}"
        )
        return r, use

    def _paired(self, sides: list[tuple[str, PoolSwitch]], rounds: int) -> None:
        loads = [(t, functools.partial(self._load, t, ps)) for t, ps in sides]
        medians = paired(loads, SHARED_CONCURRENCY, rounds, lambda run: run[0].rps)
        for target, by_conc in medians.items():
            for conc, (r, use) in by_conc.items():
                self.bench.res.runs.setdefault(target, {})[conc] = r
                self.bench.res.cpu.setdefault(target, {})[conc] = use

    def _start_all(self, starts: list[Callable[[], PoolSwitch]]) -> list[PoolSwitch]:
        """Start each (and check it forwards); on a failure stop those already started."""
        started: list[PoolSwitch] = []
        try:
            for start in starts:
                ps = start()
                started.append(ps)
                self.bench.check_forwarding(ps)
        except BaseException:
            for ps in reversed(started):
                self.bench.stop_poolswitch(ps)
            raise
        return started

    def _start(
        self,
        name: str,
        cpu: Cpus,
        *,
        storage: dict[str, str] | None = None,
        token: str | None = None,
        workers: int = 1,
    ) -> PoolSwitch:
        return self.bench.start_poolswitch(
            name,
            self.upstream_url,
            2,
            cpu=cpu,
            storage=storage,
            admin_token=token,
            workers=workers,
        )

    # -- sections ------------------------------------------------------------

    def redis_vs_memory(self) -> None:
        """(r) on Redis against (rm) on memory: one process each, on the proxy CPU, both
        running at once and loaded in turn (paired rounds)."""
        cpu = self.bench.pinning.proxy_cpu
        storage = self.storage("bench-r")
        pair = self._start_all(
            [
                lambda: self._start("poolswitch-rm", cpu),
                lambda: self._start("poolswitch-r", cpu, storage=storage),
            ]
        )
        try:
            self._paired([("rm", pair[0]), ("r", pair[1])], REDIS_ROUNDS)
        finally:
            for ps in reversed(pair):
                self.bench.stop_poolswitch(ps)

    def workers(self) -> None:
        """(w2) `--workers 2` against (w1) `--workers 1`, both on Redis and free to run on
        every CPU (so on 2 CPUs the workers share them with wrk and nginx), paired."""
        cpus = self.bench.pinning.all_cpus
        one, two = self.storage("bench-w1"), self.storage("bench-w2")
        pair = self._start_all(
            [
                lambda: self._start("poolswitch-w1", cpus, storage=one),
                lambda: self._start("poolswitch-w2", cpus, storage=two, workers=2),
            ]
        )
        try:
            self._paired([("w1", pair[0]), ("w2", pair[1])], WORKERS_ROUNDS)
        finally:
            for ps in reversed(pair):
                self.bench.stop_poolswitch(ps)

    def propagation(self) -> None:
        """Replica A on the load CPU (with this harness and Redis), replica B on the proxy CPU
        (a core of its own, like a replica on another machine); 200 transitions on A."""
        token = secrets.token_urlsafe(24)
        storage = self.storage("bench-propagation")
        pinning = self.bench.pinning
        a, b = self._start_all(
            [
                lambda: self._start("replica-a", pinning.load_cpu, storage=storage, token=token),
                lambda: self._start("replica-b", pinning.proxy_cpu, storage=storage, token=token),
            ]
        )
        try:
            res = propagation.measure(a.port, b.port, token, KEY, TRANSITIONS, PROPAGATION_BOUND_S)
        finally:
            self.bench.stop_poolswitch(b)
            self.bench.stop_poolswitch(a)
        self.bench.res.propagation = res
        s = res.summary_ms()
        if s is not None:
            progress(
                "propagation A -> B (/status): "
                + "  ".join(f"{k} {v:.1f} ms" for k, v in s.items())
                + f"; not seen within {PROPAGATION_BOUND_S:g} s: {res.not_seen}; "
                f"B's histogram: {res.observed} observations"
            )
