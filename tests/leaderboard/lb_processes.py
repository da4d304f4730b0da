"""Real site processes for the leaderboard tests: `speedrun serve` in a subprocess (optionally
with several uvicorn worker processes, or under a resource limit), over a database of its own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import text

from leaderboard.app import open_database
from leaderboard.db import make_engine, session_scope
from leaderboard.settings import Settings
from leaderboard.users.models import Role
from leaderboard.users.schemas import UserCreate
from leaderboard.users.service import create_user

SECRET = "leaderboard-process-tests-secret"


@contextmanager
def private_database(kind: str, home: Path, postgres_url: str | None) -> Iterator[str]:
    """A database URL no other test sees: a SQLite file, or a fresh schema of ``postgres_url``."""
    if kind == "sqlite":
        yield f"sqlite:///{home / 'site.db'}"
        return
    assert postgres_url is not None
    schema = f"proc_{uuid.uuid4().hex[:10]}"
    admin = make_engine(postgres_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{postgres_url}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def make_tokens(home: Path, database_url: str, roles: dict[str, Role]) -> dict[str, str]:
    """Migrate and seed the database, and create one user (and token) per name."""
    db = open_database(Settings(home=home, database_url=database_url, secret_key=SECRET))
    try:
        with session_scope(db.sessionmaker) as s:
            return {name: create_user(s, UserCreate(name=name, role=role)).token for name, role in roles.items()}
    finally:
        db.close()


@dataclass
class SiteProcess:
    url: str
    proc: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)


def start_site(
    home: Path,
    database_url: str,
    port: int,
    *,
    workers: int = 1,
    env: dict[str, str] | None = None,
    preexec: Callable[[], None] | None = None,
) -> SiteProcess:
    """`speedrun serve` on 127.0.0.1:``port``; returns once /api/health answers."""
    environ = {
        **os.environ,
        "SPEEDRUN_HOME": str(home),
        "SPEEDRUN_DATABASE_URL": database_url,
        "SPEEDRUN_SECRET_KEY": SECRET,
        "SPEEDRUN_CACHE_TTL_SECONDS": "0",
        **(env or {}),
    }
    cmd = [sys.executable, "-m", "speedrun", "serve", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--workers", str(workers), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, env=environ, preexec_fn=preexec)
    site = SiteProcess(url=f"http://127.0.0.1:{port}", proc=proc)
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the site exited with {proc.returncode}")
        try:
            if httpx.get(f"{site.url}/api/health", timeout=2).status_code == 200:
                return site
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            site.stop()
            raise RuntimeError("the site did not answer /api/health within 60 s")
        time.sleep(0.2)
