"""CPU time used during one measured run: per process group from /proc/<pid>/stat (utime +
stime), wrk from this process's reaped-children rusage, the whole machine from /proc/stat."""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_TICK = float(os.sysconf("SC_CLK_TCK"))
WRK = "wrk"
"""The group measured from RUSAGE_CHILDREN: wrk is the only child reaped during a run."""


def process_cpu_s(pid: int) -> float | None:
    """utime + stime of `pid` in seconds (None if it is gone)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()  # the command name may hold spaces
    return (int(fields[11]) + int(fields[12])) / _TICK  # fields 14 and 15 of proc(5)


def machine_busy_s() -> float:
    """CPU seconds the whole machine spent not idle (all CPUs), from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    busy = sum(values[:8]) - idle  # user nice system idle iowait irq softirq steal
    return busy / _TICK


def _children_s() -> float:
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return use.ru_utime + use.ru_stime


@dataclass
class CpuUse:
    """Cores used (CPU seconds per wall second) by each group over one run."""

    wall_s: float
    cores: dict[str, float] = field(default_factory=dict)
    machine: float = 0.0  # cores busy on the whole machine
    n_cpus: int = 1

    def to_json(self) -> dict[str, Any]:
        return {
            "wall_s": self.wall_s,
            "cores": self.cores,
            "machine": self.machine,
            "n_cpus": self.n_cpus,
        }


class CpuSampler:
    """`start()` before a run and `stop()` after it; groups name the pids to account for."""

    def __init__(self, groups: Mapping[str, Sequence[int]]) -> None:
        self.groups = {name: list(pids) for name, pids in groups.items()}
        self._proc: dict[int, float] = {}
        self._t0 = self._machine0 = self._children0 = 0.0

    def start(self) -> None:
        self._proc = {
            pid: v
            for pids in self.groups.values()
            for pid in pids
            if (v := process_cpu_s(pid)) is not None
        }
        self._children0 = _children_s()
        self._machine0 = machine_busy_s()
        self._t0 = time.monotonic()

    def stop(self) -> CpuUse:
        wall = time.monotonic() - self._t0
        use = CpuUse(wall, n_cpus=os.cpu_count() or 1)
        use.machine = (machine_busy_s() - self._machine0) / wall
        for name, pids in self.groups.items():
            spent = 0.0
            for pid in pids:
                now, before = process_cpu_s(pid), self._proc.get(pid)
                if now is not None and before is not None:
                    spent += now - before
            use.cores[name] = spent / wall
        use.cores[WRK] = (_children_s() - self._children0) / wall
        return use
