"""Looking at real processes from tests and benches: who is still running, and how big one got."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path


def processes_with(marker: str) -> list[int]:
    """Pids of the processes whose command line holds ``marker``."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if marker.encode() in (proc / "cmdline").read_bytes():
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


def peak_rss_kib(cmd: list[str]) -> tuple[int, int]:
    """(peak VmHWM of the process in KiB, exit code), sampled while it runs."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    while proc.poll() is None:
        try:
            for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except OSError:
            pass
        time.sleep(0.1)
    return peak, proc.returncode
