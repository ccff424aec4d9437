"""Results container, acceptance checks and the printed report."""

from __future__ import annotations

import functools
import operator
import signal
from dataclasses import dataclass, field
from typing import Any

import profiler
import streams
import tls
from cpu import CpuUse
from profiler import Profile
from propagation import PropagationResult
from report_checks import Check, check, info
from report_shared import render_cpu, render_propagation
from sse import SseResult
from streams import StreamsResult
from tls import Handshakes
from wrk import WrkResult

TARGETS: dict[str, str] = {
    "a": "direct nginx",
    "b": "nginx proxy, access log off",
    "bl": "nginx proxy, access log on",
    "c": "PoolSwitch 2 keys, default log",
    "cq": "PoolSwitch 2 keys, quiet",
    "d": "PoolSwitch 1000 keys",
    "e": "PoolSwitch 2 keys, k1 429s",
    "p1": "PoolSwitch 1 pool, paired with (p)",
    "p": "PoolSwitch 3 pools of 2 keys",
    "rm": "PoolSwitch on memory, paired",
    "r": "PoolSwitch on Redis",
    "w1": "--workers 1 on Redis, all CPUs",
    "w2": "--workers 2 on Redis, all CPUs",
    **tls.TARGETS,
}
# What each target is, printed under the table.
LEGEND = (
    "(b), (bl): nginx as a keepalive reverse proxy in a process of its own on the proxy CPU;",
    "    (bl) logs with nginx's default access log (combined format, unbuffered) to a file.",
    "(c), (d), (e): PoolSwitch at its default --log-level info, as users run it (one",
    "    access-log line per request, to a file); (cq): --log-level warning.",
    "(p): three pools (routes /openai, /anthropic, /gemini), load through /gemini; (p1) the",
    "    single pool beside it: both run at once, loaded in turn, median of 5 rounds each.",
    "(r): storage redis (redis-server on the load CPU), (rm) storage memory, one process each",
    "    on the proxy CPU, paired as (p)/(p1) with 5 s runs. (w1), (w2): --workers 1 and 2 on",
    "    Redis, free to use every CPU (so they share them with wrk and nginx), paired, 3 rounds.",
    "(t): PoolSwitch to nginx over TLS (a certificate made for the run, trusted through",
    "    upstream_ca_file), (tp) the same to plain-HTTP nginx: both run at once, paired, 3 rounds.",
)
CONCURRENCY = (1, 16, 64)

REDIS_FLOOR = 0.9  # (r) on Redis / (rm) on memory, c=16 and c=64
PROPAGATION_P99_MS = 100.0  # A's transition -> B's /status shows it, p99 over 200
PROPAGATION_SHARE = 0.99  # of B's own histogram observations within 100 ms
# issue 16's targets (issue 10 asked for 0.075 and 0.3 ms, p99/p50 <= 3)
PROXY_FLOOR = 0.15  # PoolSwitch (default log) / nginx proxy (access log off), c=16 and c=64
ADDED_P50_MS = 0.2  # PoolSwitch (default log) p50 - direct nginx p50, c=1
TAIL_RATIO = 2.0  # PoolSwitch p99 / p50 at c=64
RSS_LIMIT_MIB = 60.0
RSS_GROWTH_MIB = 2.0


@dataclass
class Results:
    meta: dict[str, Any] = field(default_factory=dict)
    runs: dict[str, dict[int, WrkResult]] = field(default_factory=dict)
    repeat_c64: WrkResult | None = None  # second c=64 run of (c), for RSS growth
    upstream_429s: dict[int, int] = field(default_factory=dict)  # (e): 429s nginx sent per run
    sse_direct: SseResult | None = None
    sse_proxy: SseResult | None = None
    rss_kib: dict[str, int] = field(default_factory=dict)  # of the started PoolSwitch process
    rss_tree_kib: dict[str, int] = field(default_factory=dict)  # plus its children, if any
    exit_codes: dict[str, int | None] = field(default_factory=dict)
    cpu: dict[str, dict[int, CpuUse]] = field(default_factory=dict)  # of the median runs
    propagation: PropagationResult | None = None
    tls_handshakes: Handshakes | None = None
    streams: StreamsResult | None = None
    profile: Profile | None = None
    only: list[str] | None = None  # --only: the sections that ran
    errors: list[str] = field(default_factory=list)

    def run(self, target: str, conc: int) -> WrkResult | None:
        return self.runs.get(target, {}).get(conc)


def _ratio(res: Results, num: str, den: str, conc: int) -> float | None:
    n, d = res.run(num, conc), res.run(den, conc)
    if n is None or d is None or d.rps <= 0:
        return None
    return n.rps / d.rps


def checks(res: Results) -> list[Check]:
    out: list[Check] = []
    ratios = (
        ("c", "b", "PoolSwitch default log / nginx proxy", PROXY_FLOOR),
        ("cq", "b", "PoolSwitch quiet / nginx proxy", None),
        ("c", "bl", "both with access log", None),
        ("d", "c", "1000 keys vs 2", 0.8),
        ("e", "c", "one key limited vs healthy", 0.8),
        ("p", "p1", "three pools vs one, paired", 0.95),
        ("r", "rm", "Redis vs memory, paired", REDIS_FLOOR),
        ("w2", "w1", "--workers 2 vs 1, paired", None),
    )
    for num, den, what, floor in ratios:
        for conc in (16, 64):
            name = f"{num}/{den} req/s, c={conc} ({what})"
            value = _ratio(res, num, den, conc)
            if floor is None:
                out.append(info(name, value, "{:.3f}"))
                continue
            out.append(
                check(
                    name,
                    value,
                    "{:.3f}",
                    f">= {floor:g}",
                    functools.partial(operator.le, floor),  # floor <= value
                )
            )
    a1 = res.run("a", 1)
    for target in ("c", "cq"):
        t1 = res.run(target, 1)
        added = t1.p50_ms - a1.p50_ms if a1 and t1 else None
        name = f"added p50 at c=1 ({target} - a)"
        if target == "cq":
            out.append(info(name, added, "{:.3f} ms"))
        else:
            out.append(
                check(
                    name,
                    added,
                    "{:.3f} ms",
                    f"<= {ADDED_P50_MS:g} ms",
                    lambda v: v <= ADDED_P50_MS,
                )
            )
    c64 = res.run("c", 64)
    tail = c64.p99_ms / c64.p50_ms if c64 and c64.p50_ms > 0 else None
    out.append(
        check(
            "p99/p50 of c at c=64",
            tail,
            "{:.2f}",
            f"<= {TAIL_RATIO:g}",
            lambda v: v <= TAIL_RATIO,
        )
    )
    delta = (
        res.sse_proxy.first_event_ms_median - res.sse_direct.first_event_ms_median
        if res.sse_proxy and res.sse_direct
        else None
    )
    out.append(
        check("SSE first event, proxy - direct", delta, "{:+.2f} ms", "<= 2 ms", lambda v: v <= 2)
    )
    rss = [v / 1024 for v in res.rss_kib.values()]
    out.append(
        check(
            "PoolSwitch RSS, max of measured",
            max(rss) if len(rss) == 3 else None,
            "{:.1f} MiB",
            f"<= {RSS_LIMIT_MIB:.0f} MiB",
            lambda v: v <= RSS_LIMIT_MIB,
        )
    )
    first, second = res.rss_kib.get("after_c64"), res.rss_kib.get("after_c64_repeat")
    growth = (second - first) / 1024 if first is not None and second is not None else None
    out.append(
        check(
            "RSS growth, 2nd c=64 run vs 1st",
            growth,
            "{:+.1f} MiB",
            f"<= {RSS_GROWTH_MIB:.0f} MiB",
            lambda v: v <= RSS_GROWTH_MIB,
        )
    )
    out += _propagation_checks(res.propagation)
    out += tls.checks(res.runs, res.tls_handshakes)
    out += streams.checks(res.streams)
    measured = [r for t in res.runs.values() for r in t.values()]
    bad = sum(r.non2xx + r.errors_total for r in measured)
    out.append(
        check(
            "non-2xx + socket errors, all runs",
            float(bad) if measured else None,
            "{:.0f}",
            "= 0",
            lambda v: v == 0,
        )
    )
    return out


def _propagation_checks(prop: PropagationResult | None) -> list[Check]:
    summary = prop.summary_ms() if prop else None
    p99 = summary["p99"] if summary else None
    return [
        check(
            "propagation A -> B (B's /status), p99",
            p99,
            "{:.1f} ms",
            f"<= {PROPAGATION_P99_MS:g} ms",
            lambda v: v <= PROPAGATION_P99_MS,
        ),
        check(
            "propagation, B's histogram share <= 100 ms",
            prop.share_within("0.1") if prop else None,
            "{:.3f}",
            f">= {PROPAGATION_SHARE:g}",
            lambda v: v >= PROPAGATION_SHARE,
        ),
        check(
            "propagation, transitions B never showed",
            float(prop.not_seen) if prop else None,
            "{:.0f}",
            "= 0",
            lambda v: v == 0,
        ),
    ]


def _row(cells: list[str], widths: list[int]) -> str:
    first = cells[0].ljust(widths[0])
    rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
    return "  ".join([first, *rest]).rstrip()


def _exit_text(code: int | None) -> str:
    if code is None:
        return "did not stop within 10 s, killed"
    if code < 0:
        try:
            return f"ended by signal {signal.Signals(-code).name} ({code})"
        except ValueError:
            return f"ended by signal {-code}"
    return f"exit {code}"


def _render_runs(res: Results) -> list[str]:
    lines: list[str] = []
    add = lines.append
    add("Throughput and latency (wrk -t1, POST 152-byte chat request, 615-byte JSON answer)")
    widths = [36, 5, 10, 8, 8, 8, 8, 7]
    add(
        _row(["target", "conc", "req/s", "p50 ms", "p99 ms", "max ms", "non-2xx", "errors"], widths)
    )
    add("-" * 104)
    for t, label in TARGETS.items():
        measured = [c for c in CONCURRENCY if res.run(t, c) is not None]
        if not measured and res.only is not None:
            continue  # a section --only left out
        for conc in measured or CONCURRENCY:
            r = res.run(t, conc)
            name = f"({t}) {label}"
            if r is None:
                add(_row([name, str(conc), "n/a", "", "", "", "", ""], widths))
                continue
            flag = "  <-- non-2xx/errors!" if r.non2xx or r.errors_total else ""
            cells = [
                name,
                str(conc),
                f"{r.rps:,.0f}",
                f"{r.p50_ms:.3f}",
                f"{r.p99_ms:.3f}",
                f"{r.max_ms:.2f}",
                str(r.non2xx),
                str(r.errors_total),
            ]
            add(_row(cells, widths) + flag)
    if res.repeat_c64 is not None:
        r = res.repeat_c64
        cells = [
            "(c) again (RSS growth run)",
            "64",
            f"{r.rps:,.0f}",
            f"{r.p50_ms:.3f}",
            f"{r.p99_ms:.3f}",
            f"{r.max_ms:.2f}",
            str(r.non2xx),
            str(r.errors_total),
        ]
        add(_row(cells, widths))
    for line in LEGEND:
        add(line)
    return lines


def _render_sse(res: Results) -> list[str]:
    lines: list[str] = []
    add = lines.append
    add("")
    add("SSE (20 events 50 ms apart; median over sequential streams, client on the load CPU)")
    d, p = res.sse_direct, res.sse_proxy
    add(f"  {'':22}{'first event ms':>16}{'(min..max)':>18}{'last event ms':>16}")
    for label, s in (("direct", d), ("through PoolSwitch", p)):
        if s is None:
            add(f"  {label:22}{'n/a':>16}")
            continue
        span = f"{s.first_event_ms_min:.2f}..{s.first_event_ms_max:.2f}"
        add(f"  {label:22}{s.first_event_ms_median:16.2f}{span:>18}{s.last_event_ms_median:16.2f}")
    if d is not None and p is not None:
        add(
            f"  {'difference':22}{p.first_event_ms_median - d.first_event_ms_median:+16.2f}"
            f"{'':18}{p.last_event_ms_median - d.last_event_ms_median:+16.2f}"
        )
    return lines


def _render_rss(res: Results) -> list[str]:
    lines: list[str] = []
    add = lines.append
    add("")
    add("PoolSwitch (c) memory, VmRSS of the serving process")
    labels = {
        "idle": "idle (after start + 1 request)",
        "after_c64": "after the c=64 run",
        "after_c64_repeat": "after a second c=64 run",
    }
    for key, label in labels.items():
        v = res.rss_kib.get(key)
        tree = res.rss_tree_kib.get(key)
        extra = (
            f"  (with children: {tree / 1024:.1f} MiB)" if tree is not None and tree != v else ""
        )
        add(f"  {label:34}{'n/a' if v is None else f'{v / 1024:8.1f} MiB'}{extra}")
    return lines


def render(res: Results, all_checks: list[Check]) -> str:
    lines: list[str] = []
    add = lines.append
    m = res.meta
    add("=" * 78)
    add("PoolSwitch benchmark")
    add("=" * 78)
    for key in (
        "poolswitch",
        "python",
        "nginx",
        "wrk",
        "cpu",
        "load",
        "pinning",
        "duration",
        "installed",
        "profile",
    ):
        if key in m:
            add(f"{key + ':':12} {m[key]}")
    add("")
    if res.runs or res.only is None:
        lines += _render_runs(res)
    if res.upstream_429s:
        per = ", ".join(f"c={c}: {n}" for c, n in sorted(res.upstream_429s.items()))
        add(f"(e) 429s sent by the upstream to k1 during the measured runs: {per}")
    rps = {t: {c: r.rps for c, r in by_conc.items()} for t, by_conc in res.runs.items()}
    lines += render_cpu(res.cpu, rps)
    lines += render_propagation(res.propagation)
    lines += tls.render(res.tls_handshakes)
    lines += streams.render(res.streams)
    if res.only is None or "sse" in res.only:
        lines += _render_sse(res)
    if res.only is None or "c" in res.only:
        lines += _render_rss(res)
    if res.exit_codes:
        add("")
        add("PoolSwitch shutdown on SIGTERM (contract: exit code 0)")
        for name, code in res.exit_codes.items():
            flag = "" if code == 0 else "  <-- not a clean exit 0"
            add(f"  {name:34}{_exit_text(code)}{flag}")
    add("")
    add("=" * 78)
    add("Summary against the acceptance targets")
    add("=" * 78)
    for c in all_checks:
        if c.value is None and res.only is not None:
            continue  # not run (--only)
        add(f"  {c.name:58}{c.shown:>12}  {c.target:>10}  {c.status}")
    if res.errors:
        add("")
        add("Measurements that could not be made:")
        for e in res.errors:
            add(f"  - {e}")
    lines += profiler.render(res.profile)
    return "\n".join(lines)


def to_json(res: Results, all_checks: list[Check]) -> dict[str, Any]:
    return {
        "meta": res.meta,
        "runs": {
            t: {str(c): r.to_json() for c, r in by_conc.items()} for t, by_conc in res.runs.items()
        },
        "targets": TARGETS,
        "repeat_c64": res.repeat_c64.to_json() if res.repeat_c64 else None,
        "upstream_429s": {str(c): n for c, n in res.upstream_429s.items()},
        "sse": {
            "direct": res.sse_direct.to_json() if res.sse_direct else None,
            "poolswitch": res.sse_proxy.to_json() if res.sse_proxy else None,
        },
        "rss_kib": res.rss_kib,
        "rss_tree_kib": res.rss_tree_kib,
        "exit_codes": res.exit_codes,
        "cpu": {
            t: {str(c): u.to_json() for c, u in by_conc.items()} for t, by_conc in res.cpu.items()
        },
        "propagation": res.propagation.to_json() if res.propagation else None,
        "tls_handshakes": res.tls_handshakes.to_json() if res.tls_handshakes else None,
        "streams": ({t: r.to_json() for t, r in res.streams.runs.items()} if res.streams else None),
        "profile": res.profile.to_json() if res.profile else None,
        "checks": [c.to_json() for c in all_checks],
        "errors": res.errors,
    }
