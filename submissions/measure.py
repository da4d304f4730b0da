"""The verifier's own measurements of a sandboxed step: its clock, its bounds, its progress.

``supervise`` watches a launched step until it exits or is stopped: the wall-time cap, the disk
used by its writable directories, and a cancel event (the lease is lost). The clock of a
training run runs from launch to the last change of its final checkpoint (``model.pt``: inode,
size, mtime and ctime, looked at every poll), so neither an early placeholder nor anything the
run does after writing its weights moves it; a run that leaves no checkpoint has no time.

``MetricsTail`` reads the run's ``metrics.jsonl`` for progress only (nothing from it is ranked):
at most ``MAX_POLL_BYTES`` per poll, lines longer than ``MAX_LINE_BYTES`` dropped whole, so a
newline-free or endless file costs the verifier a bounded amount of memory.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from submissions.artifacts import ArtifactError, disk_usage, open_regular
from submissions.sandbox import Limits, kill_group

POLL_INTERVAL_S = 0.2
DISK_CHECK_EVERY_S = 5.0
MAX_POLL_BYTES = 1024 * 1024
MAX_LINE_BYTES = 64 * 1024


@dataclass(frozen=True)
class StepOutcome:
    returncode: int | None
    elapsed_s: float  # launch -> exit (or stop)
    final_s: float | None  # launch -> last change of the final checkpoint, None when there is none
    stop_reason: str | None  # why the verifier stopped it (time cap, disk cap, cancelled), else None


class MetricsTail:
    """Complete new JSON lines of a growing metrics.jsonl, read in bounded pieces."""

    def __init__(self, root: Path, rel: str) -> None:
        self.root = root
        self.rel = rel
        self.offset = 0
        self.partial = b""
        self.skipping = False  # inside a line longer than MAX_LINE_BYTES: drop up to its newline
        self.last: dict[str, object] | None = None

    def poll(self) -> dict[str, object] | None:
        try:
            with open_regular(self.root, self.rel, cap=2**62) as (fd, size):
                if size < self.offset:  # truncated or replaced: start over
                    self.offset, self.partial, self.skipping = 0, b"", False
                os.lseek(fd, self.offset, os.SEEK_SET)
                chunk = os.read(fd, MAX_POLL_BYTES)
        except (FileNotFoundError, ArtifactError, OSError):
            return self.last
        self.offset += len(chunk)
        lines = chunk.split(b"\n")
        for i, piece in enumerate(lines):
            complete = i < len(lines) - 1
            if self.skipping:
                if complete:
                    self.skipping = False
                continue
            self.partial += piece
            if len(self.partial) > MAX_LINE_BYTES:
                self.partial, self.skipping = b"", not complete
                continue
            if complete:
                self._row(self.partial)
                self.partial = b""
        return self.last

    def _row(self, line: bytes) -> None:
        try:
            row = json.loads(line)
        except ValueError:
            return
        if isinstance(row, dict) and isinstance(row.get("step"), int):
            if self.last is not None and "num_iterations" not in row:  # e.g. the final eval line
                row = {**row, "num_iterations": self.last.get("num_iterations")}
            self.last = row


def _signature(path: Path | None) -> tuple[int, int, int, int] | None:
    if path is None:
        return None
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def supervise(
    proc: subprocess.Popen[bytes],
    limits: Limits,
    *,
    started: float,
    disk_dirs: list[Path],
    final_file: Path | None = None,
    cancel: threading.Event | None = None,
    on_poll: Callable[[float], None] | None = None,
    poll_s: float = POLL_INTERVAL_S,
) -> StepOutcome:
    """Wait for the step, enforcing its bounds; ``started`` is ``time.monotonic()`` at launch."""
    stop_reason: str | None = None
    last_sig = _signature(final_file)
    final_s: float | None = None
    next_disk = started + DISK_CHECK_EVERY_S
    try:
        while proc.poll() is None:
            now = time.monotonic()
            sig = _signature(final_file)
            if sig != last_sig:
                last_sig, final_s = sig, (now - started if sig is not None else None)
            if now - started > limits.wall_s:
                stop_reason = f"exceeded the time cap of {limits.wall_s:.0f} s"
            elif cancel is not None and cancel.is_set():
                stop_reason = "cancelled"
            elif now >= next_disk:
                next_disk = now + DISK_CHECK_EVERY_S
                used, entries = disk_usage(disk_dirs)
                if used > limits.disk_bytes:
                    stop_reason = f"used {used} bytes of disk, more than the cap of {limits.disk_bytes}"
                elif entries > 200_000:
                    stop_reason = f"created {entries} files, more than the cap of 200000"
            if stop_reason is not None:
                break
            if on_poll is not None:
                on_poll(now - started)
            time.sleep(poll_s)
    finally:
        if proc.poll() is None:
            kill_group(proc)
    ended = time.monotonic()
    sig = _signature(final_file)
    if sig != last_sig:  # changed between the last poll and the exit: count up to the exit
        last_sig, final_s = sig, (ended - started if sig is not None else None)
    if last_sig is None or final_s is None:
        final_s = None
    return StepOutcome(proc.returncode, ended - started, final_s, stop_reason)
