"""The verification queue: leases with expiry, heartbeats with progress, uploads, completion, failure.

A lease is a random token (stored as its digest) valid until ``lease_expires_at``; heartbeats
extend it. Every state change of a leased job is a compare-and-set on (job, token, unexpired),
so after a lease expires and another worker takes the job, the first worker's calls get 409
and a job is completed at most once.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy.orm import Session

from leaderboard.artifacts.models import EntryArtifact
from leaderboard.artifacts.service import content_type_for, store_bytes
from leaderboard.artifacts.storage import ArtifactStore
from leaderboard.db import utcnow
from leaderboard.entries import service as entries_service
from leaderboard.entries.models import Entry, Submission
from leaderboard.errors import Conflict, Invalid, NotFound, PayloadTooLarge
from leaderboard.jobs import repository
from leaderboard.jobs.models import Job, JobStatus
from leaderboard.jobs.schemas import JobPublic, QueuePublic
from leaderboard.revision import bump_revision
from leaderboard.tracks import repository as tracks_repository
from leaderboard.tracks.service import track_rules
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
from submissions.schema import RunConfig, RunResult

LEASE_SCAN = 50


def _state(job: Job) -> JobState:
    return JobState(job_id=job.id, status=job.status.value, attempts=job.attempts, failure_reason=job.failure_reason)


def _job(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    return job


def _claimed_results(session: Session, entry: Entry) -> list[RunResult]:
    if entry.submission_id is None:
        return []
    sub = session.get(Submission, entry.submission_id)
    if sub is None:
        return []
    return [RunResult.model_validate(r) for r in sub.body.get("claimed_results", [])]


def lease(session: Session, principal: Principal, req: LeaseRequest, *, lease_seconds: int) -> JobLease | None:
    """Lease the oldest job this worker's hardware can run; None when there is none."""
    now = utcnow()
    fp = req.fingerprint
    for job in repository.lease_candidates(session, now, req.tracks, LEASE_SCAN):
        track = tracks_repository.by_id(session, job.track_id)
        assert track is not None
        if track_rules(track).allows_hardware(fp.sku, fp.device_count, fp.nodes) is not None:
            continue
        if job.status == JobStatus.running and job.attempts >= job.max_attempts:
            _give_up_expired(session, job)
            continue
        entry = entries_service.get_entry_row(session, job.entry_id)
        if entry.hardware_class != fp.sku or int(entry.run_config.get("gpus_per_node", 0)) > fp.device_count:
            continue  # the track allows this node, but the submitted config asks for other hardware
        token = "lease_" + secrets.token_urlsafe(24)
        expires = now + timedelta(seconds=lease_seconds)
        claimed = repository.try_claim(
            session,
            job.id,
            now,
            {
                "status": JobStatus.running,
                "lease_owner": req.worker_id,
                "lease_user_id": principal.user.id,
                "lease_token_sha256": token_digest(token),
                "lease_expires_at": expires,
                "heartbeat_at": now,
                "progress": None,
                "started_at": job.started_at or now,
            },
        )
        if not claimed:
            continue  # another worker took it between our read and our update
        session.refresh(job)
        bump_revision(session)
        return JobLease(
            job_id=job.id,
            lease_token=token,
            lease_expires_at=expires,
            lease_seconds=lease_seconds,
            attempt=job.attempts,
            entry_id=entry.id,
            track=track_rules(track),
            run_config=RunConfig.model_validate(entry.run_config),
            runs=job.runs,
            claimed_results=_claimed_results(session, entry),
        )
    return None


def _give_up_expired(session: Session, job: Job) -> None:
    """An expired lease on a job that used all its attempts: the job fails for good."""
    reason = f"the lease expired on attempt {job.attempts} of {job.max_attempts} (worker {job.lease_owner})"
    done = repository.try_claim(
        session,
        job.id,
        utcnow(),
        {"status": JobStatus.failed, "failure_reason": reason, "finished_at": utcnow(), "lease_token_sha256": None},
    )
    if done:
        session.refresh(job)
        entries_service.mark_unverifiable(session, job.entry_id)
        bump_revision(session)


def heartbeat(session: Session, job_id: int, hb: Heartbeat, *, lease_seconds: int) -> HeartbeatReply:
    """Extend the lease and record progress; 409 when the lease expired or was taken over."""
    job = _job(session, job_id)
    now = utcnow()
    expires = now + timedelta(seconds=lease_seconds)
    ok = repository.update_if_leased(
        session,
        job_id,
        token_digest(hb.lease_token),
        now,
        {"lease_expires_at": expires, "heartbeat_at": now, "progress": hb.progress.model_dump(mode="json")},
    )
    if not ok:
        raise Conflict(_lost_lease(job))
    session.refresh(job)
    return HeartbeatReply(lease_expires_at=expires, cancel=job.cancel_requested)


def _lost_lease(job: Job) -> str:
    if job.status != JobStatus.running:
        return f"job {job.id} is {job.status.value}; this lease is no longer valid"
    return f"the lease on job {job.id} expired or was taken over by another worker"


def _check_lease(session: Session, job: Job, lease_token: str) -> None:
    now = utcnow()
    if not (
        job.status == JobStatus.running
        and job.lease_token_sha256 == token_digest(lease_token)
        and job.lease_expires_at is not None
        and job.lease_expires_at >= now
    ):
        raise Conflict(_lost_lease(job))


def upload_artifact(
    session: Session,
    store: ArtifactStore,
    job_id: int,
    lease_token: str,
    *,
    name: str,
    kind: ArtifactKind,
    data: bytes,
    max_bytes: int,
) -> ArtifactRef:
    """Store bytes uploaded by the worker holding the lease; shown on the entry once the job completes."""
    job = _job(session, job_id)
    _check_lease(session, job, lease_token)
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"artifact of {len(data)} bytes; the limit is {max_bytes}")
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
    art = store_bytes(session, store, data, kind)
    link = repository.job_upload(session, job.id, ref_name)
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


def complete(session: Session, store: ArtifactStore, job_id: int, body: JobComplete) -> JobState:
    """Finish a job with the verifier's report (once: a second or stale completion gets 409)."""
    job = _job(session, job_id)
    entry = entries_service.get_entry_row(session, job.entry_id)
    track = tracks_repository.by_id(session, entry.track_id)
    assert track is not None
    if body.report.track != track.slug:
        raise Invalid("report.track", f"this job verifies an entry of track {track.slug}, not {body.report.track}")
    for i, ref in enumerate(body.artifacts):
        if repository.job_upload(session, job.id, ref.name) is None:
            raise Invalid(f"artifacts.{i}.name", f"{ref.name!r} was not uploaded for job {job.id}")
    now = utcnow()
    ok = repository.update_if_leased(
        session,
        job_id,
        token_digest(body.lease_token),
        now,
        {"status": JobStatus.succeeded, "finished_at": now, "lease_expires_at": None, "lease_token_sha256": None},
    )
    if not ok:
        raise Conflict(_lost_lease(job))
    session.refresh(job)
    entries_service.apply_verification(session, job, body.report, body.artifacts, store=store)
    return _state(job)


def fail(session: Session, job_id: int, body: JobFail) -> JobState:
    """A worker gives up: a retryable failure requeues the job while attempts remain."""
    job = _job(session, job_id)
    _check_lease(session, job, body.lease_token)
    requeue = body.retryable and job.attempts < job.max_attempts
    now = utcnow()
    values: dict[str, object] = {
        "lease_token_sha256": None,
        "lease_expires_at": None,
        "failure_reason": body.reason,
        "log_tail": body.log_tail or None,
    }
    if requeue:
        values.update(status=JobStatus.queued, lease_owner=None)
    else:
        values.update(status=JobStatus.failed, finished_at=now)
    if not repository.update_if_leased(session, job_id, token_digest(body.lease_token), now, values):
        raise Conflict(_lost_lease(job))
    session.refresh(job)
    if not requeue:
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
