"""Run a command as an unprivileged uid from a root test process (the "unprivileged worker" case).

The interpreter may live under a directory that uid cannot traverse (``/root/.pyenv``): the
command then runs in a private mount namespace where that directory is a tmpfs showing only the
interpreter's tree (the rest of the host is untouched; nothing is chmod'ed).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

UID = 4242


def _hidden_ancestor(path: Path) -> Path | None:
    for parent in reversed(path.parents):
        if parent != Path("/") and not os.stat(parent).st_mode & 0o001:
            return parent
    return None


def as_user(
    argv: list[str],
    *,
    env: dict[str, str],
    uid: int | None = UID,
    before: list[str] = (),  # type: ignore[assignment]
    **kw: object,
) -> subprocess.CompletedProcess[str]:
    """``argv`` as ``uid`` (gid ``uid``, no groups; None: stay root) with exactly ``env``, in a private
    mount namespace where the shell commands ``before`` ran first (as root); needs root."""
    base = Path(os.path.realpath(sys.base_prefix))
    lines = ["set -e", *before]
    top = _hidden_ancestor(base)
    if top is not None and uid is not None:
        stash = f"/run/speedrun-test-{os.getpid()}-{uid}"
        lines += [
            f"mkdir -p {stash}",
            f"mount --bind {shlex.quote(str(base))} {stash}",
            f"mount -t tmpfs -o mode=0755,size=1m tmpfs {shlex.quote(str(top))}",
            f"mkdir -p {shlex.quote(str(base))}",
            f"mount --bind {stash} {shlex.quote(str(base))}",
        ]
    env_args = " ".join(shlex.quote(f"{k}={v}") for k, v in env.items())
    drop = f"setpriv --reuid={uid} --regid={uid} --clear-groups " if uid is not None else ""
    lines.append(f'exec {drop}env -i {env_args} "$@"')
    cmd = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", "\n".join(lines), "sh", *argv]
    return subprocess.run(cmd, capture_output=True, text=True, **kw)  # type: ignore[call-overload]
