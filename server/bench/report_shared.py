"""The printed sections of the shared-state runs: the CPU each process used in (rm), (r),
(w1), (w2), what limits (w2), and the propagation-delay distribution."""

from __future__ import annotations

from cpu import WRK, CpuUse
from propagation import PropagationResult

CPU_TARGETS = ("rm", "r", "w1", "w2")
CPU_COLUMNS = ("poolswitch", "worker 1", "worker 2", "supervisor", WRK, "nginx", "redis-server")
OURS = ("poolswitch", "supervisor", WRK, "nginx", "redis-server")  # "worker i" is in poolswitch
SATURATED = 0.9  # share of the machine's CPUs busy from which a run counts as CPU-bound
OTHERS_BUSY = 0.2  # cores taken by other processes from which a (w1)/(w2) pair is flagged


def render_cpu(cpu: dict[str, dict[int, CpuUse]], rps: dict[str, dict[int, float]]) -> list[str]:
    if not any(t in cpu for t in CPU_TARGETS):
        return []
    lines = [
        "",
        "CPU used during the median run of each (cores: CPU seconds per wall second, utime +",
        "stime from /proc; wrk from the harness's reaped children; machine from /proc/stat)",
    ]
    head = ["target", "conc", "req/s", *CPU_COLUMNS, "other", "machine"]
    widths = [7, 5, 9, *(max(len(c), 5) for c in CPU_COLUMNS), 5, 8]
    lines.append(
        "  ".join(
            h.rjust(w) if i else h.ljust(w)
            for i, (h, w) in enumerate(zip(head, widths, strict=True))
        )
    )
    lines.append("-" * (sum(widths) + 2 * len(widths)))
    for t in CPU_TARGETS:
        for conc, use in sorted(cpu.get(t, {}).items()):
            cells = [f"({t})", str(conc), f"{rps.get(t, {}).get(conc, 0.0):,.0f}"]
            cells += [f"{use.cores[c]:.2f}" if c in use.cores else "-" for c in CPU_COLUMNS]
            cells.append(f"{_other(use):.2f}")
            cells.append(f"{use.machine:.2f}/{use.n_cpus}")
            lines.append(
                "  ".join(
                    c.rjust(w) if i else c.ljust(w)
                    for i, (c, w) in enumerate(zip(cells, widths, strict=True))
                )
            )
    lines.append(
        "other: the rest of the machine's busy CPU (processes outside the benchmark, the harness)"
    )
    lines += _limits(cpu, rps)
    return lines


def _other(use: CpuUse) -> float:
    return max(use.machine - sum(use.cores.get(n, 0.0) for n in OURS), 0.0)


def _limits(cpu: dict[str, dict[int, CpuUse]], rps: dict[str, dict[int, float]]) -> list[str]:
    """One line per concurrency on what bounds (w2) against (w1)."""
    out = []
    for conc, two in sorted(cpu.get("w2", {}).items()):
        one = cpu.get("w1", {}).get(conc)
        r1, r2 = rps.get("w1", {}).get(conc), rps.get("w2", {}).get(conc)
        if one is None or not r1 or not r2:
            continue
        load = sum(two.cores.get(n, 0.0) for n in (WRK, "nginx", "redis-server"))
        proxy = two.cores.get("poolswitch", 0.0) + two.cores.get("supervisor", 0.0)
        busy = two.machine / two.n_cpus
        verdict = (
            f"CPU-bound: the machine was {busy:.0%} busy"
            if busy >= SATURATED
            else f"not CPU-bound: the machine was only {busy:.0%} busy"
        )
        out.append(
            f"(w2)/(w1) at c={conc}: {r2 / r1:.2f}x req/s with {proxy:.2f} vs "
            f"{one.cores.get('poolswitch', 0.0):.2f} cores for PoolSwitch; {verdict}, the load "
            f"side (wrk + nginx + redis) took {load:.2f} and other processes {_other(two):.2f} "
            f"of {two.n_cpus} cores"
        )
        busiest = max(_other(one), _other(two))
        if busiest > OTHERS_BUSY:
            out.append(
                f"    <-- processes outside the benchmark took up to {busiest:.2f} cores in these "
                "runs: the ratio says more about them than about --workers"
            )
    if out:
        out += [
            "    On 2 CPUs two workers cannot have a core each: wrk and nginx take part of one,",
            "    so (w2) can only gain the CPU time (w1) leaves idle (while it waits on the",
            "    upstream); past that the workers take turns on the same cores. Uneven worker",
            "    columns mean the kernel handed one worker most of the connections.",
        ]
    return out


def render_propagation(prop: PropagationResult | None) -> list[str]:
    if prop is None:
        return []
    lines = [
        "",
        f"Propagation delay: {prop.transitions} transitions (admin disable/enable of one key) "
        "on replica A, both replicas on one Redis",
    ]
    s = prop.summary_ms()
    if s is not None:
        shown = "  ".join(f"{k} {v:.1f}" for k, v in s.items())
        lines.append(f"  (b) A's admin call sent -> B's /status shows it, ms: {shown}")
    if prop.admin_ms:
        admin = sorted(prop.admin_ms)
        lines.append(
            f"      of which A's admin call itself (write to Redis included), median "
            f"{admin[len(admin) // 2]:.1f} ms; not shown by B within {prop.bound_s:g} s: "
            f"{prop.not_seen}"
        )
    lines.append(
        f"  (a) B's poolswitch_state_propagation_seconds, {prop.observed} observations (writer's "
        "clock -> B applies), per bucket:"
    )
    lower = "0"
    cells = []
    for le, n in prop.buckets.items():
        upper = "inf" if le == "+Inf" else f"{float(le) * 1000:g}"
        cells.append(f"{lower}-{upper} ms: {n}")
        lower = upper
    for i in range(0, len(cells), 4):
        lines.append("      " + ", ".join(cells[i : i + 4]))
    return lines
