"""How long a case may run in its worker: a budget of the worker's own CPU time, and a wall-clock bound far above it.

A machine shared with other jobs gives a worker a fraction of a core, so the wall clock of a case says
little about the case: at load 20 on 2 cores, a case that needs 10 s of work takes minutes. What a case
costs is the CPU time its worker spends on it (every thread of the process, user and system, as the
kernel counts it in /proc/PID/stat); a case that exceeds its budget of CPU seconds is stopped, however
loaded the machine is. A case that makes no progress at all (a deadlock, a sleep, a C call that never
returns) spends no CPU time: the wall-clock bound, `WALL_FACTOR` times the budget and more on a loaded
machine (`wall_bound`), stops it too.

A case's budget is `--timeout` plus `SECONDS_PER_ELEMENT` per prediction element (large cases need
more: paddle's CPU log_softmax grows with the square of the number of classes), or the case's own
`timeout:` key, which replaces both.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

# Measured with paddle 3.3.1 (every variant, one thread): [8, 50000] takes 2.6 s of CPU time, [32, 50000]
# 10.6 s (its nll_loss over log_softmax 10.4 s of it, and 207 s of wall time at a load of 28 on 2 cores),
# growing with N: about 85 s at [256, 50000]. 10 us an element gives that case 128 s over the 120 s default.
SECONDS_PER_ELEMENT = 1e-5
# How far wall time may run past the CPU budget before a case that spends no CPU time is called hung;
# more when the machine is loaded (`wall_bound`): on a quiet machine a hung case is named after
# 4 x --timeout.
WALL_FACTOR = 4.0
# Over the load: a runnable process gets about 1 / (load per core) of a core; twice that is the margin.
LOAD_MARGIN = 2.0
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") and "SC_CLK_TCK" in os.sysconf_names else 100


def seconds(case: Any, timeout: float) -> float:
    """The CPU seconds `case` may take in a worker: its own `timeout:`, else `timeout` and its size's share."""
    own = getattr(case, "timeout", None)
    if own is not None:
        return float(own)
    return timeout + SECONDS_PER_ELEMENT * int(case.predictions.size)


def wall_bound(budget: float) -> float:
    """The wall seconds after which a case that has not used up its CPU budget is stopped anyway: it
    makes no progress. `WALL_FACTOR` times the budget, or `LOAD_MARGIN` times what the load (runnable
    processes per core, over the last minute) stretches the budget to, whichever is more."""
    try:
        per_core = os.getloadavg()[0] / (os.cpu_count() or 1)
    except OSError:  # no load average on this platform
        per_core = 0.0
    return budget * max(WALL_FACTOR, LOAD_MARGIN * per_core)


def cpu_seconds(pid: int) -> float | None:
    """The CPU time process `pid` has used so far (all its threads, user and system); None where the
    kernel does not say (no /proc: then the budget counts wall time, as `Clock` does)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime: fields 14 and 15 of stat(5)


@dataclass
class Clock:
    """One case's clocks in its worker, from when its worker could start it (the previous answer, or
    the send to an idle worker): the wall time, and the CPU time the worker spent since. A case queued
    behind another in the worker's input is not running: its clocks start at the answer before it."""

    pid: int
    budget: float
    wall_started: float
    cpu_started: float | None

    @classmethod
    def start(cls, pid: int, budget: float, now: float) -> Clock:
        return cls(pid, budget, now, cpu_seconds(pid))

    def spent(self, now: float) -> float:
        """The CPU seconds the case has used (wall seconds where the CPU time cannot be read)."""
        cpu = cpu_seconds(self.pid)
        if cpu is None or self.cpu_started is None:
            return now - self.wall_started
        return cpu - self.cpu_started

    def verdict(self, now: float) -> str | None:
        """Why the case is to be stopped now ("timed out after ..."), or None while it may go on."""
        spent = self.spent(now)
        if spent > self.budget:
            return f"timed out after {_shown(self.budget)} s of CPU time"
        wall = now - self.wall_started
        if wall > wall_bound(self.budget):
            return (
                f"timed out after {wall:.0f} s of wall time with {spent:.1f} s of CPU time "
                f"(no progress; its budget: {_shown(self.budget)} s of CPU time)"
            )
        return None


def _shown(seconds: float) -> str:
    return f"{round(seconds, 1):g}"
