"""The verification queue: leases with expiry, heartbeats with progress, uploads, completion, failure.

A lease is a random token (stored as its digest) valid until ``lease_expires_at``; heartbeats
extend it. Every state change of a leased job is a compare-and-set on (job, token, holder), and
only the worker account that leased a job may use its token. After a lease expires and another
worker takes the job, the first worker's calls get 409 and a job is completed at most once.
Who gets a job, and what an abandoned lease costs, is ``leasing``'s business.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from leaderboard.artifacts.models import EntryArtifact
from leaderboard.artifacts.service import content_type_for, store_bytes
from leaderboard.artifacts.storage import ArtifactStore
from leaderboard.db import utcnow
from leaderboard.entries import service as entries_service
from leaderboard.errors import Conflict, Forbidden, Invalid, NotFound, PayloadTooLarge
from leaderboard.jobs import leasing, repository
from leaderboard.jobs.leasing import QueuePolicy, Refused
from leaderboard.jobs.models import Job, JobStatus, LeaseOutcome, WorkerAccount
from leaderboard.jobs.schemas import JobPublic, QueuePublic
from leaderboard.revision import bump_revision
from leaderboard.settings import Settings
from leaderboard.tracks import repository as tracks_repository
from leaderboard.tracks.models import Track
from leaderboard.users.service import Principal, token_digest
from submissions.protocol import (
    ArtifactKind,
    ArtifactRef,
    Heartbeat,
    HeartbeatReply,
    JobComplete,
    JobFail,
    JobLease,
    JobState,
    LeaseRequest,
)


@dataclass(frozen=True)
class UploadQuota:
    max_bytes: int  # one artifact
    max_count: int  # distinct names per job
    max_total_bytes: int  # all of a job's uploads


def _state(job: Job) -> JobState:
    return JobState(job_id=job.id, status=job.status.value, attempts=job.attempts, failure_reason=job.failure_reason)


def _job(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    return job


def policy_of(settings: Settings) -> QueuePolicy:
    return QueuePolicy(
        lease_seconds=settings.lease_seconds,
        max_active_leases=settings.max_active_leases_per_worker,
        pause_after_abandoned=settings.pause_worker_after_abandoned,
        max_job_seconds=settings.max_job_seconds,
    )


def quota_of(settings: Settings) -> UploadQuota:
    return UploadQuota(
        max_bytes=settings.max_artifact_bytes,
        max_count=settings.max_artifacts_per_job,
        max_total_bytes=settings.max_job_artifact_bytes,
    )


def lease(session: Session, principal: Principal, req: LeaseRequest, policy: QueuePolicy) -> JobLease | Refused | None:
    """Lease the oldest job this worker's hardware can run (see ``leasing``); None when there is none."""
    return leasing.lease(session, principal, req, policy)


def heartbeat(
    session: Session, principal: Principal, job_id: int, hb: Heartbeat, policy: QueuePolicy
) -> HeartbeatReply | Refused:
    """Extend the lease and record progress; 409 when the lease was taken over or ended.

    A lease that expired but was not taken over by anyone is renewed: a worker whose heartbeats
    were held up (a short restart of the site) keeps its job. No lease outlives the track's
    maximum job duration: past it the job is given up by this worker and requeued.
    """
    job = _job(session, job_id)
    _check_holder(job, principal)
    now = utcnow()
    track = tracks_repository.by_id(session, job.track_id)
    assert track is not None
    deadline = leasing.job_deadline(job, track, policy)
    digest = token_digest(hb.lease_token)
    if deadline is not None and now >= deadline and job.lease_token_sha256 == digest:
        _end_failing(session, job, digest, LeaseOutcome.timed_out, "ran past the track's maximum job duration", now)
        return Refused(
            409,
            "conflict",
            f"job {job.id} ran past its track's maximum duration ({_seconds(track, policy)} s); it was requeued",
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
        raise Conflict(_lost_lease(job))
    session.refresh(job)
    return HeartbeatReply(lease_expires_at=expires, cancel=job.cancel_requested)


def _seconds(track: Track, policy: QueuePolicy) -> int:
    return track.max_job_seconds or policy.max_job_seconds


def _check_holder(job: Job, principal: Principal) -> None:
    """A lease token is good only in the hands of the worker account that leased it."""
    if job.status == JobStatus.running and job.lease_user_id not in (None, principal.user.id):
        raise Forbidden(f"job {job.id} is leased by another worker account; a lease token cannot be lent")


def _end_failing(session: Session, job: Job, digest: str, outcome: LeaseOutcome, reason: str, now: datetime) -> None:
    """End the current lease with a failing outcome; the job is requeued or given up."""
    values: dict[str, object] = {"lease_token_sha256": None, "lease_expires_at": None, "lease_user_id": None}
    if repository.update_if_leased(session, job.id, digest, None, values, user_id=job.lease_user_id):
        leasing.end_lease(session, digest, outcome, now)
        leasing.requeue_or_give_up(session, job, f"worker {job.lease_owner} {reason}", now)
        bump_revision(session)


def _lost_lease(job: Job) -> str:
    if job.status != JobStatus.running:
        return f"job {job.id} is {job.status.value}; this lease is no longer valid"
    return f"the lease on job {job.id} expired or was taken over by another worker"


def _check_lease(job: Job, principal: Principal, lease_token: str) -> None:
    _check_holder(job, principal)
    if not (
        job.status == JobStatus.running
        and job.lease_token_sha256 == token_digest(lease_token)
        and job.lease_expires_at is not None
        and job.lease_expires_at >= utcnow()
    ):
        raise Conflict(_lost_lease(job))


def upload_artifact(
    session: Session,
    store: ArtifactStore,
    principal: Principal,
    job_id: int,
    lease_token: str,
    *,
    name: str,
    kind: ArtifactKind,
    data: bytes,
    quota: UploadQuota,
) -> ArtifactRef:
    """Store bytes uploaded by the worker holding the lease; shown on the entry once the job completes.

    413 over the per-artifact limit or the job's quota (count of names, bytes in all)."""
    job = _job(session, job_id)
    _check_lease(job, principal, lease_token)
    if len(data) > quota.max_bytes:
        raise PayloadTooLarge(f"artifact of {len(data)} bytes; the limit is {quota.max_bytes}")
    try:
        ref_name = ArtifactRef.model_validate(
            {"name": name, "kind": kind, "sha256": "0" * 64, "size_bytes": len(data)}
        ).name
    except ValueError as exc:
        raise Invalid(
            "name", "letters, digits, '_', '.', '-' and '/', at most 200, starting with a letter or digit"
        ) from exc
    if ".." in ref_name.split("/"):
        raise Invalid("name", "'..' is not allowed in an artifact name")
    link = repository.job_upload(session, job.id, ref_name)
    count, total = repository.job_upload_totals(session, job.id, exclude_name=ref_name)
    if link is None and count + 1 > quota.max_count:
        raise PayloadTooLarge(f"job {job.id} has {count} uploads; a job may upload at most {quota.max_count}")
    if total + len(data) > quota.max_total_bytes:
        raise PayloadTooLarge(
            f"job {job.id} would hold {total + len(data)} bytes of uploads; the quota is {quota.max_total_bytes}"
        )
    art = store_bytes(session, store, data, kind)
    if link is None:
        session.add(
            EntryArtifact(
                entry_id=job.entry_id,
                job_id=job.id,
                sha256=art.sha256,
                name=ref_name,
                kind=kind,
                source="verification",
                attached=False,
            )
        )
    else:
        link.sha256, link.kind = art.sha256, kind
    session.flush()
    return ArtifactRef(
        name=ref_name, kind=kind, sha256=art.sha256, size_bytes=len(data), content_type=content_type_for(kind)
    )


def _check_refs(session: Session, job: Job, body: JobComplete) -> None:
    """Every ref names an upload of this job with its exact digest and size, and every digest the
    report's runs cite (their metrics log) is one of this job's uploads: a report cannot point
    the entry page at another entry's files."""
    uploads = repository.job_uploads(session, job.id)
    for i, ref in enumerate(body.artifacts):
        found = uploads.get(ref.name)
        if found is None:
            raise Invalid(f"artifacts.{i}.name", f"{ref.name!r} was not uploaded for job {job.id}")
        if found != (ref.sha256, ref.size_bytes):
            raise Invalid(
                f"artifacts.{i}.sha256",
                f"{ref.name!r} of job {job.id} has sha256 {found[0]} ({found[1]} bytes); the reference does not match",
            )
    digests = {sha for sha, _ in uploads.values()}
    for i, run in enumerate(body.report.runs):
        cited = run.digests.metrics_log_sha256
        if cited is not None and cited not in digests:
            raise Invalid(f"report.runs.{i}.digests.metrics_log_sha256", f"{cited} is not an upload of job {job.id}")


def complete(session: Session, store: ArtifactStore, principal: Principal, job_id: int, body: JobComplete) -> JobState:
    """Finish a job with the verifier's report (once: a second or stale completion gets 409)."""
    job = _job(session, job_id)
    _check_holder(job, principal)
    entry = entries_service.get_entry_row(session, job.entry_id)
    track = tracks_repository.by_id(session, entry.track_id)
    assert track is not None
    if body.report.track != track.slug:
        raise Invalid("report.track", f"this job verifies an entry of track {track.slug}, not {body.report.track}")
    _check_refs(session, job, body)
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
        raise Conflict(_lost_lease(job))
    leasing.end_lease(session, digest, LeaseOutcome.completed, now)
    account = session.get(WorkerAccount, principal.user.id)
    if account is not None:
        account.abandoned = 0  # "abandons repeatedly" means in a row: a completed job resets the count
    session.refresh(job)
    entries_service.apply_verification(session, job, body.report, body.artifacts, store=store)
    return _state(job)


def fail(session: Session, principal: Principal, job_id: int, body: JobFail, policy: QueuePolicy) -> JobState:
    """A worker gives up. Retryable (shutting down, hardware refused): the job goes back to the
    queue unless ``max_attempts`` distinct workers failed it, and the give-back counts towards the
    worker's pause. Not retryable (the worker found the config broken): the job fails."""
    job = _job(session, job_id)
    _check_lease(job, principal, body.lease_token)
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
        raise Conflict(_lost_lease(job))
    leasing.end_lease(session, digest, LeaseOutcome.failed, now)
    if body.retryable:
        leasing.note_abandoned(session, principal.user.id, policy, now)
        leasing.requeue_or_give_up(session, job, body.reason, now)
    else:
        session.refresh(job)
        entries_service.mark_unverifiable(session, job.entry_id)
    bump_revision(session)
    return _state(job)


def queue(session: Session, *, status: JobStatus | None = None, limit: int = 100) -> QueuePublic:
    """The visible queue: running jobs (with progress), queued, then finished ones."""
    rows = repository.queue_rows(session, None if status is None else [status], limit)
    counts = repository.status_counts(session)
    return QueuePublic(
        jobs=[entries_service.job_public(job, entry, slug) for job, entry, slug in rows],
        counts=counts,
        total=sum(counts.values()),
    )


def get_job(session: Session, job_id: int) -> JobPublic:
    job = _job(session, job_id)
    entry = entries_service.get_entry_row(session, job.entry_id)
    track = tracks_repository.by_id(session, job.track_id)
    assert track is not None
    return entries_service.job_public(job, entry, track.slug)
