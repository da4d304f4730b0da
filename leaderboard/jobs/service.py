"""The verification queue's lease checks, its settings and the worker's uploads.

A lease is a random token (stored as its digest) valid until ``lease_expires_at``; heartbeats
extend it. Every state change of a leased job is a compare-and-set on (job, token, holder), and
only the worker account that leased a job may use its token. After a lease expires and another
worker takes the job, the first worker's calls get 409 and a job is completed at most once.
Who gets a job, and what an abandoned lease costs, is ``leasing``'s business; the steps that read
or change the entry (lease, heartbeat, completion, failure) are ``entries.leases``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from contract.protocol import ArtifactKind, ArtifactRef, JobComplete, JobState
from leaderboard.artifacts.models import EntryArtifact
from leaderboard.artifacts.service import content_type_for, store_bytes
from leaderboard.artifacts.storage import ArtifactStore
from leaderboard.db import utcnow
from leaderboard.errors import Conflict, Forbidden, Invalid, NotFound, PayloadTooLarge
from leaderboard.jobs import leasing, repository
from leaderboard.jobs.leasing import QueuePolicy
from leaderboard.jobs.models import Job, JobStatus, LeaseOutcome
from leaderboard.revision import bump_revision
from leaderboard.settings import Settings
from leaderboard.tracks.models import Track
from leaderboard.users.service import Principal, token_digest


@dataclass(frozen=True)
class UploadQuota:
    max_bytes: int  # one artifact
    max_count: int  # distinct names per job
    max_total_bytes: int  # all of a job's uploads


def job_state(job: Job) -> JobState:
    return JobState(job_id=job.id, status=job.status.value, attempts=job.attempts, failure_reason=job.failure_reason)


def job_row(session: Session, job_id: int) -> Job:
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


def max_job_seconds(track: Track, policy: QueuePolicy) -> int:
    return track.max_job_seconds or policy.max_job_seconds


def check_holder(job: Job, principal: Principal) -> None:
    """A lease token is good only in the hands of the worker account that leased it."""
    if job.status == JobStatus.running and job.lease_user_id not in (None, principal.user.id):
        raise Forbidden(f"job {job.id} is leased by another worker account; a lease token cannot be lent")


def end_failing(session: Session, job: Job, digest: str, outcome: LeaseOutcome, reason: str, now: datetime) -> bool:
    """End the current lease with a failing outcome; the job is requeued or given up. True when
    this call ended it."""
    values: dict[str, object] = {"lease_token_sha256": None, "lease_expires_at": None, "lease_user_id": None}
    if not repository.update_if_leased(session, job.id, digest, None, values, user_id=job.lease_user_id):
        return False
    leasing.end_lease(session, digest, outcome, now)
    leasing.requeue_or_give_up(session, job, f"worker {job.lease_owner} {reason}", now)
    bump_revision(session)
    return True


def lost_lease(job: Job) -> str:
    if job.status != JobStatus.running:
        return f"job {job.id} is {job.status.value}; this lease is no longer valid"
    return f"the lease on job {job.id} expired or was taken over by another worker"


def check_lease(job: Job, principal: Principal, lease_token: str) -> None:
    check_holder(job, principal)
    if not (
        job.status == JobStatus.running
        and job.lease_token_sha256 == token_digest(lease_token)
        and job.lease_expires_at is not None
        and job.lease_expires_at >= utcnow()
    ):
        raise Conflict(lost_lease(job))


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
    job = job_row(session, job_id)
    check_lease(job, principal, lease_token)
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


def check_refs(session: Session, job: Job, body: JobComplete) -> None:
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
