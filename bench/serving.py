"""Start a real ``speedrun serve`` for a bench and wait until it answers /api/health."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx


def serve(home: Path, port: int, *, env: dict[str, str], args: tuple[str, ...] = ()) -> subprocess.Popen[bytes]:
    """The site on 127.0.0.1:``port`` in its own session (kill the group to stop it)."""
    cmd = [sys.executable, "-m", "speedrun", "serve", "--port", str(port), "--home", str(home), *args]
    cmd += ["--log-level", "warning", "--no-access-log"]
    proc = subprocess.Popen(
        cmd, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=5).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError("speedrun serve did not start")
