"""The worker protocol's steps that read or change an entry: leasing one run of a verification job
(the entry's config, the claimed results and the run's seed go to the worker), heartbeats,
completion (the run's report is kept; when all k runs are in, ``entries.pooling`` applies them to
the entry as one verification) and failure. The queue's own rules (fair leasing, abandoned
leases, compare-and-set on the lease token, who may take which run) are ``jobs.leasing``,
``jobs.runs`` and ``jobs.service``.

No single account can end an entry: a failure, retryable or not, or a run the worker reports as
an error, sends the run back to the queue and counts against that worker; a run is given up,
and its pending entry shows 'error', only after ``max_attempts`` distinct accounts failed it.
A failure a worker chose (a fail call) counts toward its pause; an error report (the config
itself would not run) does not, so broken submissions cannot pause honest workers.
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
from leaderboard.entries.pooling import pool_runs
from leaderboard.entries.verification import claimed_results, mark_unverifiable
from leaderboard.errors import Conflict, Invalid
from leaderboard.jobs import leasing, repository, runs
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


def _min_accounts(session: Session, job: Job) -> int:
    track = tracks_repository.by_id(session, job.track_id)
    return 1 if track is None else max(1, track.min_worker_accounts)


def _after_run_changed(session: Session, run: Job, now: datetime) -> None:
    """Right after this call changed a run job: its verification job follows, and a verification
    job failed for good shows its pending entry as 'error'."""
    if run.parent_id is None:
        return
    parent = runs.parent_of(session, run)
    runs.sync(session, parent, _min_accounts(session, parent), now)
    if parent.status == JobStatus.failed:
        mark_unverifiable(session, parent.entry_id)


def _reap(session: Session, job: Job, policy: QueuePolicy, now: datetime) -> bool:
    """``leasing.reap_expired``, then the verification job of the run it reaped."""
    reaped = leasing.reap_expired(session, job, policy, now)
    if reaped:
        _after_run_changed(session, job, now)
    return reaped


def lease_job(
    session: Session, principal: Principal, req: LeaseRequest, policy: QueuePolicy
) -> JobLease | Refused | None:
    """Lease the oldest run this worker's hardware can run and its account may take (``jobs.runs``);
    None when there is none.

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
        if runs.refusal(session, job, principal.user.id, max(1, track.min_worker_accounts)) is not None:
            continue
        parent = runs.parent_of(session, job)
        if parent.status not in (JobStatus.queued, JobStatus.running) or parent.cancel_requested:
            continue
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
        runs.sync(session, parent, max(1, track.min_worker_accounts), now)
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
            runs=parent.runs,
            claimed_results=claimed_results(session, entry),
            run_index=job.run_index,
            seed=job.seed,
            verification_job_id=parent.id,
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
            _after_run_changed(session, job, now)
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
    cancel = job.cancel_requested
    if job.parent_id is not None:
        parent = runs.parent_of(session, job)
        runs.sync(session, parent, max(1, track.min_worker_accounts), now)
        cancel = cancel or parent.cancel_requested or parent.status != JobStatus.running
    return HeartbeatReply(lease_expires_at=expires, cancel=cancel)


def _check_run_report(job: Job, body: JobComplete) -> None:
    """A run job's report is a report of that one run, with the seed the site picked."""
    if job.run_index is None:
        raise Conflict(f"job {job.id} is a verification job; workers lease and complete its runs")
    report = body.report
    if len(report.runs) > 1:
        raise Invalid(
            "report.runs", f"job {job.id} is one run (run {job.run_index}); the report has {len(report.runs)}"
        )
    if report.runs and report.runs[0].seed != job.seed:
        raise Invalid(
            "report.runs.0.seed",
            f"run {job.run_index} of job {job.parent_id} is to use the seed the site picked ({job.seed}), "
            f"not {report.runs[0].seed}",
        )


def complete_job(
    session: Session,
    store: ArtifactStore,
    principal: Principal,
    job_id: int,
    body: JobComplete,
) -> JobState:
    """Finish a run with the verifier's report of it (once: a second or stale completion gets 409).

    A report without its run (the verifier's error) sends the run back to the queue for another
    account; the k-th run in pools the verification (``entries.pooling``)."""
    job = job_row(session, job_id)
    check_holder(job, principal)
    entry = get_entry_row(session, job.entry_id)
    track = tracks_repository.by_id(session, entry.track_id)
    assert track is not None
    if body.report.track != track.slug:
        raise Invalid("report.track", f"this job verifies an entry of track {track.slug}, not {body.report.track}")
    _check_run_report(job, body)
    check_refs(session, job, body)
    now = utcnow()
    digest = token_digest(body.lease_token)
    if body.report.verdict.value == "error" or not body.report.runs:
        reason = "; ".join(body.report.reasons)[:1500] or "the verifier reported an error"
        values: dict[str, object] = {"lease_token_sha256": None, "lease_expires_at": None}
        values.update(failure_reason=f"worker {job.lease_owner}: {reason}", log_tail=body.report.log_tail)
        if not repository.update_if_leased(session, job_id, digest, now, values, user_id=principal.user.id):
            raise Conflict(lost_lease(job))
        leasing.end_lease(session, digest, LeaseOutcome.errored, now)
        leasing.requeue_or_give_up(session, job, f"worker {job.lease_owner}: {reason}", now)
        _after_run_changed(session, job, now)
        bump_revision(session)
        return job_state(job)
    ok = repository.update_if_leased(
        session,
        job_id,
        digest,
        now,
        {
            "status": JobStatus.succeeded,
            "finished_at": now,
            "lease_expires_at": None,
            "lease_token_sha256": None,
            "report": {
                "report": body.report.model_dump(mode="json"),
                "artifacts": [a.model_dump(mode="json") for a in body.artifacts],
            },
        },
        user_id=principal.user.id,
    )
    if not ok:
        raise Conflict(lost_lease(job))
    leasing.end_lease(session, digest, LeaseOutcome.completed, now)
    account = session.get(WorkerAccount, principal.user.id)
    if account is not None:
        account.abandoned = 0  # "fails repeatedly" means in a row: a completed run resets the count
    session.refresh(job)
    parent = runs.parent_of(session, job)
    runs.sync(session, parent, max(1, track.min_worker_accounts), now)
    siblings = repository.runs_of(session, parent.id)
    if parent.status == JobStatus.running and all(r.status == JobStatus.succeeded for r in siblings):
        pool_runs(session, parent, siblings, store=store)
    bump_revision(session)
    return job_state(job)


def fail_job(session: Session, principal: Principal, job_id: int, body: JobFail, policy: QueuePolicy) -> JobState:
    """A worker gives a run up, retryable or not: the run goes back to the queue unless
    ``max_attempts`` distinct accounts failed it, and the failure counts toward the worker's pause
    (a worker's word that a config is broken is one account's word)."""
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
    if not repository.update_if_leased(session, job_id, digest, now, values, user_id=principal.user.id):
        raise Conflict(lost_lease(job))
    leasing.end_lease(session, digest, LeaseOutcome.failed if body.retryable else LeaseOutcome.errored, now)
    leasing.note_failure(session, principal.user.id, policy, now)
    leasing.requeue_or_give_up(session, job, f"worker {job.lease_owner}: {body.reason}", now)
    _after_run_changed(session, job, now)
    bump_revision(session)
    return job_state(job)
