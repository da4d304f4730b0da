"""The sandbox itself against issue 18 (real bwrap, real processes): never kernel root, read-only
/proc/sys, RLIMIT_NPROC that bites, root-only files closed, symlinked CUDA trees, a Docker-like
masked /proc, bounded tmpfs, disk and file caps at exit. Each runs as root (the usual rented node)
and, where the worker's uid matters, as an unprivileged worker too. /proc/sys is only looked at
(``os.access``, ``statvfs``), never written.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from submissions import mounts, sandbox
from submissions.measure import supervise
from submissions.sandbox import Limits, Step, launch, sandbox_problem
from tests.submissions.unprivileged import UID, as_user

pytestmark = pytest.mark.skipif(sandbox_problem() is not None, reason=f"no sandbox here: {sandbox_problem()}")
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs a root test process (to be root and to drop)")
REPO = Path(__file__).resolve().parents[2]
SEEN = r"""
import json, os, sys
out = {"uid": os.getuid()}
open(os.path.join(os.environ["HOME"], "owner"), "w").close()
out["proc_sys_writable"] = os.access("/proc/sys/kernel/printk_ratelimit_burst", os.W_OK)
out["proc_sys_readonly"] = bool(os.statvfs("/proc/sys").f_flag & os.ST_RDONLY)
out["sysrq_writable"] = os.access("/proc/sysrq-trigger", os.W_OK)
print(json.dumps(out))
"""
THREADS = r"""
import threading, time
threading.stack_size(64 * 1024)
stop, n = threading.Event(), 0
try:
    while n < 1000:
        threading.Thread(target=stop.wait, daemon=True).start()
        n += 1
except RuntimeError:
    pass
print(n)
stop.set()
"""


@pytest.fixture
def user_home() -> Iterator[Path]:
    """A HOME for the unprivileged uid that it can reach (pytest's tmp tree is root's, mode 0700)."""
    home = Path(tempfile.mkdtemp(prefix="speedrun-u-", dir="/tmp"))
    os.chmod(home, 0o755)
    os.chown(home, UID, UID)
    try:
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _run(tmp: Path, code: str, limits: Limits | None = None, *, gpu: bool = False) -> tuple[int, str, Path]:
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    step = Step(argv=[sys.executable, "-c", code], cwd=home, writable=[home], env={"HOME": str(home)}, gpu=gpu)
    limits = limits or Limits(wall_s=120)
    proc = launch(step, limits, sealed=True, stdout=subprocess.PIPE)
    out, _ = proc.communicate(timeout=120)
    proc.release()
    return proc.returncode, out.decode(errors="replace"), home


@root_only
def test_a_root_worker_sandbox_is_an_unprivileged_uid_with_read_only_proc_sys(tmp_path: Path) -> None:
    code, out, home = _run(tmp_path, SEEN)
    assert code == 0, out
    seen = json.loads(out.strip().splitlines()[-1])
    kernel_uid = os.stat(home / "owner").st_uid
    assert kernel_uid != 0 and kernel_uid == sandbox.sandbox_identity().uid
    assert seen["proc_sys_readonly"] and not seen["proc_sys_writable"] and not seen["sysrq_writable"]


@root_only
def test_an_unprivileged_worker_sandbox_is_its_uid_with_read_only_proc_sys(user_home: Path) -> None:
    probe = "import json; from submissions.sandbox import probe; print(json.dumps(probe()))"
    home = user_home
    done = as_user([sys.executable, "-c", probe], env={"HOME": str(home), "PATH": "/usr/bin:/bin"}, cwd=home)
    assert done.returncode == 0, done.stderr
    seen, problem = json.loads(done.stdout.strip().splitlines()[-1])
    assert problem is None
    assert seen["kernel_uid"] == UID and seen["uid"] == sandbox.SANDBOX_UID and seen["proc_sys_readonly"]


@root_only
def test_rlimit_nproc_bites_for_a_root_worker_and_an_unprivileged_one(tmp_path: Path, user_home: Path) -> None:
    code, out, _ = _run(tmp_path, THREADS, Limits(wall_s=120, processes=64))
    assert code == 0, out
    assert int(out.split()[-1]) < 64  # 4,400 threads went through a 4,096 cap as kernel root
    script = (
        "import subprocess, sys; from pathlib import Path; from submissions.sandbox import Limits, Step, launch\n"
        "home = Path(sys.argv[1])\n"
        "p = launch(Step(argv=[sys.executable, '-c', sys.argv[2]], cwd=home, writable=[home], env={'HOME': str(home)}),"
        " Limits(wall_s=120, processes=64), sealed=True, stdout=subprocess.PIPE)\n"
        "print(p.communicate()[0].decode().split()[-1])\n"
    )
    home = user_home
    done = as_user(
        [sys.executable, "-c", script, str(home), THREADS], env={"HOME": str(home), "PATH": "/usr/bin:/bin"}, cwd=home
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.split()[-1]) < 64


def test_a_gpu_step_binds_only_the_parts_of_sys_cuda_needs() -> None:
    step = Step(argv=["true"], cwd=Path("/"), writable=[], gpu=True)
    argv = sandbox.bwrap_argv(step, Limits(wall_s=1), sandbox.sandbox_identity())
    binds = {(argv[i], argv[i + 1]) for i in range(len(argv) - 1) if argv[i] in ("--ro-bind", "--bind")}
    assert ("--ro-bind", "/sys") not in binds and ("--bind", "/sys") not in binds
    bound_sys = {src for flag, src in binds if src.startswith("/sys")}
    assert bound_sys  # what is bound is under the GPU list
    assert all(any(Path(src).match(p) or src.startswith(p.rstrip("*")) for p in mounts.GPU_SYS) for src in bound_sys)


@root_only
def test_root_only_files_under_the_gpu_sys_binds_stay_closed(tmp_path: Path) -> None:
    closed = None
    for pattern in mounts.GPU_SYS:
        for base in Path("/").glob(pattern.lstrip("/")):
            for path in base.rglob("*"):
                try:
                    st = path.lstat()
                except OSError:
                    continue
                if path.is_file() and not path.is_symlink() and st.st_uid == 0 and not st.st_mode & 0o044:
                    closed = path
                    break
            if closed:
                break
        if closed:
            break
    if closed is None:
        pytest.skip("no root-only file under the GPU /sys binds on this machine")
    code, out, _ = _run(tmp_path, f"open({str(closed)!r}, 'rb').read(1)", gpu=True)
    assert code != 0 and "PermissionError" in out, (closed, out)


@pytest.mark.skipif(not Path("/usr/local/cuda").is_symlink(), reason="/usr/local/cuda is not a symlink here")
def test_a_gpu_step_starts_where_usr_local_cuda_is_an_absolute_symlink(tmp_path: Path) -> None:
    # the attack: bwrap failed with "Can't bind mount /oldroot/usr/local/cuda-13.0 on /newroot/usr/local/cuda"
    code, out, _ = _run(tmp_path, "import os; print(sorted(os.listdir('/usr/local/cuda')))", gpu=True)
    assert code == 0, out
    assert out.strip().splitlines()[-1] == str(sorted(os.listdir("/usr/local/cuda")))


def test_an_alternatives_chain_is_exposed_link_by_link(tmp_path: Path) -> None:
    real = tmp_path / "opt" / "cuda-12.4" / "lib"
    real.mkdir(parents=True)
    (real / "libfake.so").write_text("the library\n")
    (tmp_path / "etc-alternatives").mkdir()
    (tmp_path / "etc-alternatives" / "cuda").symlink_to(tmp_path / "opt" / "cuda-12.4")
    (tmp_path / "usr-local").mkdir()
    (tmp_path / "usr-local" / "cuda").symlink_to(tmp_path / "etc-alternatives" / "cuda")
    binds = mounts.Binds()
    mounts.system_args(binds, network=False)
    binds.expose(tmp_path / "usr-local" / "cuda")
    pairs = [(binds.args[i], binds.args[i + 2]) for i in range(len(binds.args) - 2)]
    assert ("--symlink", str(tmp_path / "usr-local" / "cuda")) in pairs
    assert ("--symlink", str(tmp_path / "etc-alternatives" / "cuda")) in pairs
    assert ("--ro-bind", str(tmp_path / "opt" / "cuda-12.4")) in pairs  # the target, not the whole tree
    argv = [sandbox.bwrap_path() or "bwrap", "--unshare-all", "--die-with-parent", "--proc", "/proc", "--dev", "/dev"]
    done = subprocess.run(
        [*argv, *binds.args, "cat", str(tmp_path / "usr-local" / "cuda" / "lib" / "libfake.so")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and done.stdout == "the library\n", done.stderr


def test_tmpfs_mounts_are_bounded_and_root_and_dev_read_only(tmp_path: Path) -> None:
    code = r"""
import errno, os
def fill(path):
    try:
        with open(path, "wb") as f:
            for _ in range(8):
                f.write(b"x" * (1 << 20))
                f.flush()
        return "wrote 8 MiB"
    except OSError as exc:
        return errno.errorcode[exc.errno]
print(fill("/tmp/big"), fill("/dev/shm/big"), fill("/run/big"), fill("/big"), fill("/dev/big"))
"""
    limits = Limits(wall_s=120, tmp_bytes=2 << 20, shm_bytes=2 << 20, run_bytes=2 << 20)
    rc, out, _ = _run(tmp_path, code, limits)
    assert rc == 0, out
    tmp, shm, run, root, dev = out.split()[-5:]
    assert (tmp, shm, root, dev) == ("ENOSPC", "ENOSPC", "EROFS", "EROFS")
    assert run in ("ENOSPC", "EACCES")  # the sandbox's own (bounded) under a user namespace, root's under setpriv


@pytest.mark.parametrize(
    ("code", "limits", "why"),
    [
        ("os.posix_fallocate(os.open('big', os.O_CREAT | os.O_WRONLY), 0, 48 << 20)", {"disk_bytes": 16 << 20}, "disk"),
        ("[open(f'f{i}', 'w').close() for i in range(300)]", {"max_files": 100}, "files"),
    ],
)
def test_output_over_a_cap_is_caught_at_exit_and_deleted(tmp_path: Path, code: str, limits: dict, why: str) -> None:
    home = tmp_path / "home"
    home.mkdir()
    step = Step(argv=[sys.executable, "-c", f"import os; {code}"], cwd=home, writable=[home], env={"HOME": str(home)})
    lim = Limits(wall_s=120, **limits)
    started = time.monotonic()
    proc = launch(step, lim, sealed=True, stdout=subprocess.DEVNULL)
    outcome = supervise(proc, lim, started=started, disk_dirs=[home])
    assert outcome.stop_reason is not None and why in outcome.stop_reason and "(at exit)" in outcome.stop_reason
    assert list(home.iterdir()) == []  # nothing over the cap is left on the worker


@root_only
def test_under_a_docker_like_masked_proc_an_unprivileged_worker_refuses_and_root_seals(user_home: Path) -> None:
    # Docker masks /proc paths; a proc mount from a user namespace is then refused by the kernel
    mask = [
        "mount --bind /dev/null /proc/timer_list",
        "mount --bind /dev/null /proc/keys",
        "mount -t tmpfs -o ro,size=4k tmpfs /proc/acpi",
        "mount --bind -o ro /proc/sys /proc/sys",
    ]
    probe = "import json; from submissions.sandbox import probe; print(json.dumps(probe()))"
    home = user_home
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin"}
    done = as_user([sys.executable, "-c", probe], env=env, cwd=home, before=mask)
    assert done.returncode == 0, done.stderr
    _, problem = json.loads(done.stdout.strip().splitlines()[-1])
    assert problem is not None and "Can't mount proc" in problem
    worker = [sys.executable, "-m", "speedrun", "worker", "--server", "http://127.0.0.1:9", "--token", "t", "--once"]
    refused = as_user([*worker, "--work-dir", str(home / "w")], env=env, cwd=home, before=mask)
    assert refused.returncode == 4, refused.stderr
    assert (
        "cannot seal" in refused.stderr and "Can't mount proc" in refused.stderr and "docs/deploy.md" in refused.stderr
    )
    as_root = as_user([sys.executable, "-c", probe], env=env, cwd=home, before=mask, uid=None)
    assert as_root.returncode == 0, as_root.stderr
    seen, problem = json.loads(as_root.stdout.strip().splitlines()[-1])
    assert problem is None and seen["kernel_uid"] != 0  # a root worker (the container recipe) seals
