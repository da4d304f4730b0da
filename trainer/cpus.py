"""How many CPU threads a run should use: the cores actually free, not the cores that exist.

torch sizes its thread pool to the machine's cores. On a busy machine that is wrong: two compute
threads on a 2-core machine beside one CPU-bound process fight for one core, and OpenMP's
spin-waiting turns the fight into a 4x slowdown instead of the fair 2x. ``free_cpus`` counts the
cores this process may use (affinity, a cgroup v2 quota) less the cores other processes kept busy
over a short window of ``/proc/stat``; ``cpu_threads`` honours an explicit ``OMP_NUM_THREADS``
(how the verifier passes its own measurement into a sandboxed step) and measures otherwise.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path

THREADS_ENV = "OMP_NUM_THREADS"
DEFAULT_WINDOW_S = 0.5
_PROC_STAT = Path("/proc/stat")
_CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity set, capped by a cgroup v2 ``cpu.max`` quota."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        count = os.cpu_count() or 1
    with contextlib.suppress(OSError, ValueError):  # no cgroup v2 quota file here: the affinity set is all
        quota, period = _CGROUP_CPU_MAX.read_text().split()[:2]
        if quota != "max":
            count = min(count, max(1, math.ceil(int(quota) / int(period))))
    return max(1, count)


def _cpu_times(cpus: set[int]) -> dict[int, tuple[int, int]]:
    """Per CPU in ``cpus``: (total jiffies, idle + iowait jiffies) from /proc/stat."""
    out: dict[int, tuple[int, int]] = {}
    for line in _PROC_STAT.read_text().splitlines():
        name, _, rest = line.partition(" ")
        if not name.startswith("cpu") or name == "cpu":
            continue
        index = int(name[3:])
        if index not in cpus:
            continue
        fields = [int(x) for x in rest.split()]
        # user nice system idle iowait irq softirq steal (guest time is already counted in user)
        total = sum(fields[:8])
        out[index] = (total, fields[3] + fields[4])
    return out


def busy_cpus(window_s: float = DEFAULT_WINDOW_S) -> float:
    """How many of this process's CPUs other work kept busy over the next ``window_s`` seconds
    (this process sleeps meanwhile, so it does not count itself); 0.0 where /proc/stat is missing."""
    try:
        cpus = set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = set(range(os.cpu_count() or 1))
    try:
        before = _cpu_times(cpus)
        time.sleep(window_s)
        after = _cpu_times(cpus)
    except (OSError, ValueError):
        return 0.0
    busy = 0.0
    for cpu, (total, idle) in after.items():
        if cpu not in before:
            continue
        d_total, d_idle = total - before[cpu][0], idle - before[cpu][1]
        if d_total > 0:
            busy += min(1.0, max(0.0, 1.0 - d_idle / d_total))
    return busy


def free_cpus(window_s: float = DEFAULT_WINDOW_S) -> int:
    """The CPUs free for this process now: usable CPUs less the busy ones, rounded, at least 1."""
    usable = usable_cpus()
    return max(1, min(usable, math.floor(usable - busy_cpus(window_s) + 0.5)))


def cpu_threads(environ: Mapping[str, str] | None = None, *, window_s: float = DEFAULT_WINDOW_S) -> tuple[int, str]:
    """(threads to use, where the number came from): ``OMP_NUM_THREADS`` when it is a positive
    integer, else ``free_cpus``."""
    raw = (os.environ if environ is None else environ).get(THREADS_ENV, "").strip()
    if raw.isdigit() and int(raw) >= 1:
        return int(raw), THREADS_ENV
    return free_cpus(window_s), f"free CPUs over {window_s:g} s"
