"""Sealed execution of submitted code with bubblewrap (``bwrap``): one way to start every step.

Every step that runs code a submitter controls (installing a fork, training, evaluating a
checkpoint) starts through ``launch``: new user, PID, IPC, UTS and network namespaces (the
network only for a step that asks for it), ``--clearenv`` with an explicit allow-list,
``--die-with-parent`` and ``--new-session``; the system, the interpreter and the installed
project bound read-only; only the step's own directories writable; HOME and TMPDIR inside the
job; ``/dev/nvidia*`` (and ``/sys``) bound on GPU nodes. Paths that must stay unseen (the
worker's work dir, its token file, its HOME) are masked wherever a bound tree contains them.

Bounds come from rlimits set before ``bwrap`` starts (they hold for everything inside): address
space (CPU nodes), processes, bytes of each file written (every log); the wall time and the disk
used in the job directory are enforced by ``submissions.measure`` while the step runs.

The same code path runs the reference trainer and a fork. Where ``bwrap`` is missing or cannot
create namespaces, ``sandbox_problem`` says why, and callers decide: a worker refuses, a local
``speedrun verify`` of the installed reference trainer runs unsealed and says so.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import importlib.metadata
import importlib.util
import os
import resource
import shutil
import signal
import subprocess
import sys
import sysconfig
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

BWRAP = "bwrap"
SANDBOX_UID = 65534  # "nobody" inside the user namespace
GIB = 1024**3
# Variables a sandboxed step may see (values from the verifier, never from the worker's own env).
BASE_ENV: dict[str, str] = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "USER": "speedrun",
    "LOGNAME": "speedrun",
    "PYTHONUNBUFFERED": "1",
    "PYTHONNOUSERSITE": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PIP_NO_INPUT": "1",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "GIT_TERMINAL_PROMPT": "0",
}
# Passed through from the worker's environment when set (never a credential).
PASSTHROUGH_ENV = ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "NCCL_DEBUG", "OMP_NUM_THREADS", "TZ")
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/opt/conda")
_ETC_FILES = (
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


class SandboxUnavailable(Exception):
    """bwrap is missing or cannot create the namespaces here."""


@dataclass(frozen=True)
class Limits:
    """Bounds of one sandboxed step."""

    wall_s: float
    memory_bytes: int | None = None  # RLIMIT_AS; None on GPU nodes (CUDA reserves huge address space)
    processes: int = 4096  # RLIMIT_NPROC (threads count)
    file_bytes: int = 64 * GIB  # RLIMIT_FSIZE: bytes of each file the step writes (every log included)
    disk_bytes: int = 200 * GIB  # bytes in the step's writable directories (polled)

    def __post_init__(self) -> None:
        if self.wall_s <= 0:
            raise ValueError("limits.wall_s: must be > 0")


@dataclass
class Step:
    """One sandboxed command: what it runs, what it sees, what it may write."""

    argv: list[str]
    cwd: Path
    writable: list[Path]  # bound read-write at the same path (the job's own directories)
    readonly: list[Path] = field(default_factory=list)  # extra read-only binds at the same path
    hidden: list[Path] = field(default_factory=list)  # masked when a bound tree contains them
    env: dict[str, str] = field(default_factory=dict)
    network: bool = False
    gpu: bool = False


def _resolved(p: Path | str) -> Path:
    return Path(os.path.realpath(p))


def project_packages() -> list[str]:
    """The top-level packages of the installed ``speedrun`` distribution (its ``top_level.txt``): the
    one list, written by the build from pyproject.toml, so a new package is bound without an edit here."""
    try:
        text = importlib.metadata.distribution("speedrun").read_text("top_level.txt")
    except importlib.metadata.PackageNotFoundError as exc:
        raise RuntimeError("the speedrun distribution is not installed: `pip install -e .` first") from exc
    return sorted(set((text or "").split()))


def interpreter_paths() -> list[Path]:
    """The running interpreter's prefixes and the installed project's package directories."""
    paths = {_resolved(sys.base_prefix), _resolved(sys.prefix), _resolved(sys.executable).parent}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        with contextlib.suppress(KeyError):
            paths.add(_resolved(sysconfig.get_paths()[key]))
    here = Path(__file__).resolve().parent.parent  # the project's packages sit side by side
    for name in project_packages():
        if (here / name / "__init__.py").is_file():
            paths.add(here / name)
            continue
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin:
            paths.add(_resolved(spec.origin).parent)
    return _outermost(paths)


def _outermost(paths: set[Path]) -> list[Path]:
    out: list[Path] = []
    for p in sorted(paths, key=lambda q: len(q.parts)):
        if p.exists() and not any(p == o or p.is_relative_to(o) for o in out):
            out.append(p)
    return out


@functools.cache
def bwrap_path() -> str | None:
    return shutil.which(BWRAP)


@functools.cache
def sandbox_problem() -> str | None:
    """None when sealed steps can run here, else why not (missing bwrap, no user namespaces)."""
    exe = bwrap_path()
    if exe is None:
        return "bubblewrap (bwrap) is not installed"
    try:
        probe = subprocess.run(
            [exe, "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "--proc", "/proc", "true"],
            env=dict(BASE_ENV),
            capture_output=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"bwrap cannot start: {exc}"
    if probe.returncode != 0:
        return f"bwrap cannot create namespaces here: {probe.stderr.decode(errors='replace').strip()[:300]}"
    return None


def _bind_args(flag: str, path: Path) -> list[str]:
    """Bind ``path`` at the same place; a symlink (merged /usr: /bin -> usr/bin) stays a symlink."""
    if path.is_symlink():
        return ["--symlink", os.readlink(path), str(path)]
    return [flag, str(path), str(path)]


def bwrap_argv(step: Step, *, extra_readonly: Sequence[Path] = ()) -> list[str]:
    """The full ``bwrap ... -- argv`` of a step (bwrap must be installed)."""
    exe = bwrap_path()
    if exe is None:
        raise SandboxUnavailable("bubblewrap (bwrap) is not installed")
    args = [exe, "--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    if not step.network:
        args.append("--unshare-net")
    args += ["--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--hostname", "sandbox"]
    args += ["--die-with-parent", "--new-session", "--clearenv"]
    env = {**BASE_ENV, **{k: os.environ[k] for k in PASSTHROUGH_ENV if k in os.environ}, **step.env}
    for key, value in sorted(env.items()):
        args += ["--setenv", key, value]
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/run", "--dir", "/tmp"]
    for d in _SYSTEM_DIRS:
        if os.path.lexists(d):
            args += _bind_args("--ro-bind", Path(d))
    for f in _ETC_FILES:
        if os.path.exists(f):
            args += ["--ro-bind", f, f]
    if step.network and os.path.exists("/etc/resolv.conf"):
        args += ["--ro-bind", os.path.realpath("/etc/resolv.conf"), "/etc/resolv.conf"]
    if step.gpu:
        for dev in sorted(Path("/dev").glob("nvidia*")):
            args += ["--dev-bind", str(dev), str(dev)]
        for lib in ("/usr/local/cuda", "/usr/local/nvidia", "/sys"):
            if os.path.exists(lib):
                args += ["--ro-bind", os.path.realpath(lib), lib]
    readonly = _outermost({_resolved(p) for p in [*interpreter_paths(), *step.readonly, *extra_readonly]})
    for p in readonly:
        if not p.is_relative_to("/usr"):
            args += ["--ro-bind", str(p), str(p)]
    for h in step.hidden:  # masked before the step's own directories are bound (they may lie inside)
        rh = _resolved(h)
        if os.path.lexists(rh) and any(rh != b and rh.is_relative_to(b) for b in readonly):
            args += ["--tmpfs", str(rh)] if rh.is_dir() else ["--ro-bind", "/dev/null", str(rh)]
    for p in step.writable:
        args += ["--bind", str(_resolved(p)), str(_resolved(p))]
    args += ["--chdir", str(_resolved(step.cwd)), "--"]
    return args + step.argv


def _preexec(limits: Limits) -> Callable[[], None]:
    """Runs in the child before bwrap: rlimits (inherited by everything inside), parent-death signal.

    Built in the parent: the child, forked from a threaded process, only calls into it."""
    prctl = None
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            prctl = ctypes.CDLL(None, use_errno=True).prctl
    caps = [(resource.RLIMIT_NPROC, limits.processes), (resource.RLIMIT_FSIZE, limits.file_bytes)]
    caps.append((resource.RLIMIT_CORE, 0))
    if limits.memory_bytes is not None:
        caps.append((resource.RLIMIT_AS, limits.memory_bytes))

    def setup() -> None:
        for which, value in caps:
            resource.setrlimit(which, (value, value))
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
        if prctl is not None:
            prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG: bwrap dies with the verifier

    return setup


def clean_env() -> dict[str, str]:
    """The environment of every child the verifier starts (bwrap, git, pip): the allow-list only."""
    return {**BASE_ENV, **{k: os.environ[k] for k in PASSTHROUGH_ENV if k in os.environ}}


def launch(
    step: Step,
    limits: Limits,
    *,
    sealed: bool,
    stdout: int | None,
    extra_readonly: Sequence[Path] = (),
) -> subprocess.Popen[bytes]:
    """Start a step in its own process group: under bwrap when ``sealed``, else directly (the
    unsealed local path of the installed reference trainer) with the same allow-listed env."""
    if sealed:
        problem = sandbox_problem()
        if problem is not None:
            raise SandboxUnavailable(problem)
        argv = bwrap_argv(step, extra_readonly=extra_readonly)
        env = clean_env()
        cwd = None
    else:
        argv = step.argv
        env = {**clean_env(), **step.env}
        cwd = str(step.cwd)
    return subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: a cap kills torchrun and its workers too
        preexec_fn=_preexec(limits),
        close_fds=True,
    )


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM then SIGKILL to the step's process group (bwrap's death takes the sandbox down)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            continue
