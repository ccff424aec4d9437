"""The many-open-streams section (`--only streams`): N concurrent SSE streams (default 10,000;
20 events 500 ms apart) against a fast SSE upstream (streams_upstream.py, on the load CPU):
(sd) direct, (s) through PoolSwitch, (sn) through nginx as a proxy (`proxy_buffering off`),
the proxies on the proxy CPU, the generator (streams_client.py) in this process on the load
CPU. Per target: errors, per-event delay from the upstream's write to the client (p50/p99;
the proxies' minus the direct one is the added delay), and for a proxy its peak RSS (VmHWM,
nginx: master + worker) and CPU seconds per event.

The open-file limit of this process (its children inherit it) is raised to what the streams
need (2 per stream in a proxy, plus a few): the soft limit to the hard one, and the hard one
too when allowed (CAP_SYS_RESOURCE); when it stays too low the section runs all the same and
the report says so beside the errors it causes.
"""

from __future__ import annotations

import contextlib
import resource
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import harness

import streams_client
from cpu import process_cpu_s
from nginx import _http_common, _Instance, pick_ports
from payloads import CHAT_PATH
from proc import BenchError, Processes, child_pids, free_port, wait_http_ok
from report_checks import Check, check, info
from streams_client import Load

EVENTS = 20
INTERVAL_S = 0.5
STREAMS = 10_000
ADDED_P99_MS = 10.0
RSS_LIMIT_MIB = 400.0
FD_MARGIN = 1000  # connections allowed beyond N (PoolSwitch's limits, nginx's)
FD_NEEDED = 64  # a proxy's files besides its 2 N sockets (listening sockets, logs, ...)
TARGETS = {"sd": "direct", "s": "through PoolSwitch", "sn": "through nginx proxy"}
BENCH_DIR = Path(__file__).resolve().parent


def progress(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def _quantile(d: list[float], q: float) -> float | None:
    if not d:
        return None
    if len(d) == 1:
        return d[0]
    return statistics.quantiles(d, n=1000, method="inclusive")[int(q * 1000) - 1]


@dataclass
class StreamsRun:
    target: str
    load: Load
    proxy_cpu_s: float | None = None
    proxy_rss_peak_kib: int | None = None
    upstream_cpu_s: float | None = None

    @property
    def load_cpu_s(self) -> float:
        """The load side's CPU: the generator's and the upstream's."""
        return self.load.client_cpu_s + (self.upstream_cpu_s or 0.0)

    def delay_ms(self, q: float) -> float | None:
        return _quantile(self.load.delays_ms, q)

    def first_ms(self, q: float) -> float | None:
        return _quantile(self.load.first_ms, q)

    @property
    def errors(self) -> int:
        return sum(self.load.errors.values())

    @property
    def cpu_per_event_us(self) -> float | None:
        if self.proxy_cpu_s is None or not self.load.events:
            return None
        return self.proxy_cpu_s / self.load.events * 1e6

    def to_json(self) -> dict[str, Any]:
        return {
            "streams": self.load.streams,
            "completed": self.load.completed,
            "events": self.load.events,
            "errors": dict(self.load.errors),
            "delay_ms": {"p50": self.delay_ms(0.5), "p99": self.delay_ms(0.99)},
            "first_event_ms": {"p50": self.first_ms(0.5), "p99": self.first_ms(0.99)},
            "wall_s": self.load.wall_s,
            "client_cpu_s": self.load.client_cpu_s,
            "upstream_cpu_s": self.upstream_cpu_s,
            "proxy_cpu_s": self.proxy_cpu_s,
            "proxy_rss_peak_kib": self.proxy_rss_peak_kib,
            "cpu_per_event_us": self.cpu_per_event_us,
        }


@dataclass
class StreamsResult:
    streams: int
    fd_limit: str
    runs: dict[str, StreamsRun]


def raise_fd_limit(needed: int) -> tuple[str, bool]:
    """Raise RLIMIT_NOFILE towards `needed`: (what was done, whether it is enough)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    before = f"{soft}/{hard}"
    if hard != resource.RLIM_INFINITY and hard < needed:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, needed))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    enough = soft == resource.RLIM_INFINITY or soft >= needed
    text = f"open files soft/hard {before} -> {soft}/{hard} (need {needed})"
    if not enough:
        text += f"  <-- the hard limit {hard} is too low for these streams"
    return text, enough


def peak_rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _tree(pid: int) -> list[int]:
    return [pid, *child_pids(pid)]


def render_nginx_config(w: Path, port: int, upstream_port: int, streams: int) -> str:
    conns = 2 * streams + FD_MARGIN
    return f"""
worker_processes 1;
worker_rlimit_nofile {conns + FD_MARGIN};
pid {w}/nginx.pid;
error_log {w}/error.log warn;
events {{
    worker_connections {conns};
}}
http {{
{_http_common(w)}
    upstream streams_upstream {{
        server 127.0.0.1:{upstream_port};
        keepalive 1024;
    }}
    # (sn) nginx as an SSE proxy: each event passed on as it comes
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location /ready {{
            return 200 ok;
        }}
        location / {{
            proxy_pass http://streams_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Authorization "Bearer sk-bench-nginx";
            proxy_buffering off;
            proxy_read_timeout 120s;
        }}
    }}
}}
"""


class NginxStreams(_Instance):
    def __init__(self, procs: Processes, workdir: Path, cpu: int | None) -> None:
        super().__init__(procs, "nginx-streams", workdir, cpu)
        (self.port,) = pick_ports(1)

    def start_for(self, upstream_port: int, streams: int) -> None:
        config = render_nginx_config(self.workdir, self.port, upstream_port, streams)
        self._start(config, ())
        wait_http_ok(f"http://127.0.0.1:{self.port}/ready", 10.0)


Harness = harness.Harness


def _measure(
    target: str, port: int, streams: int, upstream: int, pids: list[int] | None = None
) -> StreamsRun:
    ramp = max(1.0, streams / 2000)  # at most 2,000 new connections a second
    before = sum(process_cpu_s(p) or 0.0 for p in pids or [])
    upstream_before = process_cpu_s(upstream)
    load = streams_client.run(port, CHAT_PATH, streams, EVENTS, INTERVAL_S, ramp_s=ramp)
    run = StreamsRun(target, load)
    upstream_after = process_cpu_s(upstream)
    if upstream_before is not None and upstream_after is not None:
        run.upstream_cpu_s = upstream_after - upstream_before
    if pids:
        run.proxy_cpu_s = sum(process_cpu_s(p) or 0.0 for p in pids) - before
        run.proxy_rss_peak_kib = sum(peak_rss_kib(p) or 0 for p in pids)
    p50, p99 = run.delay_ms(0.5), run.delay_ms(0.99)
    kinds = ", ".join(f"{n} {kind}" for kind, n in run.load.errors.most_common(3))
    progress(
        f"({target}) {streams:,} streams: {load.completed:,} complete, {run.errors:,} errors"
        f"{f' ({kinds})' if kinds else ''}; delay p50 {p50 or 0:.2f} ms p99 {p99 or 0:.2f} ms; "
        f"{load.wall_s:.1f} s, CPU of the generator {load.client_cpu_s:.1f} s, of the upstream "
        f"{run.upstream_cpu_s or 0:.1f} s"
    )
    return run


def run_section(bench: Harness, streams: int) -> StreamsResult:
    limit, enough = raise_fd_limit(2 * streams + FD_NEEDED)
    progress(f"streams: {limit}")
    if not enough:  # measured all the same: the streams past the limit show as errors
        progress("streams: WARNING the open-file limit is too low; expect errors beyond it")
    result = StreamsResult(streams, limit, {})
    port = free_port()
    name = "streams-upstream"
    script = str(BENCH_DIR / "streams_upstream.py")
    cmd = [sys.executable, script, "--port", str(port), "--events", str(EVENTS)]
    proc = bench.procs.start(name, [*cmd, "--interval", str(INTERVAL_S)], bench.pinning.load_cpu)
    try:
        try:
            wait_http_ok(f"http://127.0.0.1:{port}/ready", timeout=15.0, proc=proc)
        except BenchError as exc:
            raise BenchError(f"{exc}\n{bench.procs.log_tail(name)}") from exc
        result.runs["sd"] = _measure("sd", port, streams, proc.pid)
        limits: dict[str, object] = {
            "max_connections": streams + FD_MARGIN,
            "max_in_flight_requests": streams + FD_MARGIN,
        }
        ps = bench.start_poolswitch(
            "poolswitch-streams", f"http://127.0.0.1:{port}", 2, settings=limits
        )
        try:
            assert ps.pid is not None
            result.runs["s"] = _measure("s", ps.port, streams, proc.pid, [ps.pid])
        finally:
            bench.stop_poolswitch(ps)
        proxy = NginxStreams(bench.procs, bench.tmp / "nginx-streams", bench.pinning.proxy_cpu)
        proxy.start_for(port, streams)
        try:
            assert proxy.pid is not None
            result.runs["sn"] = _measure("sn", proxy.port, streams, proc.pid, _tree(proxy.pid))
        finally:
            proxy.stop()
    finally:
        bench.procs.stop(name)
    return result


def _added(res: StreamsResult, target: str, q: float) -> float | None:
    run, direct = res.runs.get(target), res.runs.get("sd")
    a = run.delay_ms(q) if run else None
    b = direct.delay_ms(q) if direct else None
    return a - b if a is not None and b is not None else None


def checks(res: StreamsResult | None) -> list[Check]:
    if res is None:
        return []
    n = f"{res.streams:,}"
    s, sn = res.runs.get("s"), res.runs.get("sn")
    rss = s.proxy_rss_peak_kib / 1024 if s and s.proxy_rss_peak_kib else None
    return [
        check(
            f"{n} streams via PoolSwitch: errors",
            float(s.errors) if s else None,
            "{:.0f}",
            "= 0",
            lambda v: v == 0,
        ),
        check(  # over the events of the streams that came: a pass needs them all
            f"{n} streams: added per-event delay p99 (s - sd), 0 errors",
            _added(res, "s", 0.99),
            "{:+.2f} ms",
            f"<= {ADDED_P99_MS:g} ms",
            lambda v: v <= ADDED_P99_MS and s is not None and s.errors == 0,
        ),
        info(
            f"{n} streams: added per-event delay p50 (s - sd)", _added(res, "s", 0.5), "{:+.2f} ms"
        ),
        check(
            f"{n} streams: PoolSwitch peak RSS",
            rss,
            "{:.1f} MiB",
            f"<= {RSS_LIMIT_MIB:g} MiB",
            lambda v: v <= RSS_LIMIT_MIB,
        ),
        info(
            f"{n} streams: PoolSwitch CPU per event", s.cpu_per_event_us if s else None, "{:.1f} us"
        ),
        info(f"{n} streams via nginx proxy: errors", float(sn.errors) if sn else None, "{:.0f}"),
        info(
            f"{n} streams: nginx added delay p99 (sn - sd)", _added(res, "sn", 0.99), "{:+.2f} ms"
        ),
        info(f"{n} streams: nginx CPU per event", sn.cpu_per_event_us if sn else None, "{:.1f} us"),
    ]


HEAD = [
    *("target", "complete", "errors", "events", "p50 ms", "p99 ms", "+p50", "+p99"),
    *("1st p99 ms", "RSS MiB", "CPU s", "us/event", "load s"),
]


def _cells(cells: list[str]) -> str:
    widths = [24, 9, 7, 9, 8, 8, 8, 8, 12, 9, 7, 9, 7]
    pairs = zip(cells, widths, strict=True)
    return "  " + "".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(pairs))


def _num(v: float | None, fmt: str) -> str:
    return "-" if v is None else fmt.format(v)


def render(res: StreamsResult | None) -> list[str]:
    if res is None:
        return []
    lines = [
        "",
        f"Many open streams: {res.streams:,} concurrent SSE streams, {EVENTS} events "
        f"{INTERVAL_S * 1000:.0f} ms apart (generator and upstream on the load CPU)",
        f"  {res.fd_limit}",
        "  delay: upstream write -> client read, per event (+: minus direct); 1st: request ->",
        "  first event; RSS: peak (VmHWM); CPU: the proxy's in the run; load: the generator's and",
        "  the upstream's CPU seconds (both on the load CPU)",
        _cells(HEAD),
    ]
    for target, label in TARGETS.items():
        run = res.runs.get(target)
        if run is None:
            lines.append(f"  ({target}) {label:19}n/a")
            continue
        proxied = target != "sd"
        rss = run.proxy_rss_peak_kib
        cells = [
            f"({target}) {label}",
            f"{run.load.completed:,}",
            f"{run.errors:,}",
            f"{run.load.events:,}",
            _num(run.delay_ms(0.5), "{:.2f}"),
            _num(run.delay_ms(0.99), "{:.2f}"),
            _num(_added(res, target, 0.5) if proxied else None, "{:+.2f}"),
            _num(_added(res, target, 0.99) if proxied else None, "{:+.2f}"),
            _num(run.first_ms(0.99), "{:.1f}"),
            _num(rss / 1024 if rss else None, "{:.1f}"),
            _num(run.proxy_cpu_s, "{:.1f}"),
            _num(run.cpu_per_event_us, "{:.1f}"),
            f"{run.load_cpu_s:.1f}",
        ]
        lines.append(_cells(cells))
        for kind, count in run.load.errors.most_common(5):
            lines.append(f"      {count:,} x {kind}")
    return lines
