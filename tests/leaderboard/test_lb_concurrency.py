"""Concurrent workers lease from a real, committed queue: every job goes to exactly one worker."""

from __future__ import annotations

import threading
from collections import Counter

from lb_factories import fingerprint, submission
from sqlalchemy import Engine

from contract.protocol import LeaseRequest
from contract.tracks import BUILTIN_TRACKS
from leaderboard import migrate
from leaderboard.artifacts.storage import ArtifactStore
from leaderboard.db import make_sessionmaker, session_scope
from leaderboard.entries.leases import lease_job
from leaderboard.entries.submission import submit
from leaderboard.jobs.leasing import QueuePolicy
from leaderboard.seed import seed_all
from leaderboard.users.models import Role
from leaderboard.users.schemas import UserCreate
from leaderboard.users.service import authenticate_principal, create_user

JOBS = 5
WORKERS = 8


def test_concurrent_leases_hand_each_job_to_one_worker(fresh_engine: Engine, tmp_path: object) -> None:
    migrate.upgrade(fresh_engine)
    factory = make_sessionmaker(fresh_engine)
    store = ArtifactStore(tmp_path / "artifacts")  # type: ignore[operator]
    with session_scope(factory) as s:
        seed_all(s)
        alice = create_user(s, UserCreate(name="alice", role=Role.submitter)).token
        worker = create_user(s, UserCreate(name="worker", role=Role.worker)).token
    with session_scope(factory) as s:
        principal = authenticate_principal(s, alice)
        for _ in range(JOBS):
            submit(s, principal, submission(), store=store, base_url="http://x")

    leased: list[int | None] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(WORKERS)

    def work(i: int) -> None:
        try:
            barrier.wait()
            with session_scope(factory) as s:
                who = authenticate_principal(s, worker)
                req = LeaseRequest(worker_id=f"w{i}", fingerprint=fingerprint())
                got = lease_job(s, who, req, QueuePolicy(lease_seconds=60, max_active_leases=None))
            leased.append(None if got is None else got.job_id)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    counts = Counter(j for j in leased if j is not None)
    assert all(n == 1 for n in counts.values())  # no run leased twice
    assert leased.count(None) == WORKERS - len(counts)
    # and every run was leased while there were workers: a worker skips a locked run, it does not give up
    assert len(counts) == min(WORKERS, JOBS * BUILTIN_TRACKS["cpu-smoke"].min_runs)
