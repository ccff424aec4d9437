"""What a section module uses of run.py's Bench (a Protocol, so the sections need not import
run.py): the scratch directory, the processes, the CPU pinning, and PoolSwitch started and
stopped the way every section starts it. A section that needs more extends it."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from poolswitch_proc import DEFAULT_LOG_LEVEL, PoolSwitch
from proc import Cpus, Pinning, Processes


class Harness(Protocol):
    tmp: Path
    procs: Processes
    pinning: Pinning

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
    ) -> PoolSwitch: ...

    def stop_poolswitch(self, ps: PoolSwitch) -> None: ...

    def check_forwarding(self, ps: PoolSwitch) -> None: ...
