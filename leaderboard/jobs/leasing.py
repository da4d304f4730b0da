"""Handing jobs to workers fairly: one active lease per worker account (configurable), expired
leases reaped as *abandoned* (the job goes back to the queue, the entry keeps its chance), a job
given up only after ``max_attempts`` distinct workers failed it, and a worker that keeps
failing or abandoning jobs paused until an admin resumes it.

A worker is its API token's user (``lease_user_id``), not the ``worker_id`` it reports: a client
may name itself anything, so every limit and pause is keyed by the account. The lease itself,
which hands the entry's config to the worker, is ``entries.leases.lease_job``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from leaderboard.jobs.models import Job, JobStatus, LeaseOutcome, LeaseRecord, WorkerAccount
from leaderboard.revision import bump_revision
from leaderboard.tracks import repository as tracks_repository
from leaderboard.tracks.models import Track
from leaderboard.users.service import Principal

FAILING = (LeaseOutcome.failed, LeaseOutcome.errored, LeaseOutcome.abandoned, LeaseOutcome.timed_out)


@dataclass(frozen=True)
class Refused:
    """A refusal that must not roll back what the call already recorded (reaped leases, a pause):
    the route answers ``status`` with the error body and the transaction still commits."""

    status: int
    code: str
    detail: str


@dataclass(frozen=True)
class QueuePolicy:
    """The queue's fairness settings (from ``Settings``)."""

    lease_seconds: int
    max_active_leases: int | None = 1
    pause_after_abandoned: int = 3
    max_job_seconds: int = 24 * 3600


def job_deadline(job: Job, track: Track, policy: QueuePolicy) -> datetime | None:
    """When the current lease of ``job`` must end at the latest (the track's maximum job duration)."""
    if job.leased_at is None:
        return None
    return job.leased_at + timedelta(seconds=track.max_job_seconds or policy.max_job_seconds)


def lease_until(now: datetime, deadline: datetime | None, lease_seconds: int) -> datetime:
    expires = now + timedelta(seconds=lease_seconds)
    return expires if deadline is None else min(expires, deadline)


def touch_account(session: Session, principal: Principal, worker_id: str, now: datetime) -> WorkerAccount:
    """The caller's worker account, created when missing; written first, so that it is locked
    (row lock on PostgreSQL, the write lock on SQLite) until this transaction ends and two lease
    calls of one worker cannot both see "no active lease"."""
    insert: Any = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    stmt = insert(WorkerAccount).values(
        user_id=principal.user.id, abandoned=0, last_worker_id=worker_id, last_seen_at=now
    )
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=[WorkerAccount.__table__.c.user_id],
            set_={"last_worker_id": worker_id, "last_seen_at": now},
        )
    )
    account = session.scalar(
        select(WorkerAccount)
        .where(WorkerAccount.user_id == principal.user.id)
        .execution_options(populate_existing=True)
    )
    assert account is not None
    return account


def active_leases(session: Session, user_id: int, now: datetime) -> int:
    return int(
        session.scalar(
            select(func.count(Job.id)).where(
                Job.status == JobStatus.running, Job.lease_user_id == user_id, Job.lease_expires_at >= now
            )
        )
        or 0
    )


def end_lease(session: Session, token_sha256: str | None, outcome: LeaseOutcome, now: datetime) -> None:
    if token_sha256 is not None:
        session.execute(
            update(LeaseRecord)
            .where(LeaseRecord.token_sha256 == token_sha256, LeaseRecord.ended_at.is_(None))
            .values(ended_at=now, outcome=outcome)
            .execution_options(synchronize_session=False)
        )


def failing_workers(session: Session, job_id: int) -> int:
    """How many distinct worker accounts failed, abandoned or timed out this job."""
    return int(
        session.scalar(
            select(func.count(func.distinct(LeaseRecord.user_id))).where(
                LeaseRecord.job_id == job_id, LeaseRecord.outcome.in_(FAILING)
            )
        )
        or 0
    )


def note_failure(session: Session, user_id: int | None, policy: QueuePolicy, now: datetime) -> None:
    """Count a lease its worker failed (retryable or not) or abandoned against that worker; pause
    the worker at the policy's limit of such leases in a row."""
    if user_id is None:
        return
    account = session.get(WorkerAccount, user_id, populate_existing=True)
    if account is None:
        return
    account.abandoned += 1
    if account.paused_at is None and account.abandoned >= policy.pause_after_abandoned:
        account.paused_at = now
        account.paused_reason = (
            f"failed or abandoned {account.abandoned} leases in a row (the limit is {policy.pause_after_abandoned}); "
            "an admin can resume it"
        )
    session.flush()


def requeue_or_give_up(session: Session, job: Job, reason: str, now: datetime) -> None:
    """After a failing lease: back to the queue while fewer than ``max_attempts`` distinct workers
    failed the job, else failed for good (the caller, in entries/, then shows a pending entry as
    'error': ``entries.leases``)."""
    session.refresh(job)
    if failing_workers(session, job.id) < job.max_attempts:
        job.status, job.failure_reason = JobStatus.queued, reason
        job.lease_owner = None
    else:
        job.status, job.finished_at = JobStatus.failed, now
        job.failure_reason = f"{reason}; {job.max_attempts} distinct workers failed this job, it is given up"
    session.flush()


def reap_expired(session: Session, job: Job, policy: QueuePolicy, now: datetime) -> bool:
    """A running job whose lease expired: the lease ends as abandoned (or timed out at the track's
    maximum duration) and the job is requeued or given up. True when this call reaped it."""
    old_token, old_user, owner = job.lease_token_sha256, job.lease_user_id, job.lease_owner
    track = tracks_repository.by_id(session, job.track_id)
    deadline = None if track is None else job_deadline(job, track, policy)
    timed_out = deadline is not None and job.lease_expires_at is not None and job.lease_expires_at >= deadline
    result = session.execute(
        update(Job)
        .where(
            Job.id == job.id,
            Job.status == JobStatus.running,
            Job.lease_token_sha256 == old_token,
            Job.lease_expires_at < now,
        )
        .values(lease_token_sha256=None, lease_expires_at=None, lease_user_id=None)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        return False
    end_lease(session, old_token, LeaseOutcome.timed_out if timed_out else LeaseOutcome.abandoned, now)
    if timed_out:
        reason = f"worker {owner} ran past the track's maximum job duration"
    else:
        note_failure(session, old_user, policy, now)
        reason = f"worker {owner} abandoned the lease (it expired without a word)"
    requeue_or_give_up(session, job, reason, now)
    bump_revision(session)
    return True
