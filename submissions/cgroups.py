"""cgroup v2 limits of a sandboxed step, where the host delegates a cgroup to the worker.

A worker started under systemd with ``Delegate=yes`` (or in a container with its own cgroup
namespace and a writable ``/sys/fs/cgroup``) owns a cgroup v2 directory whose
``cgroup.controllers`` lists ``memory`` and ``pids``. There each step gets a child cgroup with
``memory.max`` (RAM and tmpfs pages together; swap off) and ``pids.max``; the launch moves the
step into it before ``bwrap`` starts, so everything inside is counted, and ``cgroup.kill``
empties it at the end. The worker moves itself into a leaf ``worker`` child first (cgroup v2 lets
only a cgroup without processes of its own enable controllers for its children).

Where no such cgroup exists (cgroup v1, a v2 hierarchy without those controllers, or no write
access), ``delegated()`` says why and the step runs with its rlimits and bounded tmpfs only; the
run's record names which limits applied.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from dataclasses import dataclass
from pathlib import Path

CONTROLLERS = ("memory", "pids")


@dataclass(frozen=True)
class Delegation:
    root: Path | None  # the cgroup whose children the steps get; None when there is none
    why_not: str | None = None


def _own_cgroup() -> Path | None:
    """This process's cgroup v2 directory (``0::/path`` under a cgroup2 mount), or None."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    rel = next((line[3:] for line in lines if line.startswith("0::")), None)
    if rel is None:
        return None
    for m in mounts:
        fields = m.split()
        sep = fields.index("-") if "-" in fields else -1
        if sep > 0 and fields[sep + 1] == "cgroup2":
            root, mount_point = fields[3], fields[4]
            if rel.startswith(root):
                return Path(mount_point) / rel[len(root) :].lstrip("/")
    return None


@functools.cache
def delegated() -> Delegation:
    """The cgroup v2 directory under which steps get their own limits, or why there is none."""
    own = _own_cgroup()
    if own is None:
        return Delegation(None, "no cgroup v2 hierarchy")
    try:
        available = (own / "cgroup.controllers").read_text().split()
    except OSError as exc:
        return Delegation(None, f"cgroup v2 {own} unreadable ({exc.strerror})")
    missing = [c for c in CONTROLLERS if c not in available]
    if missing:
        return Delegation(None, f"cgroup v2 {own} delegates no {'/'.join(missing)} controller")
    if not os.access(own, os.W_OK) or not os.access(own / "cgroup.subtree_control", os.W_OK):
        return Delegation(None, f"cgroup v2 {own} is not writable by this worker")
    try:
        enabled = (own / "cgroup.subtree_control").read_text().split()
        if not all(c in enabled for c in CONTROLLERS):
            leaf = own / "worker"
            leaf.mkdir(exist_ok=True)
            (leaf / "cgroup.procs").write_text(str(os.getpid()))
            (own / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in CONTROLLERS))
    except OSError as exc:
        return Delegation(None, f"cgroup v2 {own}: cannot enable {'/'.join(CONTROLLERS)} ({exc.strerror})")
    return Delegation(own)


@dataclass
class StepCgroup:
    """One step's cgroup: created before the launch, joined by the launched process, removed after."""

    path: Path

    @classmethod
    def create(cls, name: str, *, memory_bytes: int | None, pids: int) -> StepCgroup | None:
        d = delegated()
        if d.root is None:
            return None
        path = d.root / name
        try:
            path.mkdir(exist_ok=True)
            if memory_bytes is not None:
                (path / "memory.max").write_text(str(memory_bytes))
                with contextlib.suppress(OSError):
                    (path / "memory.swap.max").write_text("0")
            (path / "pids.max").write_text(str(pids))
        except OSError:
            with contextlib.suppress(OSError):
                path.rmdir()
            return None
        return cls(path)

    def procs_fd(self) -> int:
        """An fd on ``cgroup.procs``: the launched child writes ``0`` to it to join (before exec)."""
        return os.open(self.path / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC)

    def peak_memory(self) -> int | None:
        try:
            return int((self.path / "memory.peak").read_text())
        except (OSError, ValueError):
            return None

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            (self.path / "cgroup.kill").write_text("1")
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.1)
