"""PoolSwitch benchmark harness.

Run from the repository root, with PoolSwitch installed in this interpreter:

    python server/bench/run.py [--duration SECONDS] [--quick] [--json PATH] [--only SECTIONS]
                               [--profile] [--streams N]

Measures, in one run: wrk against (a) nginx directly, (b) nginx as a keepalive
reverse proxy in its own process on the proxy's CPU, without and (bl) with its access
log, (c) PoolSwitch with 2 keys at its default log level and (cq) quiet, (d) with 1000
keys, (e) with 2 keys of which one is always rate limited (429, Retry-After: 1); SSE
first-event delay direct vs through PoolSwitch; PoolSwitch's RSS; (r) on Redis vs (rm) on
memory, (w2) `--workers 2` vs (w1) 1, and the propagation delay between two replicas on one
Redis (shared_state.py); (t) an HTTPS upstream vs (tp) plain HTTP with its TLS handshakes
counted (tls.py); N concurrent SSE streams direct, through PoolSwitch and through nginx
(streams.py); with --profile, py-spy's top frames of (c) at c=16 (profiler.py). Prints a report
with the acceptance targets. Exit code 0 when everything could be measured (even if a target
is missed), 1 when a measurement could not be made, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import nginx
import poolswitch_proc
import profiler
import sse
import streams
import tls
from nginx import NginxProxy, NginxUpstream
from paired import paired
from payloads import CHAT_PATH, CHAT_REQUEST_JSON, COMPLETION_JSON
from poolswitch_proc import DEFAULT_LOG_LEVEL, QUIET_LOG_LEVEL, PoolSwitch
from proc import (
    BenchError,
    Cpus,
    Pinning,
    Processes,
    ensure_tools,
    free_port,
    http_post,
    usable_cpus,
    wait_http_ok,
)
from report import CONCURRENCY, TARGETS, Results, checks, render, to_json
from shared_state import SharedState
from wrk import Wrk, WrkResult, write_script

BENCH_DIR = Path(__file__).resolve().parent
SSE_SAMPLES = 20
SSE_EVENTS = 20


def progress(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def load_average() -> float | None:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


class Bench:
    def __init__(
        self, tmp: Path, procs: Processes, pinning: Pinning, duration: float, warmup: float
    ) -> None:
        self.tmp = tmp
        self.procs = procs
        self.pinning = pinning
        self.duration = duration
        self.warmup = warmup
        self.res = Results()
        self.wrk = Wrk(write_script(tmp / "post.lua"), pinning)
        self.nginx: NginxUpstream | None = None
        self.profile = False  # --profile: py-spy records (c) during its c=16 run
        self.streams = streams.STREAMS
        self.profiled_pid: int | None = None

    # -- helpers -------------------------------------------------------------

    def fail(self, what: str, exc: Exception) -> None:
        msg = f"{what}: {exc}"
        self.res.errors.append(msg)
        progress(f"ERROR {msg}")

    def load(self, target: str, url: str, conc: int) -> WrkResult:
        """A warm-up run (not reported), then the measured run (recorded by py-spy for (c)
        at c=16 with --profile)."""
        self.wrk.run(url, conc, self.warmup)
        recorder = None
        if self.profile and target == "c" and conc == 16 and self.profiled_pid is not None:
            recorder = profiler.Recorder(self.tmp, target, self.profiled_pid, self.duration)
        r = self.wrk.run(url, conc, self.duration)
        if recorder is not None:
            self.res.profile = recorder.finish()
            if self.res.profile.problem:
                self.fail("--profile", BenchError(self.res.profile.problem))
        flag = (
            f", {r.non2xx} non-2xx, {r.errors_total} socket errors"
            if (r.non2xx or r.errors_total)
            else ""
        )
        progress(
            f"({target}) c={conc:<3} {r.rps:10,.0f} req/s  p50 {r.p50_ms:.3f} ms  "
            f"p99 {r.p99_ms:.3f} ms{flag}"
        )
        return r

    def levels(self, target: str, url: str) -> None:
        for conc in CONCURRENCY:
            try:
                before = self.nginx.count_429() if target == "e" and self.nginx else 0
                r = self.load(target, url, conc)
                self.res.runs.setdefault(target, {})[conc] = r
                if target == "e" and self.nginx:
                    self.res.upstream_429s[conc] = self.nginx.count_429() - before
            except BenchError as exc:
                self.fail(f"({target}) {TARGETS[target]} c={conc}", exc)

    @staticmethod
    def check_forwarding(ps: PoolSwitch) -> None:
        status, body = http_post(ps.proxied(CHAT_PATH), CHAT_REQUEST_JSON.encode())
        if status != 200 or body.decode(errors="replace") != COMPLETION_JSON:
            raise BenchError(
                f"request through PoolSwitch answered {status}: {body[:300]!r}\n{ps.log_tail()}"
            )

    def start_poolswitch(
        self,
        name: str,
        upstream: str,
        n_keys: int,
        log_level: str = DEFAULT_LOG_LEVEL,
        pools: tuple[str, ...] = (),
        *,
        cpu: Cpus = None,
        storage: dict[str, str] | None = None,
        admin_token: str | None = None,
        workers: int = 1,
        settings: dict[str, object] | None = None,
    ) -> PoolSwitch:
        """Started on `cpu` (default: the proxy CPU)."""
        ps = PoolSwitch(
            self.procs,
            self.tmp,
            name,
            upstream,
            n_keys,
            self.pinning.proxy_cpu if cpu is None else cpu,
            log_level,
            pools,
            storage=storage,
            admin_token=admin_token,
            workers=workers,
            settings=settings,
        )
        ps.start()
        extra = f", storage {storage['backend']}" if storage else ""
        extra += f", --workers {workers}" if workers != 1 else ""
        progress(
            f"{name}: ready in {ps.startup_s:.2f} s on port {ps.port} (pid {ps.pid}, "
            f"--log-level {log_level}{extra})"
        )
        return ps

    def stop_poolswitch(self, ps: PoolSwitch) -> None:
        code = ps.stop()
        self.res.exit_codes[ps.name] = code
        if code != 0:
            progress(f"{ps.name}: exit code {code} on SIGTERM (want 0)")

    def record_rss(self, ps: PoolSwitch, key: str) -> None:
        time.sleep(0.5)  # let connections close and the loop go idle
        main, tree = ps.rss()
        self.res.rss_kib[key] = main
        self.res.rss_tree_kib[key] = tree
        progress(f"{ps.name}: RSS {key} = {main / 1024:.1f} MiB")

    # -- sections ------------------------------------------------------------

    def start_upstream(self) -> None:
        """The nginx upstream (a, e and every PoolSwitch target's) on the load CPU."""
        self.nginx = NginxUpstream(self.procs, self.tmp / "nginx-upstream", self.pinning.load_cpu)
        self.nginx.start()

    def nginx_targets(self) -> None:
        """(a) the upstream; (b) and (bl) from a second nginx on the proxy CPU."""
        assert self.nginx is not None
        self.levels("a", nginx.url(self.nginx.ports.upstream, CHAT_PATH))
        proxy = NginxProxy(
            self.procs, self.tmp / "nginx-proxy", self.pinning.proxy_cpu, self.nginx.ports.upstream
        )
        proxy.start()
        try:
            self.levels("b", nginx.url(proxy.ports.quiet, CHAT_PATH))
            self.levels("bl", nginx.url(proxy.ports.logged, CHAT_PATH))
            logged = proxy.access_log_lines()
            progress(f"(bl) nginx access log: {logged:,} lines")
            if logged == 0 and self.res.run("bl", 1) is not None:
                self.fail("(bl) nginx proxy with access log", BenchError("access log is empty"))
        finally:
            proxy.stop()

    def poolswitch_2keys(self) -> None:
        assert self.nginx is not None
        ps = self.start_poolswitch("poolswitch-c", nginx.url(self.nginx.ports.upstream), 2)
        self.profiled_pid = ps.pid
        try:
            self.check_forwarding(ps)
            self.record_rss(ps, "idle")
            self.levels("c", ps.url(CHAT_PATH))
            if self.res.run("c", 64) is not None:
                self.record_rss(ps, "after_c64")
                self.res.repeat_c64 = self.load("c", ps.url(CHAT_PATH), 64)
                self.record_rss(ps, "after_c64_repeat")
            kids = ps.children()
            if kids:
                progress(f"note: poolswitch-c has child processes {kids}")
        finally:
            self.profiled_pid = None
            self.stop_poolswitch(ps)

    def poolswitch_plain(
        self,
        target: str,
        upstream_port: int,
        n_keys: int,
        log_level: str = DEFAULT_LOG_LEVEL,
        pools: tuple[str, ...] = (),
    ) -> None:
        ps = self.start_poolswitch(
            f"poolswitch-{target}", nginx.url(upstream_port), n_keys, log_level, pools
        )
        try:
            self.check_forwarding(ps)
            self.levels(target, ps.proxied(CHAT_PATH))
        finally:
            self.stop_poolswitch(ps)

    def pools_paired(self) -> None:
        """(p) three pools against (p1) the same single pool, both running at once and loaded
        in turn, `PAIRED_ROUNDS` times each per concurrency (order swapped every round): the
        median of each, so that drift of this machine's speed during the run cancels out of
        the ratio instead of landing on one side."""
        assert self.nginx is not None
        upstream = nginx.url(self.nginx.ports.upstream)
        single = self.start_poolswitch("poolswitch-p1", upstream, 2)
        several = None
        try:
            several = self.start_poolswitch("poolswitch-p", upstream, 2, pools=THREE_POOLS)
            for ps in (single, several):
                self.check_forwarding(ps)
            sides = [
                (t, functools.partial(self.load, t, ps.proxied(CHAT_PATH)))
                for t, ps in (("p1", single), ("p", several))
            ]
            for target, by_conc in paired(sides, CONCURRENCY, PAIRED_ROUNDS, _rps).items():
                self.res.runs.setdefault(target, {}).update(by_conc)
        finally:
            if several is not None:
                self.stop_poolswitch(several)
            self.stop_poolswitch(single)

    def sse_targets(self) -> None:
        port = free_port()
        name = "sse-upstream"
        proc = self.procs.start(
            name,
            [
                sys.executable,
                str(BENCH_DIR / "sse_upstream.py"),
                "--port",
                str(port),
                "--events",
                str(SSE_EVENTS),
                "--interval",
                "0.05",
            ],
            self.pinning.load_cpu,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            try:
                wait_http_ok(f"{base}/ready", timeout=15.0, proc=proc)
            except BenchError as exc:
                raise BenchError(f"{exc}\n{self.procs.log_tail(name)}") from exc
            self.res.sse_direct = sse.measure(base + CHAT_PATH, SSE_SAMPLES, SSE_EVENTS)
            progress(f"SSE direct: first event {self.res.sse_direct.first_event_ms_median:.2f} ms")
            ps = self.start_poolswitch("poolswitch-sse", base, 2)
            try:
                self.res.sse_proxy = sse.measure(ps.url(CHAT_PATH), SSE_SAMPLES, SSE_EVENTS)
                progress(
                    f"SSE via PoolSwitch: first event "
                    f"{self.res.sse_proxy.first_event_ms_median:.2f} ms"
                )
            finally:
                self.stop_poolswitch(ps)
        finally:
            self.procs.stop(name)

    def tls_targets(self) -> None:
        """(t) HTTPS upstream against (tp) plain HTTP, paired, and (t)'s TLS handshakes."""
        assert self.nginx is not None
        runs, self.res.tls_handshakes = tls.run_section(self, self.nginx.ports.upstream)
        for target, by_conc in runs.items():
            self.res.runs.setdefault(target, {}).update(by_conc)

    def streams_targets(self) -> None:
        self.res.streams = streams.run_section(self, self.streams)

    def run_all(self, only: frozenset[str] | None = None) -> None:
        """Every section, or those named in `only` (see SECTIONS)."""
        wanted = SECTIONS if only is None else only
        if wanted & UPSTREAM_SECTIONS:
            try:
                self.start_upstream()
            except BenchError as exc:
                self.fail("nginx upstream", exc)
        if self.nginx is not None:
            port = self.nginx.ports
            shared = SharedState(self, nginx.url(port.upstream))
            sections: tuple[tuple[str, str, Callable[[], None]], ...] = (
                ("nginx", "nginx targets (a, b, bl)", self.nginx_targets),
                ("c", "(c) PoolSwitch 2 keys", self.poolswitch_2keys),
                (
                    "cq",
                    "(cq) PoolSwitch 2 keys, quiet",
                    lambda: self.poolswitch_plain("cq", port.upstream, 2, QUIET_LOG_LEVEL),
                ),
                (
                    "d",
                    "(d) PoolSwitch 1000 keys",
                    lambda: self.poolswitch_plain("d", port.upstream, 1000),
                ),
                (
                    "e",
                    "(e) PoolSwitch 2 keys, k1 429s",
                    lambda: self.poolswitch_plain("e", port.limited, 2),
                ),
                ("pools", "(p) PoolSwitch 3 pools vs (p1) 1 pool, paired", self.pools_paired),
                ("redis", "(r) PoolSwitch on Redis vs (rm) memory, paired", shared.redis_vs_memory),
                ("workers", "(w2) --workers 2 vs (w1) 1, paired", shared.workers),
                ("propagation", "propagation delay, two replicas on Redis", shared.propagation),
                ("tls", "(t) HTTPS upstream vs (tp) plain, paired", self.tls_targets),
            )
            try:
                for name, what, section in sections:
                    if name not in wanted:
                        continue
                    try:
                        section()
                    except BenchError as exc:
                        self.fail(what, exc)
            finally:
                shared.close()
            self.nginx.stop()
        if "sse" in wanted:
            try:
                self.sse_targets()
            except BenchError as exc:
                self.fail("SSE first-event delay", exc)
        if "streams" in wanted:
            try:
                self.streams_targets()
            except BenchError as exc:
                self.fail("many open streams", exc)


def _rps(run: WrkResult) -> float:
    return run.rps


THREE_POOLS = ("openai", "anthropic", "gemini")
"""(p): a gateway config, three pools at /openai, /anthropic, /gemini; load goes to /gemini."""
PAIRED_ROUNDS = 5
UPSTREAM_SECTIONS = frozenset(
    {"nginx", "c", "cq", "d", "e", "pools", "redis", "workers", "propagation", "tls"}
)
SECTIONS = UPSTREAM_SECTIONS | {"sse", "streams"}
REDIS_SECTIONS = frozenset({"redis", "workers", "propagation"})
"""Names for --only: nginx (a, b, bl), c (with RSS), cq, d, e, pools (p, p1), redis (r, rm),
workers (w1, w2), propagation, tls (t, tp), sse, streams (sd, s, sn)."""


def _exit_on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="PoolSwitch benchmark harness")
    p.add_argument("--duration", type=float, default=None, help="seconds per run (default 10)")
    p.add_argument("--quick", action="store_true", help="3 s per run, 1 s warm-up")
    p.add_argument("--json", type=Path, default=None, help="also write raw results here")
    p.add_argument(
        "--only",
        type=_sections,
        default=None,
        metavar="SECTIONS",
        help=f"comma-separated sections to run, of: {', '.join(sorted(SECTIONS))} (default all)",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="record (c) with py-spy during its c=16 run and print the top frames",
    )
    p.add_argument(
        "--streams",
        type=_positive,
        default=streams.STREAMS,
        metavar="N",
        help=f"concurrent SSE streams of the streams section (default {streams.STREAMS:,})",
    )
    return p.parse_args(argv)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text!r}")
    return value


def _sections(text: str) -> frozenset[str]:
    names = frozenset(n.strip() for n in text.split(",") if n.strip())
    unknown = sorted(names - SECTIONS)
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown section(s) {', '.join(unknown) or '(none given)'}; "
            f"known: {', '.join(sorted(SECTIONS))}"
        )
    return names


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    duration = args.duration if args.duration is not None else (3.0 if args.quick else 10.0)
    warmup = 1.0 if args.quick or duration < 5 else 2.0
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        wanted = SECTIONS if args.only is None else args.only
        needs_redis = bool(wanted & REDIS_SECTIONS)
        installed = ensure_tools(["nginx", "wrk", *(["redis-server"] if needs_redis else [])])
    except BenchError as exc:
        print(f"cannot run the benchmark: {exc}", file=sys.stderr)
        return 1
    pinning = Pinning()
    n_cpus = len(usable_cpus())
    pinning.pin_self()
    with tempfile.TemporaryDirectory(prefix="poolswitch-bench-") as tmpname:
        tmp = Path(tmpname)
        procs = Processes(tmp, pinning)
        try:
            bench = Bench(tmp, procs, pinning, duration, warmup)
            bench.profile = args.profile
            bench.streams = args.streams
            res = bench.res
            res.meta = {
                "poolswitch": poolswitch_proc.version(),
                "python": f"{platform.python_version()} ({sys.executable})",
                "nginx": nginx.version(),
                "wrk": Wrk.version(),
                "cpu": f"{cpu_model()}, {n_cpus} usable CPUs",
                "pinning": pinning.describe(),
                "duration": f"{duration:g} s per run after a {warmup:g} s warm-up",
            }
            load = load_average()
            if load is not None:
                busy = "  <-- other processes are busy: figures will be noisy" if load > 0.5 else ""
                res.meta["load"] = f"{load:.2f} (1-min load average before starting){busy}"
            if installed:
                res.meta["installed"] = " ".join(installed)
            if args.profile:
                res.meta["profile"] = "py-spy records (c) during its c=16 run (--profile)"
                if args.only is not None and "c" not in args.only:
                    bench.fail("--profile", BenchError("needs section c (--only ...,c)"))
            if args.only is not None:
                res.only = sorted(args.only)
                res.meta["sections"] = f"only {', '.join(res.only)} (--only)"
            bench.run_all(args.only)
        except KeyboardInterrupt:
            print("interrupted; stopping processes", file=sys.stderr)
            return 130
        finally:
            procs.stop_all()
    all_checks = checks(res)
    print(render(res, all_checks), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(to_json(res, all_checks), indent=2) + "\n")
        print(f"\nraw results written to {args.json}")
    return 1 if res.errors else 0


if __name__ == "__main__":
    sys.exit(main())
