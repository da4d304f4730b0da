"""A submitter's fork: fetched by git under a policy, installed sealed, diffed for review.

Fetching: ``https://`` only, to a host whose every address is public (no loopback, private,
link-local or reserved range), with no credential helper, no prompts, no redirects, no config
from the worker's HOME, a time cap and a size cap (``RLIMIT_FSIZE`` on git, then the checkout's
size). ``file://`` and plain paths only with ``allow_local`` (tests, offline use).

Installing: a fresh venv per job that sees the verifier's own packages (torch, the project)
through a ``.pth`` file naming the running interpreter's site directories (``--system-site-
packages`` would give the *base* interpreter's, wrong when the worker itself runs in a venv).
The venv is seeded from a wheelhouse of the pinned ``requirements/build-tools.txt`` (made once
per worker, by trusted pip, outside the sandbox), then ``pip install --no-deps
--no-build-isolation --no-index`` of a writable copy of the checkout runs *inside* the sandbox
with no network at all: the fork's ``setup.py`` sees no credential, no worker file, no network,
and writes only into the job's venv and build copy. (A fork cannot add dependencies.)

Attributes: the fork's ``.gitattributes`` never change what git writes or shows. The checkout's
``info/attributes`` (written before anything is fetched; it outranks every in-tree file) unsets
every conversion and forces a text diff, and git runs with no system or global attributes.

History: the review diff (``submissions.review``) needs the fork's history, training must not see
it. ``drop_history`` deletes the checkout's ``.git`` once the diff is made, before anything binds
the checkout into a sandbox: a blob added and deleted in history is gone from the worker.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import contract
from submissions.sandbox import clean_env

MAX_FORK_BYTES = 1024 * 1024 * 1024
MAX_PYPROJECT_BYTES = 256 * 1024
GIT_TIMEOUT_S = 900.0
BUILD_TOOLS_ENV = "SPEEDRUN_BUILD_TOOLS"
# pip settings a worker operator may give the trusted wheelhouse download (no credentials in URLs)
_PIP_PASSTHROUGH = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_CERT", "PIP_DEFAULT_TIMEOUT")
OUTER_SITE_PTH = "_speedrun_verifier_site.pth"
ENTRY_POINT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")


class ForkError(Exception):
    """The fork cannot be fetched or installed; ``log_tail`` holds tool output when there is some."""

    def __init__(self, reason: str, log_tail: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.log_tail = log_tail


def check_git_url(url: str, *, allow_local: bool) -> None:
    """Raise ForkError when the verifier must not fetch ``url``."""
    parts = urlsplit(url)
    if parts.scheme == "file" or (not parts.scheme and url.startswith("/")):
        if not allow_local:
            raise ForkError("trainer.git_url: local repositories (file://) are refused by this worker")
        return
    if parts.scheme != "https":
        raise ForkError(f"trainer.git_url: only https:// is fetched, not {parts.scheme or url.split(':')[0]}")
    if parts.username or parts.password:
        raise ForkError("trainer.git_url: credentials in the URL are refused")
    host = parts.hostname or ""
    if not host:
        raise ForkError("trainer.git_url: no host")
    try:
        infos = socket.getaddrinfo(host, parts.port or 443, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        raise ForkError(f"trainer.git_url: cannot resolve {host}: {exc}") from exc
    for info in infos:
        addr = ipaddress.ip_address(info[4][0])
        if not addr.is_global:
            if allow_local:
                return
            raise ForkError(f"trainer.git_url: {host} resolves to {addr}, not a public address")


def _git_env(home: Path) -> dict[str, str]:
    return {
        **clean_env(),
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "/bin/false",
        "GIT_ATTR_NOSYSTEM": "1",
        "SSH_ASKPASS": "/bin/false",
    }


def _fsize_cap() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_FORK_BYTES, MAX_FORK_BYTES))


# In the checkout's info/attributes (highest precedence): byte-exact checkout, a text diff always.
NEUTRAL_ATTRIBUTES = "* diff -text -eol -filter -ident -working-tree-encoding -export-ignore -export-subst -merge\n"


def git_argv(src: Path, *args: str, allow_local: bool) -> list[str]:
    """git under the worker's policy: no credentials, redirects, hooks, attribute files or foreign protocols."""
    protocols = ["-c", "protocol.allow=never", "-c", "protocol.https.allow=always"]
    if allow_local:
        protocols += ["-c", "protocol.file.allow=always"]
    cmd = ["git", "-c", "credential.helper=", "-c", "http.followRedirects=false", "-c", "core.hooksPath=/dev/null"]
    cmd += ["-c", "core.attributesFile=/dev/null", "-c", "core.autocrlf=false"]
    return [*cmd, *protocols, "-C", str(src), *args]


def git_env(src: Path) -> dict[str, str]:
    return _git_env(src.parent)


def run_git(src: Path, *args: str, allow_local: bool, timeout_s: float = 120.0, what: str) -> str:
    """``git -C src args`` under the policy; its stdout, or ForkError naming ``what``."""
    cmd = git_argv(src, *args, allow_local=allow_local)
    try:
        proc = subprocess.run(
            cmd,
            env=_git_env(src.parent),
            capture_output=True,
            encoding="utf-8",
            errors="backslashreplace",  # a fork's file name need not be UTF-8
            timeout=timeout_s,
            stdin=subprocess.DEVNULL,
            preexec_fn=_fsize_cap,
        )
    except subprocess.TimeoutExpired as exc:
        raise ForkError(f"{what}: timed out after {timeout_s:.0f} s") from exc
    except OSError as exc:
        raise ForkError(f"{what}: {exc}") from exc
    if proc.returncode != 0:
        raise ForkError(f"{what}: exit code {proc.returncode}", (proc.stdout + proc.stderr)[-8000:])
    return proc.stdout


def fetch_fork(url: str, commit: str, src: Path, *, allow_local: bool, timeout_s: float = GIT_TIMEOUT_S) -> None:
    """A checkout of ``commit`` of ``url`` at ``src``, byte for byte the commit's tree (with its
    history, for the review diff: ``drop_history`` before training sees it)."""
    check_git_url(url, allow_local=allow_local)
    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)
    run_git(src, "init", "-q", allow_local=allow_local, what="git init")
    info = src / ".git" / "info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "attributes").write_text(NEUTRAL_ATTRIBUTES, encoding="utf-8")
    run_git(src, "remote", "add", "origin", url, allow_local=allow_local, what="git remote")
    run_git(src, "fetch", "-q", "origin", commit, allow_local=allow_local, timeout_s=timeout_s, what=f"git fetch {url}")
    run_git(src, "checkout", "-q", "--detach", commit, allow_local=allow_local, what=f"git checkout {commit}")
    head = run_git(src, "rev-parse", "HEAD", allow_local=allow_local, what="git rev-parse").strip()
    if head != commit:
        raise ForkError(f"trainer.commit: checked out {head}, expected {commit}")
    size = sum(f.stat().st_size for f in src.rglob("*") if f.is_file() and not f.is_symlink())
    if size > MAX_FORK_BYTES:
        raise ForkError(f"trainer.git_url: the fork holds {size} bytes, more than the cap of {MAX_FORK_BYTES}")


def model_entry_point(src: Path) -> str | None:
    """The fork's declared model entry point (``[tool.speedrun] model``), validated; None if none."""
    path = src / "pyproject.toml"
    if path.is_symlink() or not path.is_file():
        return None
    if path.stat().st_size > MAX_PYPROJECT_BYTES:
        raise ForkError(f"pyproject.toml: larger than {MAX_PYPROJECT_BYTES} bytes")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ForkError(f"pyproject.toml: not valid TOML ({exc})") from exc
    value = data.get("tool", {}).get("speedrun", {}).get("model")
    if value is None:
        return None
    if not isinstance(value, str) or not ENTRY_POINT_RE.match(value):
        raise ForkError(f"pyproject.toml [tool.speedrun] model: expected 'package.module:function', got {value!r}")
    module = value.partition(":")[0].replace(".", "/")
    if not (src / f"{module}.py").is_file() and not (src / module / "__init__.py").is_file():
        raise ForkError(f"pyproject.toml [tool.speedrun] model: {module}.py is not in the fork")
    return value


# -- the fork's venv -------------------------------------------------------------------------


def build_tools_file() -> Path:
    env = os.environ.get(BUILD_TOOLS_ENV)
    path = Path(env) if env else Path(__file__).resolve().parent.parent / "requirements" / "build-tools.txt"
    if not path.is_file():
        raise ForkError(f"{path}: the pinned build tools are missing (set ${BUILD_TOOLS_ENV} to the file)")
    return path


def build_tools_wheelhouse(cache: Path) -> Path:
    """Wheels of the pinned build tools, downloaded once per worker by the trusted pip."""
    reqs = build_tools_file()
    digest = hashlib.sha256(reqs.read_bytes()).hexdigest()[:16]
    house = cache / f"build-tools-{digest}"
    if (house / ".complete").is_file():
        return house
    tmp = cache / f".build-tools-{digest}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    env = {**clean_env(), "HOME": str(tmp), **{k: os.environ[k] for k in _PIP_PASSTHROUGH if k in os.environ}}
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--only-binary", ":all:", "-r", str(reqs), "-d", str(tmp)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise ForkError(
            f"the pinned build tools ({reqs}) cannot be downloaded: pip exit code {proc.returncode}",
            (proc.stdout + proc.stderr)[-8000:],
        )
    shutil.copyfile(reqs, tmp / "requirements.txt")
    (tmp / ".complete").write_text("ok\n")
    shutil.rmtree(house, ignore_errors=True)
    tmp.replace(house)
    return house


def outer_site_dirs() -> list[str]:
    """The running interpreter's site directories (the outer venv's when the worker runs in one)."""
    paths = sysconfig.get_paths()
    dirs = [paths["purelib"], paths["platlib"]]
    import site

    dirs += [d for d in site.getsitepackages() if d not in dirs]
    return [d for d in dict.fromkeys(dirs) if os.path.isdir(d)]


def make_venv(venv: Path) -> Path:
    """A fresh venv whose python also sees the verifier's packages; returns its site-packages."""
    if venv.exists():
        shutil.rmtree(venv)
    proc = subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode != 0:
        raise ForkError(f"python -m venv {venv}: exit code {proc.returncode}", proc.stderr[-8000:])
    site_dir = venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    lines = "".join(f"import site; site.addsitedir({d!r})\n" for d in outer_site_dirs())
    (site_dir / OUTER_SITE_PTH).write_text(lines, encoding="utf-8")
    return site_dir


def install_argv(venv: Path, wheelhouse: Path, build_src: Path) -> list[str]:
    """The sandboxed install: the pinned build tools from the wheelhouse, then the fork (no index)."""
    python = str(venv / "bin" / "python")
    pip_wheel = next(iter(sorted(wheelhouse.glob("pip-*.whl"))), None)
    if pip_wheel is None:
        raise ForkError(f"{wheelhouse}: no pip wheel among the build tools")
    seed = f"{python} {pip_wheel}/pip install -q --ignore-installed --no-index --find-links {wheelhouse}"
    seed += f" -r {wheelhouse}/requirements.txt"
    install = (
        f"{python} -m pip install -q --no-index --no-deps --no-build-isolation --find-links {wheelhouse} {build_src}"
    )
    return ["/bin/sh", "-c", f"set -e; {seed}; {install}"]


# -- history ---------------------------------------------------------------------------------


def drop_history(src: Path) -> None:
    """Delete the checkout's git directory: training and scoring see the commit's tree only."""
    git_dir = src / ".git"
    if git_dir.is_symlink() or git_dir.is_file():
        git_dir.unlink()
    elif git_dir.exists():
        shutil.rmtree(git_dir)
    if git_dir.exists() or git_dir.is_symlink():
        raise ForkError(f"{git_dir}: cannot be removed; the fork's history would be visible to training")


REFERENCE_REPO_ENV = "SPEEDRUN_REFERENCE_REPO"


def reference_repo() -> Path | None:
    """A git checkout of the reference trainer: ``$SPEEDRUN_REFERENCE_REPO`` (an image installs the
    package without its history), else the installed project's own checkout; None without one."""
    env = os.environ.get(REFERENCE_REPO_ENV)
    if env:
        return Path(env) if (Path(env) / ".git").exists() else None
    root = Path(contract.__file__).resolve().parent.parent
    return root if (root / ".git").exists() else None
