"""Real `speedrun serve` processes (SQLite and PostgreSQL): the submit rate limit holds across two
server processes under 60 concurrent posts (a post the overloaded site answers 503 is sent again, as the
client does), and a full disk answers 507 while /api/health says
degraded (the disk is made "full" for real: the server runs under RLIMIT_FSIZE, so the kernel
refuses writes past the limit with EFBIG exactly as a full filesystem refuses them with ENOSPC)."""

from __future__ import annotations

import json
import resource
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from lb_factories import fingerprint, submission_json
from lb_processes import make_tokens, private_database, start_site
from sqlalchemy import func, select

from contract import protocol
from leaderboard.db import make_engine
from leaderboard.entries.models import Submission
from leaderboard.users.models import Role

pytestmark = pytest.mark.slow


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def site_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    pg = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    with private_database(request.param, tmp_path, pg) as url:
        yield url


def _stored_submissions(url: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.scalar(select(func.count(Submission.id))) or 0)
    finally:
        engine.dispose()


def test_rate_limit_holds_across_two_server_processes(site_db: str, tmp_path: Path, free_port: int) -> None:
    tokens = make_tokens(tmp_path, site_db, {"alice": Role.submitter})
    site = start_site(tmp_path, site_db, free_port, workers=2, env={"SPEEDRUN_SUBMIT_RATE_PER_MINUTE": "20"})
    try:
        bodies = [json.dumps(submission_json()).encode() for _ in range(60)]
        barrier = threading.Barrier(60)
        codes: list[int] = []
        overloaded: list[httpx.Response] = []  # 503s, retried as the CLI client retries them

        def post(body: bytes) -> None:
            headers = {"Authorization": f"Bearer {tokens['alice']}", "Content-Type": "application/json"}
            with httpx.Client(base_url=site.url, timeout=120) as client:
                barrier.wait()
                # On a choked machine a request can wait out the connection pool (30 s): the site answers
                # 503 with Retry-After, and a client sends it again. Each post ends in 201 or 429.
                for _ in range(10):
                    reply = client.post(protocol.SUBMISSIONS, content=body, headers=headers)
                    if reply.status_code != 503:
                        break
                    overloaded.append(reply)
                    time.sleep(float(reply.headers["Retry-After"]))
                codes.append(reply.status_code)

        threads = [threading.Thread(target=post, args=(b,)) for b in bodies]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        assert Counter(codes) == {201: 20, 429: 40}
        assert _stored_submissions(site_db) == 20
        assert all(r.json()["error"] == "overloaded" for r in overloaded)  # never a 500
    finally:
        site.stop()


LIMIT_BYTES = 8 * 1024 * 1024


def _limit_file_size() -> None:
    """In the server process: writes past LIMIT_BYTES fail with EFBIG (SIGXFSZ ignored, not fatal)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT_BYTES, LIMIT_BYTES))


def test_a_full_disk_is_507_and_health_says_degraded(site_db: str, tmp_path: Path, free_port: int) -> None:
    tokens = make_tokens(tmp_path, site_db, {"alice": Role.submitter, "node": Role.worker})
    site = start_site(tmp_path, site_db, free_port, preexec=_limit_file_size)
    try:
        with httpx.Client(base_url=site.url, timeout=60) as client:
            alice = {"Authorization": f"Bearer {tokens['alice']}"}
            node = {"Authorization": f"Bearer {tokens['node']}"}
            assert client.post(protocol.SUBMISSIONS, json=submission_json(), headers=alice).status_code == 201
            body = {"worker_id": "n1", "fingerprint": fingerprint().model_dump(mode="json")}
            lease = client.post(protocol.LEASE, json=body, headers=node).json()
            url = protocol.ARTIFACTS.format(job_id=lease["job_id"])
            up = {**node, protocol.LEASE_TOKEN_HEADER: lease["lease_token"], "Content-Type": "application/octet-stream"}
            full = client.post(
                url, params={"name": "big.log", "kind": "log"}, content=b"x" * (LIMIT_BYTES + 1), headers=up
            )
            assert full.status_code == 507, full.text
            assert full.json()["error"] == "insufficient_storage"
            health = client.get("/api/health").json()
            assert health["status"] == "degraded" and health["storage"] == "OSError: File too large"
            assert not list((tmp_path / "artifacts").rglob(".upload-*"))  # no partial file left behind
            small = client.post(url, params={"name": "small.log", "kind": "log"}, content=b"ok\n", headers=up)
            assert small.status_code == 201  # space again (a small write fits): the site recovers
            assert client.get("/api/health").json()["status"] == "ok"
    finally:
        site.stop()


def test_a_full_database_disk_is_507_and_nothing_is_half_stored(tmp_path: Path, free_port: int) -> None:
    url = f"sqlite:///{tmp_path / 'site.db'}"
    tokens = make_tokens(tmp_path, url, {"alice": Role.submitter})
    site = start_site(tmp_path, url, free_port, preexec=_limit_file_size)
    try:
        codes: list[int] = []
        with httpx.Client(base_url=site.url, timeout=120) as client:
            alice = {"Authorization": f"Bearer {tokens['alice']}"}
            for _ in range(12):  # ~2.6 MB of claimed runs per submission into an 8 MiB database file
                body = submission_json()
                first = body["claimed_results"][0]
                first["config"] = {f"k{i:04d}": "x" * 40 for i in range(1200)}
                body["claimed_results"] = [dict(first, run_id=f"run-{i}", seed=i + 1) for i in range(20)]
                codes.append(client.post(protocol.SUBMISSIONS, json=body, headers=alice).status_code)
                if codes[-1] == 507:
                    break
            assert codes[-1] == 507 and set(codes[:-1]) == {201}, codes
        # a new connection: the server closes one whose request raised (after answering 507)
        assert httpx.get(f"{site.url}/api/health", timeout=30).json()["status"] == "degraded"
        site.stop()
        assert _stored_submissions(url) == len(codes) - 1  # the refused one left nothing behind
    finally:
        site.stop()
