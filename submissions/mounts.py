"""What a sandboxed step sees: the bwrap mount arguments (system, interpreter, GPU, /proc, tmpfs).

Kept apart from the launch (``submissions.sandbox``) so that the bind list can be read and tested
on its own. The rules:

- the system directories, the interpreter and the installed project are bound read-only at the
  same paths; each parent directory a bind needs is created ``0755`` first (bwrap would otherwise
  copy a mode such as ``/root``'s ``0700`` and the sandbox could not reach its own binds);
- a path that is a symlink, or a chain of them (``/usr/local/cuda -> /etc/alternatives/cuda ->
  /usr/local/cuda-12.4``), is exposed link by link: each link not already inside a bound tree
  becomes a ``--symlink``, and its final target is bound read-only unless a bound tree holds it;
- ``/proc`` is the sandbox's own, with the global knobs (``/proc/sys``, ``sysrq-trigger``,
  ``irq``, ``bus``, ...) bound read-only over it;
- ``/tmp``, ``/run`` and ``/dev/shm`` are tmpfs mounts of a bounded size, and ``/`` and ``/dev``
  are remounted read-only at the end, so no unbounded tmpfs is left writable;
- a GPU step gets ``/dev/nvidia*``, the CUDA trees and only the parts of ``/sys`` that CUDA and
  NCCL read (PCI devices and buses, CPU and NUMA topology, the nvidia modules, InfiniBand).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/opt/conda")
ETC_FILES = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/alternatives",
    "/etc/localtime",
    "/etc/nsswitch.conf",
    "/etc/hosts",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/pki",
)
# Global /proc knobs, bound read-only over the sandbox's own /proc (those that exist here).
PROC_READONLY = ("sys", "sysrq-trigger", "irq", "bus", "fs", "acpi", "scsi", "mtrr", "driver", "tty", "sysvipc")
GPU_LIBS = ("/usr/local/cuda", "/usr/local/nvidia", "/usr/lib/x86_64-linux-gnu/nvidia", "/usr/lib64/nvidia")
GPU_SYS = (
    "/sys/bus/pci",
    "/sys/devices/pci*",
    "/sys/devices/system/cpu",
    "/sys/devices/system/node",
    "/sys/module/nvidia",
    "/sys/module/nvidia_uvm",
    "/sys/class/infiniband",
    "/sys/class/infiniband_verbs",
)
MAX_LINK_HOPS = 40


def resolved(p: Path | str) -> Path:
    return Path(os.path.realpath(p))


def outermost(paths: Iterable[Path]) -> list[Path]:
    """The paths that exist and are not inside another one of them, shortest first."""
    out: list[Path] = []
    for p in sorted(set(paths), key=lambda q: (len(q.parts), str(q))):
        if p.exists() and not any(p == o or p.is_relative_to(o) for o in out):
            out.append(p)
    return out


def inside(path: Path, trees: Iterable[Path]) -> bool:
    return any(path == t or path.is_relative_to(t) for t in trees)


class Binds:
    """The mount arguments of one step, in order, and the trees already visible in the sandbox."""

    def __init__(self) -> None:
        self.args: list[str] = []
        self.visible: list[Path] = []  # trees bound (or linked) so far
        self.made: set[Path] = {Path("/")}

    def parents(self, dest: Path) -> None:
        """``--dir`` (0755) for each missing ancestor of ``dest`` that no bound tree provides."""
        for parent in reversed(dest.parents):
            if parent in self.made or inside(parent, self.visible):
                continue
            self.args += ["--perms", "0755", "--dir", str(parent)]
            self.made.add(parent)

    def bind(self, flag: str, source: Path, dest: Path | None = None) -> None:
        dest = source if dest is None else dest
        self.parents(dest)
        self.args += [flag, str(source), str(dest)]
        self.visible.append(dest)

    def link(self, target: str, where: Path) -> None:
        self.parents(where)
        self.args += ["--symlink", target, str(where)]
        self.visible.append(where)

    def expose(self, path: Path, flag: str = "--ro-bind") -> None:
        """Make ``path`` usable in the sandbox: follow its symlink chain, linking each hop that no
        bound tree shows and binding the final target unless a bound tree holds it."""
        current = Path(os.path.abspath(path))
        for _ in range(MAX_LINK_HOPS):
            if not current.is_symlink():
                break
            target = os.readlink(current)
            if not inside(current, self.visible):
                self.link(target, current)
            current = Path(os.path.normpath(current.parent / target))
        else:
            raise OSError(f"{path}: more than {MAX_LINK_HOPS} symbolic links")
        real = resolved(current)
        if real.exists() and not inside(real, self.visible):
            self.bind(flag, real)


def system_args(binds: Binds, *, network: bool) -> None:
    """The system directories, /etc files, and resolv.conf for a step with network."""
    for d in SYSTEM_DIRS:
        p = Path(d)
        if p.is_symlink():  # merged /usr: /bin -> usr/bin stays a link
            binds.link(os.readlink(p), p)
        elif p.exists():
            binds.bind("--ro-bind", p)
    for f in ETC_FILES:
        if os.path.exists(f):
            binds.bind("--ro-bind", Path(f))
    if network and os.path.exists("/etc/resolv.conf"):
        binds.bind("--ro-bind", resolved("/etc/resolv.conf"), Path("/etc/resolv.conf"))


def proc_args() -> list[str]:
    """The sandbox's own /proc with the global knobs read-only over it."""
    args = ["--proc", "/proc"]
    for name in PROC_READONLY:
        path = f"/proc/{name}"
        if os.path.exists(path):
            args += ["--ro-bind", path, path]
    return args


def tmpfs_args(*, tmp_bytes: int, shm_bytes: int, run_bytes: int) -> list[str]:
    """/dev (device nodes only), a bounded /dev/shm, /tmp and /run (sticky, world-writable)."""
    args = ["--dev", "/dev"]
    args += ["--perms", "1777", "--size", str(shm_bytes), "--tmpfs", "/dev/shm"]
    args += ["--perms", "1777", "--size", str(tmp_bytes), "--tmpfs", "/tmp"]
    args += ["--perms", "0755", "--size", str(run_bytes), "--tmpfs", "/run"]
    return args


def gpu_args(binds: Binds, *, libs: Sequence[str] = GPU_LIBS, sys_paths: Sequence[str] = GPU_SYS) -> None:
    """The GPU device nodes, the CUDA trees (symlink chains followed) and the needed parts of /sys."""
    for dev in sorted(Path("/dev").glob("nvidia*")):
        binds.args += ["--dev-bind", str(dev), str(dev)]
    for lib in libs:
        if os.path.lexists(lib):
            binds.expose(Path(lib))
    for pattern in sys_paths:
        for path in sorted(glob.glob(pattern)):
            p = Path(path)
            if not inside(p, binds.visible) and not p.is_symlink():
                binds.bind("--ro-bind", p)


def mask_args(hidden: Iterable[Path], trees: Sequence[Path]) -> tuple[list[str], list[Path]]:
    """Cover each hidden path that a bound tree contains: an empty tmpfs over a directory (remounted
    read-only at the end, after the step's own directories got their mount points), /dev/null over
    a file. Returns (arguments, the covered directories)."""
    args: list[str] = []
    dirs: list[Path] = []
    for h in hidden:
        rh = resolved(h)
        if os.path.lexists(rh) and any(rh != b and rh.is_relative_to(b) for b in trees):
            if rh.is_dir():
                args += ["--perms", "0755", "--size", "65536", "--tmpfs", str(rh)]
                dirs.append(rh)
            else:
                args += ["--ro-bind", "/dev/null", str(rh)]
    return args, dirs
