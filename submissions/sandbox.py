"""Sealed execution of submitted code with bubblewrap (``bwrap``): one way to start every step.

Every step that runs code a submitter controls (installing a fork, training, the model process
of scoring) and the verifier's own scorer start through ``launch``: new PID, IPC, UTS and network
namespaces (the network only for a step that asks for it), ``--clearenv`` with an explicit
allow-list, ``--die-with-parent`` and ``--new-session``; the system, the interpreter and the
installed project bound read-only (``submissions.mounts``); only the step's own directories
writable; ``/proc/sys`` and the other global ``/proc`` knobs read-only; ``/``, ``/dev`` read-only
and ``/tmp``, ``/run``, ``/dev/shm`` small tmpfs mounts. Paths that must stay unseen (the worker's
work dir, its token file, its HOME) are masked wherever a bound tree contains them.

**Never kernel root.** A worker that runs as root starts ``bwrap`` privileged (no user namespace,
so it can read the worker's own files to bind them) and the step itself through ``setpriv`` as
a dedicated unprivileged uid (``speedrun-sandbox``, or ``$SPEEDRUN_SANDBOX_USER``, else uid
``FALLBACK_UID``) with no capabilities, an empty bounding set and ``no_new_privs``. A worker
that is not root starts ``bwrap`` in a user namespace where the step is uid 65534, i.e. the
worker's own uid outside. Either way the step is an unprivileged kernel uid, so RLIMIT_NPROC
bites and root-only files stay closed.

Bounds: rlimits set before ``bwrap`` starts (address space on CPU nodes, processes, bytes of
each file written, no core files); a cgroup v2 ``memory.max``/``pids.max`` where the host
delegates one (``submissions.cgroups``); wall time and disk are enforced by
``submissions.measure``. ``Limits.describe`` says which applied (it goes into the run's record).

``sandbox_problem`` launches a probe through the very same path a job uses and says why sealing
fails here (``speedrun doctor`` runs it; ``speedrun worker`` refuses to lease on it).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import importlib.metadata
import importlib.util
import itertools
import json
import os
import pwd
import resource
import shutil
import signal
import stat
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from submissions import mounts
from submissions.cgroups import StepCgroup, delegated

BWRAP = "bwrap"
SETPRIV = "setpriv"
SANDBOX_UID = 65534  # the step's uid inside a user namespace (a worker that is not root)
DEDICATED_USER = "speedrun-sandbox"
SANDBOX_USER_ENV = "SPEEDRUN_SANDBOX_USER"
FALLBACK_UID = 2_000_000_001  # a root worker's sandbox uid when no speedrun-sandbox user exists
GIB = 1024**3
MIB = 1024**2
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


class SandboxUnavailable(Exception):
    """bwrap is missing or cannot create the namespaces here."""


@dataclass(frozen=True)
class Identity:
    """The kernel uid/gid a step runs as, and how it gets there."""

    uid: int
    gid: int
    name: str
    via_setpriv: bool  # the worker is root: privileged bwrap, then setpriv to uid (no user namespace)

    def describe(self) -> str:
        how = "setpriv from a root worker" if self.via_setpriv else "user namespace of an unprivileged worker"
        return f"kernel uid {self.uid} ({self.name}; {how})"


def sandbox_identity() -> Identity:
    """Who sandboxed steps run as on this worker (never uid 0)."""
    if os.geteuid() != 0:
        uid, gid = os.geteuid(), os.getegid()
        return Identity(uid, gid, _user_name(uid), via_setpriv=False)
    wanted = os.environ.get(SANDBOX_USER_ENV, DEDICATED_USER)
    try:
        entry = pwd.getpwuid(int(wanted)) if wanted.isdigit() else pwd.getpwnam(wanted)
        uid, gid, name = entry.pw_uid, entry.pw_gid, entry.pw_name
    except KeyError:
        if wanted.isdigit():
            uid = gid = int(wanted)
            name = f"uid {uid}"
        elif wanted != DEDICATED_USER:
            raise SandboxUnavailable(f"${SANDBOX_USER_ENV}={wanted}: no such user") from None
        else:
            uid = gid = FALLBACK_UID
            name = f"no {DEDICATED_USER} user: uid {FALLBACK_UID}"
    if uid == 0 or gid == 0:
        raise SandboxUnavailable(f"the sandbox user ({wanted}) must not be root")
    return Identity(uid, gid, name, via_setpriv=True)


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


@dataclass(frozen=True)
class Limits:
    """Bounds of one sandboxed step."""

    wall_s: float
    memory_bytes: int | None = None  # RLIMIT_AS; None on GPU nodes (CUDA reserves huge address space)
    processes: int = 4096  # RLIMIT_NPROC (threads count) and the cgroup's pids.max
    file_bytes: int = 64 * GIB  # RLIMIT_FSIZE: bytes of each file the step writes (every log included)
    disk_bytes: int = 200 * GIB  # bytes in the step's writable directories (polled and at exit)
    max_files: int = 200_000  # entries in the step's writable directories (polled and at exit)
    ram_bytes: int | None = None  # the cgroup's memory.max (RAM + tmpfs), where one is delegated
    tmp_bytes: int = 256 * MIB  # size of the sandbox's /tmp tmpfs
    shm_bytes: int = 1 * GIB  # size of its /dev/shm
    run_bytes: int = 16 * MIB  # size of its /run

    def __post_init__(self) -> None:
        if self.wall_s <= 0:
            raise ValueError("limits.wall_s: must be > 0")

    def describe(self, identity: Identity, cgroup: StepCgroup | None) -> str:
        """Which limits applied to a step, in words (the run's record carries it)."""
        parts = [identity.describe(), f"RLIMIT_NPROC {self.processes}", f"RLIMIT_FSIZE {self.file_bytes}"]
        if self.memory_bytes is not None:
            parts.append(f"RLIMIT_AS {self.memory_bytes}")
        parts.append(f"tmpfs /tmp {self.tmp_bytes}, /dev/shm {self.shm_bytes}, /run {self.run_bytes}")
        parts.append(f"disk {self.disk_bytes} and {self.max_files} files (polled and at exit)")
        if cgroup is not None:
            ram = "max" if self.ram_bytes is None else str(self.ram_bytes)
            parts.append(f"cgroup v2 {cgroup.path}: memory.max {ram}, pids.max {self.processes}")
        else:
            parts.append(f"no cgroup v2 limits ({delegated().why_not})")
        return "; ".join(parts)


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
    paths = {mounts.resolved(sys.base_prefix), mounts.resolved(sys.prefix), mounts.resolved(sys.executable).parent}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        with contextlib.suppress(KeyError):
            paths.add(mounts.resolved(sysconfig.get_paths()[key]))
    here = Path(__file__).resolve().parent.parent  # the project's packages sit side by side
    for name in project_packages():
        if (here / name / "__init__.py").is_file():
            paths.add(here / name)
            continue
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin:
            paths.add(mounts.resolved(spec.origin).parent)
    return mounts.outermost(paths)


@functools.cache
def bwrap_path() -> str | None:
    return shutil.which(BWRAP)


def bwrap_argv(step: Step, limits: Limits, identity: Identity, *, status_fd: int | None = None) -> list[str]:
    """The full ``bwrap ... -- argv`` of a step (bwrap must be installed)."""
    exe = bwrap_path()
    if exe is None:
        raise SandboxUnavailable("bubblewrap (bwrap) is not installed")
    args = [exe, "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    if not step.network:
        args.append("--unshare-net")
    if identity.via_setpriv:
        args += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        args += ["--cap-add", "CAP_SETPCAP"]  # setpriv needs these three to drop to the sandbox uid
        args += ["--cap-add", "CAP_DAC_OVERRIDE"]  # bwrap's --chdir into a step's 0700 directory; setpriv drops it
    else:
        args += ["--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID)]
    args += ["--hostname", "sandbox", "--die-with-parent", "--new-session", "--clearenv"]
    if status_fd is not None:
        args += ["--json-status-fd", str(status_fd)]
    env = {**BASE_ENV, **{k: os.environ[k] for k in PASSTHROUGH_ENV if k in os.environ}, **step.env}
    for key, value in sorted(env.items()):
        args += ["--setenv", key, value]
    args += mounts.proc_args()
    args += mounts.tmpfs_args(tmp_bytes=limits.tmp_bytes, shm_bytes=limits.shm_bytes, run_bytes=limits.run_bytes)
    binds = mounts.Binds()
    binds.made |= {Path("/proc"), Path("/dev"), Path("/tmp"), Path("/run")}
    mounts.system_args(binds, network=step.network)
    if step.gpu:
        mounts.gpu_args(binds)
    readonly = mounts.outermost({mounts.resolved(p) for p in [*interpreter_paths(), *step.readonly]})
    for p in readonly:
        if not mounts.inside(p, binds.visible):
            binds.bind("--ro-bind", p)
    args += binds.args
    masks, masked = mounts.mask_args(step.hidden, readonly)  # before the step's own directories (may lie inside)
    args += masks
    own = mounts.Binds()
    own.visible, own.made = list(binds.visible), set(binds.made)
    for p in step.writable:
        own.bind("--bind", mounts.resolved(p))
    args += own.args
    for d in masked:
        args += ["--remount-ro", str(d)]
    args += ["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", str(mounts.resolved(step.cwd)), "--"]
    if identity.via_setpriv:
        setpriv = shutil.which(SETPRIV) or "/usr/bin/setpriv"
        args += [setpriv, f"--reuid={identity.uid}", f"--regid={identity.gid}", "--clear-groups"]
        args += ["--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
    return args + step.argv


def hand_over(paths: Sequence[Path], identity: Identity | None = None) -> None:
    """Give the sandbox uid the step's writable directories (a root worker creates them as root)."""
    identity = identity or sandbox_identity()
    if not identity.via_setpriv:
        return
    for top in paths:
        os.lchown(top, identity.uid, identity.gid)
        for root, dirs, files in os.walk(top):
            for name in [*dirs, *files]:
                os.lchown(os.path.join(root, name), identity.uid, identity.gid)


def share(paths: Sequence[Path], identity: Identity | None = None) -> None:
    """Let the sandbox uid read the verifier's own inputs it is given read-only (the eval bundle,
    the tokenizer, downloaded data: public files a root worker may have created ``0700``): adds
    read (and, on directories, search) permission for others, never write."""
    identity = identity or sandbox_identity()
    if not identity.via_setpriv:
        return
    for top in paths:
        if not top.exists():
            continue
        for root, dirs, files in os.walk(top):
            for name in [root, *(os.path.join(root, f) for f in files)]:
                st = os.lstat(name)
                if stat.S_ISLNK(st.st_mode):
                    continue
                want = st.st_mode | stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(st.st_mode) else 0)
                if want != st.st_mode:
                    os.chmod(name, stat.S_IMODE(want))
            dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(root, d))]


def _preexec(limits: Limits, cgroup_fd: int | None) -> Callable[[], None]:
    """Runs in the child before bwrap: join the step's cgroup, rlimits (inherited by everything
    inside), parent-death signal. Built in the parent: the child, forked from a threaded process,
    only calls into it."""
    prctl = None
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            prctl = ctypes.CDLL(None, use_errno=True).prctl
    caps = [(resource.RLIMIT_NPROC, limits.processes), (resource.RLIMIT_FSIZE, limits.file_bytes)]
    caps.append((resource.RLIMIT_CORE, 0))
    if limits.memory_bytes is not None:
        caps.append((resource.RLIMIT_AS, limits.memory_bytes))

    def setup() -> None:
        if cgroup_fd is not None:
            os.write(cgroup_fd, b"0")
        for which, value in caps:
            resource.setrlimit(which, (value, value))
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
        if prctl is not None:
            prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG: bwrap dies with the verifier

    return setup


def clean_env() -> dict[str, str]:
    """The environment of every child the verifier starts (bwrap, git, pip): the allow-list only."""
    return {**BASE_ENV, **{k: os.environ[k] for k in PASSTHROUGH_ENV if k in os.environ}}


class SandboxProcess(subprocess.Popen[bytes]):
    """A launched step: the process, bwrap's status pipe (the sandbox's PID-namespace init) and
    the limits that applied."""

    status_fd: int | None = None
    cgroup: StepCgroup | None = None
    limits_applied: str = ""
    sealed: bool = False

    def release(self) -> None:
        """Close the status pipe and remove the step's cgroup (after the step is gone)."""
        if self.status_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.status_fd)
            self.status_fd = None
        if self.cgroup is not None:
            self.cgroup.remove()
            self.cgroup = None


_STEP_IDS = itertools.count(1)  # names of the steps' cgroups


def launch(
    step: Step,
    limits: Limits,
    *,
    sealed: bool,
    stdout: int | None,
    stdin: int | None = subprocess.DEVNULL,
    stderr: int | None = subprocess.STDOUT,
    pass_fds: Sequence[int] = (),
) -> SandboxProcess:
    """Start a step in its own process group: under bwrap when ``sealed``, else directly (the
    unsealed local path of the installed reference trainer) with the same allow-listed env."""
    cgroup = None
    status_r = status_w = None
    identity = sandbox_identity()
    if sealed:
        problem = sandbox_problem()
        if problem is not None:
            raise SandboxUnavailable(problem)
        hand_over(step.writable, identity)
        status_r, status_w = os.pipe()
        os.set_inheritable(status_w, True)
        argv = bwrap_argv(step, limits, identity, status_fd=status_w)
        env = clean_env()
        cwd = "/"
        name = f"step-{os.getpid()}-{next(_STEP_IDS)}"
        cgroup = StepCgroup.create(name, memory_bytes=limits.ram_bytes, pids=limits.processes)
    else:
        argv = step.argv
        env = {**clean_env(), **step.env}
        cwd = str(step.cwd)
    cgroup_fd = cgroup.procs_fd() if cgroup is not None else None
    fds = tuple(pass_fds) + ((status_w,) if status_w is not None else ())
    try:
        proc = SandboxProcess(
            argv,
            cwd=cwd,
            env=env,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,  # its own process group: a cap kills torchrun and its workers too
            preexec_fn=_preexec(limits, cgroup_fd),
            close_fds=True,
            pass_fds=fds,
        )
    finally:
        for fd in (status_w, cgroup_fd):
            if fd is not None:
                os.close(fd)
    proc.status_fd = status_r
    proc.cgroup = cgroup
    proc.sealed = sealed
    proc.limits_applied = limits.describe(identity, cgroup) if sealed else "unsealed: rlimits only"
    return proc


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


# -- the probe: the same launch a job uses ----------------------------------------------------

PROBE = r"""
import json, os, sys
out = {"uid": os.getuid()}
open(os.path.join(os.environ["HOME"], "uid-check"), "w").close()  # its owner outside is the kernel uid
out["proc_sys_readonly"] = bool(os.statvfs("/proc/sys").f_flag & os.ST_RDONLY)
out["root_readonly"] = bool(os.statvfs("/").f_flag & os.ST_RDONLY)
import contract  # the installed project is bound
out["project"] = contract.__version__
if sys.argv[1:] == ["gpu"]:
    import torch
    out["cuda"] = torch.cuda.is_available()
print(json.dumps(out))
"""


def probe(*, gpu: bool = False) -> tuple[dict[str, Any] | None, str | None]:
    """Launch the probe sealed (the job's path) and read what it saw; (seen, problem)."""
    exe = bwrap_path()
    if exe is None:
        return None, "bubblewrap (bwrap) is not installed"
    try:
        identity = sandbox_identity()
    except SandboxUnavailable as exc:
        return None, str(exc)
    if identity.via_setpriv and shutil.which(SETPRIV) is None:
        return None, "setpriv (util-linux) is not installed: a root worker needs it to drop to the sandbox uid"
    with tempfile.TemporaryDirectory(prefix="speedrun-probe-") as tmp:
        work = Path(tmp) / "home"
        work.mkdir()
        os.chmod(tmp, 0o755)
        kernel_uid = None
        step = Step(
            argv=[sys.executable, "-c", PROBE, *(["gpu"] if gpu else [])],
            cwd=work,
            writable=[work],
            env={"HOME": str(work), "TMPDIR": str(work)},
            gpu=gpu,
        )
        try:
            hand_over([work], identity)
            proc = subprocess.run(
                bwrap_argv(step, Limits(wall_s=120), identity),
                env=clean_env(),
                cwd="/",
                capture_output=True,
                timeout=120,
                preexec_fn=_preexec(Limits(wall_s=120), None),
            )
        except (OSError, subprocess.SubprocessError) as exc:
            return None, f"bwrap cannot start: {exc}"
        with contextlib.suppress(OSError):
            kernel_uid = os.stat(work / "uid-check").st_uid
    if proc.returncode != 0:
        text = proc.stderr.decode(errors="replace").strip()
        return None, f"the sandbox does not start here: {text[-400:] or f'exit code {proc.returncode}'}"
    try:
        seen: dict[str, Any] = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None, f"the sandbox probe printed no verdict: {proc.stdout[-200:]!r}"
    seen["kernel_uid"] = kernel_uid
    return seen, _judge(seen, gpu)


def _judge(seen: dict[str, Any], gpu: bool) -> str | None:
    if seen.get("kernel_uid") is None:
        return "the sandbox probe could not write its own directory"
    if seen["kernel_uid"] == 0:
        return "the sandbox runs as kernel root (a file it writes is owned by uid 0)"
    if not seen.get("proc_sys_readonly"):
        return "/proc/sys is writable in the sandbox"
    if not seen.get("root_readonly"):
        return "the sandbox's / is writable"
    if gpu and not seen.get("cuda") and any(Path("/dev").glob("nvidia[0-9]*")):
        return "CUDA is not available inside the sandbox (device nodes or libraries not reachable)"
    return None


@functools.cache
def _problem(gpu: bool) -> str | None:
    return probe(gpu=gpu)[1]


def sandbox_problem(*, gpu: bool = False) -> str | None:
    """None when sealed steps can run here (the probe passed), else why not."""
    return _problem(gpu)
