"""The worker protocol's steps that read or change an entry: leasing a job (the entry's config and
claimed results go to the worker), heartbeats, completion (the report is applied to the entry) and
failure. The queue's own rules (fair leasing, abandoned leases, compare-and-set on the lease token)
are ``jobs.leasing`` and ``jobs.service``; a job that one of these steps gives up for good leaves
its pending entry in 'error'.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from contract.protocol import Heartbeat, HeartbeatReply, JobComplete, JobFail, JobLease, JobState, LeaseRequest
from contract.schema import RunConfig
from leaderboard.artifacts.storage import ArtifactStore
from leaderboard.db import utcnow
from leaderboard.entries.board import get_entry_row
from leaderboard.entries.verification import apply_verification, claimed_results, mark_unverifiable
from leaderboard.errors import Conflict, Invalid
from leaderboard.jobs import leasing, repository
from leaderboard.jobs.leasing import QueuePolicy, Refused
from leaderboard.jobs.models import Job, JobStatus, LeaseOutcome, LeaseRecord, WorkerAccount
from leaderboard.jobs.service import (
    check_holder,
    check_lease,
    check_refs,
    end_failing,
    job_row,
    job_state,
    lost_lease,
    max_job_seconds,
)
from leaderboard.revision import bump_revision
from leaderboard.tracks import repository as tracks_repository
from leaderboard.tracks.service import track_rules
from leaderboard.users.service import Principal, token_digest

LEASE_SCAN = 50


def _entry_of_given_up(session: Session, job: Job) -> None:
    """Right after this call ended a lease: a job failed for good shows its pending entry as 'error'."""
    if job.status == JobStatus.failed:
        mark_unverifiable(session, job.entry_id)


def _reap(session: Session, job: Job, policy: QueuePolicy, now: datetime) -> bool:
    """``leasing.reap_expired``, then the entry of a job it gave up."""
    reaped = leasing.reap_expired(session, job, policy, now)
    if reaped:
        _entry_of_given_up(session, job)
    return reaped


def lease_job(
    session: Session, principal: Principal, req: LeaseRequest, policy: QueuePolicy
) -> JobLease | Refused | None:
    """Lease the oldest job this worker's hardware can run; None when there is none.

    Refused 403 for a paused worker, 204 (with the reason) while it holds ``max_active_leases``.
    """
    now = utcnow()
    leasing.touch_account(session, principal, req.worker_id, now)
    for job in session.scalars(
        select(Job).where(
            Job.lease_user_id == principal.user.id, repository.leasable(now), Job.status == JobStatus.running
        )
    ).all():  # this worker's own expired leases are accounted for before it may lease again
        _reap(session, job, policy, now)
    account = session.get(WorkerAccount, principal.user.id, populate_existing=True)
    assert account is not None
    if account.paused_at is not None:
        return Refused(403, "forbidden", f"this worker is paused: {account.paused_reason}")
    if policy.max_active_leases is not None:
        held = leasing.active_leases(session, principal.user.id, now)
        if held >= policy.max_active_leases:
            # 204 like an empty queue (a restarted worker polls on until its old lease expires),
            # with the reason in a header
            return Refused(
                204,
                "lease_limit",
                f"this worker account holds {held} active lease(s), the most it may hold; "
                "complete or give back a job before leasing another",
            )
    fp = req.fingerprint
    for job in repository.lease_candidates(session, now, req.tracks, LEASE_SCAN):
        reaped = job.status != JobStatus.running or _reap(session, job, policy, now)
        if not reaped or job.status != JobStatus.queued:
            continue
        track = tracks_repository.by_id(session, job.track_id)
        assert track is not None
        if track_rules(track).allows_hardware(fp.sku, fp.device_count, fp.nodes) is not None:
            continue
        entry = get_entry_row(session, job.entry_id)
        if entry.hardware_class != fp.sku or int(entry.run_config.get("gpus_per_node", 0)) > fp.device_count:
            continue  # the track allows this node, but the submitted config asks for other hardware
        token = "lease_" + secrets.token_urlsafe(24)
        digest = token_digest(token)
        deadline = now + timedelta(seconds=max_job_seconds(track, policy))
        expires = leasing.lease_until(now, deadline, policy.lease_seconds)
        claimed = repository.try_claim(
            session,
            job.id,
            now,
            {
                "status": JobStatus.running,
                "lease_owner": req.worker_id,
                "lease_user_id": principal.user.id,
                "lease_token_sha256": digest,
                "lease_expires_at": expires,
                "leased_at": now,
                "heartbeat_at": now,
                "progress": None,
                "started_at": job.started_at or now,
            },
        )
        if not claimed:
            continue  # another worker took it between our read and our update
        session.add(LeaseRecord(job_id=job.id, user_id=principal.user.id, worker_id=req.worker_id, token_sha256=digest))
        session.refresh(job)
        bump_revision(session)
        return JobLease(
            job_id=job.id,
            lease_token=token,
            lease_expires_at=expires,
            lease_seconds=policy.lease_seconds,
            attempt=job.attempts,
            entry_id=entry.id,
            track=track_rules(track),
            run_config=RunConfig.model_validate(entry.run_config),
            runs=job.runs,
            claimed_results=claimed_results(session, entry),
        )
    return None


def heartbeat_job(
    session: Session, principal: Principal, job_id: int, hb: Heartbeat, policy: QueuePolicy
) -> HeartbeatReply | Refused:
    """Extend the lease and record progress; 409 when the lease was taken over or ended.

    A lease that expired but was not taken over by anyone is renewed: a worker whose heartbeats
    were held up (a short restart of the site) keeps its job. No lease outlives the track's
    maximum job duration: past it the job is given up by this worker and requeued.
    """
    job = job_row(session, job_id)
    check_holder(job, principal)
    now = utcnow()
    track = tracks_repository.by_id(session, job.track_id)
    assert track is not None
    deadline = leasing.job_deadline(job, track, policy)
    digest = token_digest(hb.lease_token)
    if deadline is not None and now >= deadline and job.lease_token_sha256 == digest:
        if end_failing(session, job, digest, LeaseOutcome.timed_out, "ran past the track's maximum job duration", now):
            _entry_of_given_up(session, job)
        return Refused(
            409,
            "conflict",
            f"job {job.id} ran past its track's maximum duration ({max_job_seconds(track, policy)} s); it was requeued",
        )
    expires = leasing.lease_until(now, deadline, policy.lease_seconds)
    ok = repository.update_if_leased(
        session,
        job_id,
        digest,
        None,
        {"lease_expires_at": expires, "heartbeat_at": now, "progress": hb.progress.model_dump(mode="json")},
        user_id=principal.user.id,
    )
    if not ok:
        raise Conflict(lost_lease(job))
    session.refresh(job)
    return HeartbeatReply(lease_expires_at=expires, cancel=job.cancel_requested)


def complete_job(
    session: Session, store: ArtifactStore, principal: Principal, job_id: int, body: JobComplete
) -> JobState:
    """Finish a job with the verifier's report (once: a second or stale completion gets 409)."""
    job = job_row(session, job_id)
    check_holder(job, principal)
    entry = get_entry_row(session, job.entry_id)
    track = tracks_repository.by_id(session, entry.track_id)
    assert track is not None
    if body.report.track != track.slug:
        raise Invalid("report.track", f"this job verifies an entry of track {track.slug}, not {body.report.track}")
    check_refs(session, job, body)
    now = utcnow()
    digest = token_digest(body.lease_token)
    ok = repository.update_if_leased(
        session,
        job_id,
        digest,
        now,
        {"status": JobStatus.succeeded, "finished_at": now, "lease_expires_at": None, "lease_token_sha256": None},
        user_id=principal.user.id,
    )
    if not ok:
        raise Conflict(lost_lease(job))
    leasing.end_lease(session, digest, LeaseOutcome.completed, now)
    account = session.get(WorkerAccount, principal.user.id)
    if account is not None:
        account.abandoned = 0  # "abandons repeatedly" means in a row: a completed job resets the count
    session.refresh(job)
    apply_verification(session, job, body.report, body.artifacts, store=store)
    return job_state(job)


def fail_job(session: Session, principal: Principal, job_id: int, body: JobFail, policy: QueuePolicy) -> JobState:
    """A worker gives up. Retryable (shutting down, hardware refused): the job goes back to the
    queue unless ``max_attempts`` distinct workers failed it, and the give-back counts towards the
    worker's pause. Not retryable (the worker found the config broken): the job fails."""
    job = job_row(session, job_id)
    check_lease(job, principal, body.lease_token)
    now = utcnow()
    digest = token_digest(body.lease_token)
    values: dict[str, object] = {
        "lease_token_sha256": None,
        "lease_expires_at": None,
        "failure_reason": body.reason,
        "log_tail": body.log_tail or None,
    }
    if not body.retryable:
        values.update(status=JobStatus.failed, finished_at=now)
    if not repository.update_if_leased(session, job_id, digest, now, values, user_id=principal.user.id):
        raise Conflict(lost_lease(job))
    leasing.end_lease(session, digest, LeaseOutcome.failed, now)
    if body.retryable:
        leasing.note_abandoned(session, principal.user.id, policy, now)
        leasing.requeue_or_give_up(session, job, body.reason, now)
    else:
        session.refresh(job)
    _entry_of_given_up(session, job)
    bump_revision(session)
    return job_state(job)
