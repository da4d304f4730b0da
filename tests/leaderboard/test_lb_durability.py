"""Durability: concurrent submitters while the server process is SIGKILLed and restarted.

Every submission that was acknowledged (201, or 200 for a replay) is in the database after the
crashes, with exactly one entry and one job, and no idempotency key is stored twice.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from lb_factories import submission_json
from sqlalchemy import func, select

from contract.protocol import SUBMISSIONS
from contract.tracks import BUILTIN_TRACKS
from leaderboard.app import open_database
from leaderboard.db import session_scope
from leaderboard.entries.models import Entry, Submission
from leaderboard.jobs.models import Job
from leaderboard.jobs.repository import IS_RUN, IS_VERIFICATION
from leaderboard.settings import Settings
from leaderboard.users.models import Role
from leaderboard.users.schemas import UserCreate
from leaderboard.users.service import create_user

SUBMITTERS = 4
PER_SUBMITTER = 6
KILLS = 2


def _start(home: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SPEEDRUN_SUBMIT_RATE_PER_MINUTE": "100000", "SPEEDRUN_SECRET_KEY": "durability"}
    cmd = [sys.executable, "-m", "speedrun", "serve", "--port", str(port), "--home", str(home)]
    return subprocess.Popen(
        [*cmd, "--log-level", "warning", "--no-access-log"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _wait_up(base: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the server exited"
        try:
            if httpx.get(f"{base}/api/tracks", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("the server did not come up")


@pytest.mark.slow
def test_acknowledged_submissions_survive_sigkill(tmp_path: Path, free_port: int) -> None:
    home = tmp_path / "site"
    settings = Settings(home=home, secret_key="durability")
    db = open_database(settings)
    with session_scope(db.sessionmaker) as s:
        tokens = [create_user(s, UserCreate(name=f"dur-{i}", role=Role.submitter)).token for i in range(SUBMITTERS)]
    db.close()

    base = f"http://127.0.0.1:{free_port}"
    proc = _start(home, free_port)
    _wait_up(base, proc)
    acked: dict[str, int] = {}
    lock = threading.Lock()
    errors: list[str] = []

    def submitter(i: int) -> None:
        with httpx.Client(base_url=base, timeout=10, headers={"Authorization": f"Bearer {tokens[i]}"}) as http:
            for j in range(PER_SUBMITTER):
                key = f"dur-{i}-{j}-key"
                body = submission_json(key=key, title=f"durability {i}.{j}")
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    try:
                        r = http.post(SUBMISSIONS, json=body)
                    except httpx.TransportError:
                        time.sleep(0.1)
                        continue
                    if r.status_code in (200, 201):
                        with lock:
                            acked[key] = r.json()["submission_id"]
                        break
                    if r.status_code >= 500:
                        time.sleep(0.1)
                        continue
                    errors.append(f"{key}: {r.status_code} {r.text[:200]}")
                    break

    threads = [threading.Thread(target=submitter, args=(i,)) for i in range(SUBMITTERS)]
    for t in threads:
        t.start()
    try:
        for kill in range(KILLS):
            target = (kill + 1) * SUBMITTERS * PER_SUBMITTER // (KILLS + 2)
            while len(acked) < target and any(t.is_alive() for t in threads):
                time.sleep(0.01)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            proc = _start(home, free_port)
            _wait_up(base, proc)
        for t in threads:
            t.join(timeout=180)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    assert errors == []
    assert len(acked) == SUBMITTERS * PER_SUBMITTER
    db = open_database(settings.model_copy(update={"migrate_on_start": False, "seed_on_start": False}))
    with session_scope(db.sessionmaker) as s:
        stored = dict(s.execute(select(Submission.idempotency_key, Submission.id)).all())
        assert stored == acked  # every acknowledged submission, under the id it was acknowledged with
        assert s.scalar(select(func.count(Submission.id))) == len(acked)  # none twice
        per_sub = s.execute(select(Entry.submission_id, func.count(Entry.id)).group_by(Entry.submission_id)).all()
        assert sorted(n for _, n in per_sub if _ is not None) == [1] * len(acked)
        jobs = s.execute(select(Job.entry_id, func.count(Job.id)).where(IS_VERIFICATION).group_by(Job.entry_id)).all()
        assert len(jobs) == len(acked) and all(n == 1 for _, n in jobs)  # one verification job each
        runs = s.execute(select(Job.parent_id, func.count(Job.id)).where(IS_RUN).group_by(Job.parent_id)).all()
        assert len(runs) == len(acked) and all(n == BUILTIN_TRACKS["cpu-smoke"].min_runs for _, n in runs)
    db.close()
