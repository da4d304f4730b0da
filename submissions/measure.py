"""The verifier's own measurements of a sandboxed step: its clock, its bounds, its progress.

``supervise`` watches a launched step until it exits or is stopped: the wall-time cap, the disk
used and the files created in its writable directories (every ``DISK_CHECK_EVERY_S`` and again
at exit: output over a cap is deleted, never left on the worker), and a cancel event (the lease
is lost).

The clock of a step runs from its launch to the exit of its whole process tree: for a sealed step
that is the moment the sandbox's PID namespace is gone (its init, bwrap's child, reported on
bwrap's ``--json-status-fd`` and watched through a pidfd; the kernel kills and reaps every process
of the namespace before its init finishes exiting), and the exit of bwrap itself. Nothing a step
writes can stop it early: a detached child, a mmap'd checkpoint or a file touched at the end all
lie inside it.

``MetricsTail`` reads the run's ``metrics.jsonl`` for progress only (nothing from it is ranked):
at most ``MAX_POLL_BYTES`` per poll, lines longer than ``MAX_LINE_BYTES`` dropped whole, so a
newline-free or endless file costs the verifier a bounded amount of memory.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from submissions.artifacts import ArtifactError, disk_usage, open_regular
from submissions.sandbox import Limits, SandboxProcess, kill_group

POLL_INTERVAL_S = 0.2
DISK_CHECK_EVERY_S = 1.0
MAX_POLL_BYTES = 1024 * 1024
MAX_LINE_BYTES = 64 * 1024


@dataclass(frozen=True)
class StepOutcome:
    returncode: int | None
    elapsed_s: float  # launch -> exit of the whole process tree (or stop)
    stop_reason: str | None  # why the verifier stopped it (time cap, disk cap, cancelled), else None
    tree_watched: bool = False  # the sandbox's PID namespace init was watched to its exit


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


class TreeWatch:
    """The exit of a sealed step's whole process tree: bwrap's PID-namespace init, read from its
    ``--json-status-fd`` and held by a pidfd (checked to be bwrap's own child, so a reused pid
    cannot stand in for it)."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.status_fd = proc.status_fd if isinstance(proc, SandboxProcess) else None
        self.buffer = b""
        self.init_fd: int | None = None
        self.status_done = self.status_fd is None
        self.proc_fd: int | None = None
        with contextlib.suppress(OSError):
            self.proc_fd = os.pidfd_open(proc.pid)
        if self.status_fd is not None:
            os.set_blocking(self.status_fd, False)

    def _read_status(self) -> None:
        if self.status_done or self.status_fd is None:
            return
        while True:
            try:
                chunk = os.read(self.status_fd, 4096)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:
                self.status_done = True
                return
            self.buffer += chunk
            while b"\n" in self.buffer:
                line, self.buffer = self.buffer.split(b"\n", 1)
                self._status_line(line)

    def _status_line(self, line: bytes) -> None:
        try:
            doc = json.loads(line)
        except ValueError:
            return
        pid = doc.get("child-pid") if isinstance(doc, dict) else None
        if not isinstance(pid, int) or self.init_fd is not None:
            return
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            return  # already gone and reaped
        if _parent_of(pid) == self.proc.pid:
            self.init_fd = fd
        else:
            os.close(fd)

    def wait(self, timeout_s: float) -> None:
        """Sleep up to ``timeout_s``, waking when bwrap or the namespace init exits."""
        self._read_status()
        fds = [fd for fd in (self.proc_fd, self.init_fd, None if self.status_done else self.status_fd) if fd]
        if fds:
            with contextlib.suppress(OSError, ValueError):
                select.select(fds, [], [], timeout_s)
            self._read_status()
        else:
            time.sleep(timeout_s)

    def init_gone(self) -> bool:
        self._read_status()
        if self.init_fd is None:  # never started, or gone before it could be watched
            return True
        ready, _, _ = select.select([self.init_fd], [], [], 0)
        return bool(ready)

    def close(self) -> None:
        for fd in (self.init_fd, self.proc_fd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.init_fd = self.proc_fd = None


def _parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def check_disk(dirs: list[Path], limits: Limits, *, when: str) -> str | None:
    """Why the step's directories break its disk or file-count cap, else None."""
    used, entries = disk_usage(dirs, max_entries=limits.max_files)
    if used > limits.disk_bytes:
        return f"used {used} bytes of disk, more than the cap of {limits.disk_bytes} ({when})"
    if entries > limits.max_files:
        return f"created more than {limits.max_files} files, the cap ({when})"
    return None


def clear(dirs: list[Path]) -> None:
    """Delete what a step left in its directories (its output broke a cap)."""
    for d in dirs:
        if d.is_dir() and not d.is_symlink():
            for child in list(d.iterdir()):
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        child.unlink()


def supervise(
    proc: subprocess.Popen[bytes],
    limits: Limits,
    *,
    started: float,
    disk_dirs: list[Path],
    cancel: threading.Event | None = None,
    on_poll: Callable[[float], None] | None = None,
    poll_s: float = POLL_INTERVAL_S,
) -> StepOutcome:
    """Wait for the step (and, sealed, for its PID namespace to be gone), enforcing its bounds;
    ``started`` is ``time.monotonic()`` at launch. Output over the disk caps is deleted."""
    stop_reason: str | None = None
    over_disk: str | None = None
    watch = TreeWatch(proc)
    next_disk = started + DISK_CHECK_EVERY_S
    try:
        while proc.poll() is None or not watch.init_gone():
            now = time.monotonic()
            if now - started > limits.wall_s:
                stop_reason = f"exceeded the time cap of {limits.wall_s:.0f} s"
            elif cancel is not None and cancel.is_set():
                stop_reason = "cancelled"
            elif now >= next_disk:
                next_disk = now + DISK_CHECK_EVERY_S
                stop_reason = over_disk = check_disk(disk_dirs, limits, when="while running")
            if stop_reason is not None:
                break
            if on_poll is not None:
                on_poll(now - started)
            watch.wait(poll_s)
        ended = time.monotonic()
    finally:
        if proc.poll() is None:
            kill_group(proc)
        watched = watch.init_fd is not None
        watch.close()
        if isinstance(proc, SandboxProcess):
            proc.release()
    if stop_reason is None:
        stop_reason = over_disk = check_disk(disk_dirs, limits, when="at exit")
    if over_disk is not None:
        clear(disk_dirs)
    return StepOutcome(proc.returncode, ended - started, stop_reason, watched)
