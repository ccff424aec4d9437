"""`--profile`: where PoolSwitch's CPU goes during the (c) c=16 run, sampled with py-spy.

py-spy (`pip install py-spy`; it reads the process's memory through ptrace, so it needs root
or `kernel.yama.ptrace_scope = 0`) records the serving process for the length of the measured
run (not the warm-up), in its `raw` format: one line per distinct stack, `frame;frame;... N`
(frames by function: `name (file.py:first line)`), idle threads left out, so the samples are
where the process was running. The report prints the top frames by self samples (the frame
on top of the stack) and by total samples (anywhere on it).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proc import BenchError

RATE_HZ = 250
TOP = 25


@dataclass
class Profile:
    target: str
    seconds: float
    samples: int = 0
    self_samples: Counter[str] = field(default_factory=Counter)
    total_samples: Counter[str] = field(default_factory=Counter)
    problem: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "seconds": self.seconds,
            "samples": self.samples,
            "self": self.self_samples.most_common(TOP),
            "total": self.total_samples.most_common(TOP),
            "problem": self.problem,
        }


def parse_raw(text: str, profile: Profile) -> Profile:
    """Fold py-spy's raw lines (`a;b;c 12`) into self and total counts per frame."""
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        profile.samples += n
        profile.self_samples[frames[-1]] += n
        for frame in set(frames):
            profile.total_samples[frame] += n
    return profile


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise BenchError("py-spy is not installed (pip install py-spy)")
    return found


class Recorder:
    """One py-spy recording of `pid` for `seconds`, started before the run it covers."""

    def __init__(self, workdir: Path, target: str, pid: int, seconds: float) -> None:
        self.output = workdir / f"py-spy-{target}.txt"
        self.log = workdir / f"py-spy-{target}.log"
        self.profile = Profile(target, seconds)
        cmd = [
            py_spy(), "record", "--pid", str(pid), "--format", "raw", "--output",
            str(self.output), "--rate", str(RATE_HZ), "--duration", str(max(1, round(seconds))),
            "--function", "--nonblocking",
        ]  # fmt: skip
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)

    def finish(self) -> Profile:
        try:
            code = self.proc.wait(timeout=self.profile.seconds + 30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
            code = None
        if code != 0 or not self.output.exists():
            tail = self.log.read_text(errors="replace").strip().splitlines()[-3:]
            self.profile.problem = f"py-spy exited {code}: {' / '.join(tail)}"
            return self.profile
        return parse_raw(self.output.read_text(errors="replace"), self.profile)


def _short(frame: str, width: int = 88) -> str:
    return frame if len(frame) <= width else "..." + frame[-(width - 3) :]


def render(profile: Profile | None) -> list[str]:
    if profile is None:
        return []
    lines = [
        "",
        f"Profile of PoolSwitch ({profile.target}) during the c=16 run: py-spy, {RATE_HZ} Hz, "
        f"{profile.seconds:g} s, {profile.samples:,} samples of a running thread",
    ]
    if profile.problem:
        return [*lines, f"  not recorded: {profile.problem}"]
    if not profile.samples:
        return [*lines, "  no samples"]
    for title, counts in (("self", profile.self_samples), ("total", profile.total_samples)):
        lines.append(f"  top {TOP} frames by {title} samples")
        lines.append(f"  {'samples':>8} {'share':>6}  frame")
        for frame, n in counts.most_common(TOP):
            lines.append(f"  {n:8,} {n / profile.samples:6.1%}  {_short(frame)}")
    return lines
