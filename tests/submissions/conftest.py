"""A real leaderboard site on 127.0.0.1 (uvicorn in a thread, SQLite in tmp) for client/worker tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveSite:
    """A running site; ``restart()`` stops it and serves the same database again on the same port."""

    home: Path
    port: int
    lease_seconds: int
    tokens: dict[str, str] = field(default_factory=dict)
    _server: Any = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def settings(self) -> Any:
        from leaderboard.settings import Settings

        return Settings(
            home=self.home,
            database_url=f"sqlite:///{self.home / 'site.db'}",
            artifacts_dir=self.home / "artifacts",
            base_url=self.url,
            secret_key="test-secret-key-of-the-submissions-tests",
            lease_seconds=self.lease_seconds,
            submit_rate_per_minute=1000,
            cache_ttl_seconds=0.0,
            allow_local_git_urls=True,  # the tests' forks are file:// repositories
        )

    def start(self) -> None:
        import uvicorn

        from speedrun.site import create_app

        config = uvicorn.Config(create_app(self.settings()), host="127.0.0.1", port=self.port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the site did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=30)
            self._server = None

    def create_user(self, name: str, role: str) -> str:
        from leaderboard.app import open_database
        from leaderboard.db import session_scope
        from leaderboard.users.models import Role
        from leaderboard.users.schemas import UserCreate
        from leaderboard.users.service import create_user

        db = open_database(self.settings())
        try:
            with session_scope(db.sessionmaker) as session:
                issued = create_user(session, UserCreate(name=name, role=Role(role)))
        finally:
            db.close()
        self.tokens[name] = issued.token
        return issued.token

    def job(self, job_id: int) -> dict[str, Any]:
        import httpx

        resp = httpx.get(f"{self.url}/api/jobs/{job_id}", timeout=10)
        resp.raise_for_status()
        data: dict[str, Any] = resp.json()
        return data


def _site(home: Path, lease_seconds: int) -> LiveSite:
    pytest.importorskip("leaderboard.app", reason="the leaderboard site is not in this build")
    site = LiveSite(home=home, port=_port(), lease_seconds=lease_seconds)
    site.home.mkdir()
    site.create_user("alice", "submitter")
    site.create_user("gpu-node", "worker")
    site.create_user("alice-worker", "worker")  # a second worker account
    site.start()
    return site


@pytest.fixture
def live_site(tmp_path: Path) -> Iterator[LiveSite]:
    """A site whose leases last 3 s, so that tests can watch one expire."""
    site = _site(tmp_path / "site", lease_seconds=3)
    try:
        yield site
    finally:
        site.stop()


@pytest.fixture
def roomy_site(tmp_path: Path) -> Iterator[LiveSite]:
    """A site with 60 s leases, for jobs of real training on a loaded machine."""
    site = _site(tmp_path / "site", lease_seconds=60)
    try:
        yield site
    finally:
        site.stop()


@dataclass
class Hostile:
    """What a hostile fork aims at: the worker's paths, a secret, a local HTTP server standing in
    for the network, a marker file that planted code would create."""

    root: Path
    work_dir: Path
    token_file: Path
    secret: Path
    marker: Path
    http_port: int
    forks: dict[str, tuple[str, str]]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    import http.server
    import os

    from tests.submissions.fork_repos import make_forks

    root = tmp_path_factory.mktemp("hostile")
    work_dir, token_file, secret = root / "worker", root / "token", root / "secret"
    work_dir.mkdir()
    for path, text in ((token_file, "worker-token-from-file\n"), (secret, "root-only secret\n")):
        path.write_text(text)
        os.chmod(path, 0o600)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    params = {
        "http_port": server.server_address[1],
        "worker_paths": [str(Path.home()), str(work_dir), str(token_file)],
        "marker": str(root / "planted-marker"),
        "secret_path": str(secret),
    }
    forks = make_forks(root / "forks", params)
    try:
        yield Hostile(root, work_dir, token_file, secret, root / "planted-marker", params["http_port"], forks)
    finally:
        server.shutdown()


@pytest.fixture(scope="module")
def fork(hostile: Hostile) -> dict[str, tuple[str, str]]:
    """The local repository standing in for a fork of the trainer: behaviour -> (clone URL, commit)."""
    return hostile.forks
