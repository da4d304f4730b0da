"""A verification job's runs: who may lease which run, who ran what, and the job's own state.

Workers lease a verification job's k runs one by one (``Job.run_index``), so k nodes verify one
job at once, and a track's ``min_worker_accounts`` can ask for runs from several accounts. The
rule that keeps that reachable: an account may take another run of a job only while the runs
still unassigned leave room for the accounts the track asks for (k = 3, two accounts: one
account may run two of the three runs, never the third). An account that found a run of a job
broken gets no run of that job again. The verification job's status, progress and workers are
read from its runs (``sync``): queued until a run is leased, running until all k are in (or one
was given up).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from leaderboard.jobs import repository
from leaderboard.jobs.models import Job, JobStatus, LeaseOutcome, LeaseRecord
from leaderboard.users.models import User


@dataclass(frozen=True)
class RunWorker:
    """Who ran one run of a verification (its completed lease)."""

    run_index: int
    user_id: int | None
    account: str
    worker_id: str


def parent_of(session: Session, run: Job) -> Job:
    assert run.parent_id is not None
    parent = session.get(Job, run.parent_id, populate_existing=True)
    assert parent is not None
    return parent


def _holders(runs: list[Job], completed: dict[int, int | None]) -> set[int]:
    """Accounts that hold or ran one of ``runs`` (running leases and completed runs)."""
    out: set[int] = set()
    for r in runs:
        if r.status == JobStatus.running and r.lease_user_id is not None:
            out.add(r.lease_user_id)
        elif r.status == JobStatus.succeeded and completed.get(r.id) is not None:
            out.add(int(completed[r.id]))  # type: ignore[arg-type]
    return out


def completed_by(session: Session, run_ids: list[int]) -> dict[int, int | None]:
    """run job id -> the account of its completed lease."""
    if not run_ids:
        return {}
    rows = session.execute(
        select(LeaseRecord.job_id, LeaseRecord.user_id).where(
            LeaseRecord.job_id.in_(run_ids), LeaseRecord.outcome == LeaseOutcome.completed
        )
    ).all()
    return {int(job_id): (None if user_id is None else int(user_id)) for job_id, user_id in rows}


def refusal(session: Session, run: Job, user_id: int, min_accounts: int) -> str | None:
    """Why ``user_id`` may not lease ``run`` now (None: it may).

    An account that found one of the job's runs broken (an error report, a failure it said is not
    retryable) gets none of the job's runs again: other accounts must see it too. One that gave a
    run back or let its lease expire may take it again (each such lease counts toward its pause)."""
    siblings = repository.runs_of(session, run.parent_id or 0)
    errored = session.scalar(
        select(LeaseRecord.id).where(
            LeaseRecord.job_id.in_([r.id for r in siblings]),
            LeaseRecord.user_id == user_id,
            LeaseRecord.outcome == LeaseOutcome.errored,
        )
    )
    if errored is not None:
        return f"this account reported a run of job {run.parent_id} broken; other accounts must run it"
    if min_accounts <= 1:
        return None
    others = [r for r in siblings if r.id != run.id]
    holders = _holders(others, completed_by(session, [r.id for r in others]))
    if user_id not in holders:
        return None
    unassigned = sum(1 for r in others if r.status == JobStatus.queued)
    if len(holders) + unassigned < min_accounts:
        return (
            f"this account already runs or ran another run of job {run.parent_id}; the track needs runs from "
            f"{min_accounts} worker accounts, so this run is left for another account"
        )
    return None


def workers_of(session: Session, runs: list[Job]) -> list[RunWorker]:
    """Who ran each completed run (by run index)."""
    rows = session.execute(
        select(LeaseRecord.job_id, LeaseRecord.user_id, LeaseRecord.worker_id, User.name)
        .outerjoin(User, User.id == LeaseRecord.user_id)
        .where(LeaseRecord.job_id.in_([r.id for r in runs]), LeaseRecord.outcome == LeaseOutcome.completed)
    ).all()
    by_job = {int(job_id): (user_id, worker_id, name) for job_id, user_id, worker_id, name in rows}
    out: list[RunWorker] = []
    for r in runs:
        if r.id in by_job and r.run_index is not None:
            user_id, worker_id, name = by_job[r.id]
            out.append(RunWorker(r.run_index, user_id, name or f"account {user_id}", worker_id))
    return out


def _progress(parent: Job, runs: list[Job], accounts: int, min_accounts: int) -> dict[str, Any]:
    """The verification's progress from its runs: the furthest running run's phase, and how many
    runs are in."""
    done = sum(1 for r in runs if r.status == JobStatus.succeeded)
    running = [r for r in runs if r.status == JobStatus.running]
    best: dict[str, Any] = {}
    for r in running:
        p = r.progress or {}
        if not best or (p.get("step") or 0) > (best.get("step") or 0):
            best = {**p, "run_index": r.run_index}
    message = str(best.get("message") or "")
    waiting = min_accounts > 1 and accounts < min_accounts and not running and done < len(runs)
    note = f"{done} of {len(runs)} runs in"
    if min_accounts > 1:
        note += f"; runs from {accounts} of {min_accounts} worker accounts"
    if waiting:
        note += f"; waiting for worker account {accounts + 1} of {min_accounts}"
    return {
        "run_index": int(best.get("run_index") or 0),
        "runs": parent.runs,
        "step": best.get("step"),
        "steps": best.get("steps"),
        "eta_seconds": best.get("eta_seconds"),
        "message": (f"{message} ({note})" if message else note)[:500],
        "runs_done": done,
        "runs_running": len(running),
        "accounts": accounts,
        "min_accounts": min_accounts,
    }


def sync(session: Session, parent: Job, min_accounts: int, now: datetime) -> None:
    """Set the verification job's status, workers and progress from its runs. A run given up for
    good fails the job (its other runs are cancelled); the job succeeds when the site pools its
    runs (``entries.leases``), not here."""
    if parent.status in (JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled):
        return
    runs = repository.runs_of(session, parent.id)
    given_up = [r for r in runs if r.status == JobStatus.failed]
    if given_up:
        parent.status, parent.finished_at = JobStatus.failed, now
        parent.failure_reason = f"run {given_up[0].run_index}: {given_up[0].failure_reason or 'given up'}"[:2000]
        parent.log_tail = given_up[0].log_tail
        session.execute(
            update(Job)
            .where(Job.parent_id == parent.id, Job.status == JobStatus.queued)
            .values(status=JobStatus.cancelled, finished_at=now, failure_reason="another run was given up")
            .execution_options(synchronize_session=False)
        )
        session.execute(
            update(Job)
            .where(Job.parent_id == parent.id, Job.status == JobStatus.running)
            .values(cancel_requested=True)
            .execution_options(synchronize_session=False)
        )
        session.flush()
        return
    holders = _holders(runs, completed_by(session, [r.id for r in runs]))
    active = [r for r in runs if r.status in (JobStatus.running, JobStatus.succeeded)]
    parent.status = JobStatus.running if active else JobStatus.queued
    parent.attempts = sum(r.attempts for r in runs)
    leased = [r.leased_at for r in runs if r.leased_at is not None]
    parent.leased_at = min(leased) if leased else None
    parent.started_at = parent.started_at or (min(leased) if leased else None)
    beats = [r.heartbeat_at for r in runs if r.heartbeat_at is not None]
    parent.heartbeat_at = max(beats) if beats else None
    owners = sorted({r.lease_owner for r in runs if r.status == JobStatus.running and r.lease_owner})
    parent.lease_owner = ", ".join(owners)[:100] or None
    parent.progress = _progress(parent, runs, len(holders), min_accounts)
    failed_reasons = [r.failure_reason for r in runs if r.status == JobStatus.queued and r.failure_reason]
    if failed_reasons:
        parent.failure_reason = failed_reasons[-1]
    session.flush()
