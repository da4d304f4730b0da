"""The database of bench/site.py: 10,000 entries, 100,000 runs and 300 verification jobs on the
gpt2-8xh100 track (``populate``: a signed-in reader's cookie and the best entries' ids with the
counts), and what the signed-in fast path reads per request on it, timed alone (``lookup_costs``)."""

from __future__ import annotations

import random
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ENTRIES = 10_000
RUNS_PER_ENTRY = 10
TRACK = "gpt2-8xh100"
JOBS = 300
ENTRY_PAGES = 50  # the entry pages cycle over the ids of this many best entries


def populate(database_url: str, home: Path) -> dict[str, Any]:
    """Migrate, seed, then add ENTRIES entries, ENTRIES * RUNS_PER_ENTRY runs and JOBS jobs; ranks
    recomputed. Returns the counts and the ids of the best entries (for the entry pages)."""
    from sqlalchemy import func, insert, select

    from leaderboard.app import open_database
    from leaderboard.db import session_scope
    from leaderboard.entries.models import Entry, EntryStatus, Run, RunKind, Verification
    from leaderboard.entries.standing import recompute_ranks
    from leaderboard.jobs.models import Job, JobStatus
    from leaderboard.revision import bump_revision
    from leaderboard.settings import Settings
    from leaderboard.tracks.models import Track

    rng = random.Random(0)
    db = open_database(Settings(home=home, database_url=database_url, secret_key="bench"))
    from contract.core_v1 import CORE_V1_LABELS

    tasks = list(CORE_V1_LABELS)  # the protocol's names: the entry page lists only those
    with session_scope(db.sessionmaker) as session:
        track_id = session.scalar(select(Track.id).where(Track.slug == TRACK))
        statuses = [EntryStatus.verified] * 7 + [EntryStatus.pending, EntryStatus.failed, EntryStatus.inconclusive]
        now = datetime.now(UTC)
        rows = []
        for i in range(ENTRIES):
            hours = rng.uniform(1.2, 4.0)
            core = rng.uniform(0.257, 0.275)
            rows.append(
                {
                    "track_id": track_id,
                    "status": rng.choice(statuses),
                    "title": f"bench entry {i}: d{rng.choice([20, 22, 24, 26])} <variant {i % 97}>",
                    "description": "synthetic entry for bench/site.py",
                    "contributors": [f"@user{rng.randrange(500)}"],
                    "run_config": {"recipe": "gpt2_speedrun", "hardware_class": "h100-sxm", "gpus_per_node": 8},
                    "trainer": "reference@0.1.0",
                    "recipe": "gpt2_speedrun",
                    "hardware_class": "h100-sxm",
                    "gpus_per_node": 8,
                    "nodes": 1,
                    "rules_version": "speedrun-v1",
                    "record_date": date(2026, 4, 1) + timedelta(days=i % 200),
                    "claimed_hours": hours * 0.98,
                    "claimed_core": core,
                    "claimed_runs": 3,
                    "hours": hours,
                    "hours_std": 0.01,
                    "core_mean": core,
                    "core_std": 0.004,
                    "core_n": 3,
                    "p_value": 0.01,
                    "val_bpb": 0.72,
                    "flops": 3e19,
                    "cost_usd": hours * 8 * 3.0,
                    "price_usd_per_gpu_hour": 3.0,
                    "price_sku": "h100-sxm",
                    "verified_at": now,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        session.execute(insert(Entry), rows)
        ids = list(
            session.scalars(select(Entry.id).where(Entry.track_id == track_id, Entry.rules_version == "speedrun-v1"))
        )
        runs = []
        for entry_id in ids:
            for k in range(RUNS_PER_ENTRY):
                runs.append(
                    {
                        "entry_id": entry_id,
                        "kind": RunKind.claimed if k < 3 else RunKind.verified,
                        "run_id": f"r{entry_id}-{k}",
                        "seed": k,
                        "training_seconds": rng.uniform(4000, 14000),
                        "core": rng.uniform(0.25, 0.28),
                        "core_tasks": {t: rng.random() for t in tasks},
                        "val_bpb": 0.72,
                        "created_at": now,
                    }
                )
        for start in range(0, len(runs), 20_000):
            session.execute(insert(Run), runs[start : start + 20_000])
        recompute_ranks(session, track_id)
        _add_jobs(session, rng, track_id, ids[:JOBS], now, Job, JobStatus, Verification)
        bump_revision(session)
        best = list(
            session.scalars(
                select(Entry.id)
                .where(Entry.track_id == track_id, Entry.rank_time.is_not(None))
                .order_by(Entry.rank_time)
                .limit(ENTRY_PAGES)
            )
        )
        counts: dict[str, Any] = {
            "cookie": _reader_cookie(session, ids[:5]),
            "entries": int(session.scalar(select(func.count(Entry.id))) or 0),
            "runs": int(session.scalar(select(func.count(Run.id))) or 0),
            "jobs": int(session.scalar(select(func.count(Job.id))) or 0),
            "entry_ids": best,
        }
    db.engine.dispose()
    return counts


def lookup_costs(database_url: str, home: Path, cookie: str, repeats: int = 3000) -> dict[str, Any]:
    """What the signed-in fast path reads per request, each timed alone on its dedicated connection
    (median and p99 of ``repeats`` reads, microseconds): the board revision (every cached page
    reads it) and the session (issue 20: ``SessionReader``, one indexed read of a session joined
    with its token and user). A per-process cache of sessions keyed on a "sessions revision" would
    save the difference and no more: it too reads one row per request."""
    from leaderboard.app import open_database
    from leaderboard.revision import RevisionReader
    from leaderboard.settings import Settings
    from web import security

    try:
        from leaderboard.users.sessions import SessionReader
    except ImportError:  # a commit before issue 20's fast path
        return {"skipped": "no SessionReader in this commit"}
    db = open_database(Settings(home=home, database_url=database_url, secret_key="bench"))
    signed = cookie.split(";")[0].split("=", 1)[1]
    sid = security.unsign(signed, secret="bench", purpose="session", max_age_s=86_400)
    revision, sessions = RevisionReader(db.engine), SessionReader(db.engine)
    out: dict[str, Any] = {"repeats": repeats}
    try:
        assert sessions.read(sid) is not None
        for name, read in (("revision", revision.read), ("session", lambda: sessions.read(sid))):
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                read()
                times.append(time.perf_counter() - t0)
            times.sort()
            out[f"{name}_read_us"] = {
                "p50": round(1e6 * times[len(times) // 2], 1),
                "p99": round(1e6 * times[int(0.99 * len(times))], 1),
            }
    finally:
        revision.close()
        sessions.close()
        db.engine.dispose()
    return out


def _reader_cookie(session: Any, own: list[int]) -> str:
    """A signed-in reader who owns a few entries: the ``Cookie`` header of their web session."""
    from sqlalchemy import update

    from leaderboard.entries.models import Entry
    from leaderboard.users.models import Role
    from leaderboard.users.repository import user_by_name
    from leaderboard.users.schemas import UserCreate
    from leaderboard.users.service import Principal, create_user
    from leaderboard.users.sessions import start_session
    from web import security

    issued = create_user(session, UserCreate(name="bench-reader", role=Role.submitter))
    user = user_by_name(session, "bench-reader")
    assert user is not None
    session.execute(update(Entry).where(Entry.id.in_(own)).values(owner_id=user.id))
    sid = start_session(session, Principal(user=user, token_id=issued.token_id), ttl_seconds=86_400)
    # and the CSRF nonce cookie a browser holds from the page it lands on after signing in
    # (``/submit``): the forms' tokens on its pages are made from it
    signed = security.sign(sid, secret="bench", purpose="session")
    return f"{security.SESSION_COOKIE}={signed}; {security.CSRF_COOKIE}={security.new_csrf_nonce()}"


def _add_jobs(
    session: Any, rng: random.Random, track_id: int, entry_ids: list[int], now: datetime, *models: Any
) -> None:
    """JOBS jobs: most finished (each with its verification's verdict), some queued, a few running."""
    from sqlalchemy import insert

    job_model, job_status, verification_model = models
    jobs = []
    for i, entry_id in enumerate(entry_ids):
        status = job_status.running if i < 5 else job_status.queued if i < 40 else job_status.succeeded
        started = now - timedelta(hours=2) if status != job_status.queued else None
        jobs.append(
            {
                "entry_id": entry_id,
                "track_id": track_id,
                "status": status,
                "reason": "submission",
                "runs": 3,
                "attempts": 0 if status == job_status.queued else 1,
                "max_attempts": 3,
                "progress": {
                    "run_index": 1,
                    "runs": 3,
                    "step": 2000,
                    "steps": 5000,
                    "eta_seconds": 3000.0,
                    "message": "",
                }
                if status == job_status.running
                else None,
                "lease_owner": "gpu-box-1" if status == job_status.running else None,
                "created_at": now - timedelta(hours=3),
                "started_at": started,
                "finished_at": now - timedelta(minutes=5) if status == job_status.succeeded else None,
            }
        )
    session.execute(insert(job_model), jobs)
    finished = session.execute(select_jobs(job_model).where(job_model.status == job_status.succeeded)).all()
    session.execute(
        insert(verification_model),
        [
            {
                "entry_id": entry_id,
                "job_id": job_id,
                "verifier_id": "gpu-box-1",
                "reported_verdict": verdict,
                "verdict": verdict,
                "reasons": ["synthetic"],
                "p_value": rng.uniform(0.001, 0.9),
                "report": {},
                "created_at": now,
            }
            for job_id, entry_id in finished
            for verdict in [rng.choice(["verified", "failed", "inconclusive"])]
        ],
    )


def select_jobs(job_model: Any) -> Any:
    from sqlalchemy import select

    return select(job_model.id, job_model.entry_id)
