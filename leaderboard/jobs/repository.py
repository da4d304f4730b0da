"""Queries on jobs and the artifacts they uploaded."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from leaderboard.artifacts.models import Artifact, EntryArtifact
from leaderboard.jobs.models import Job, JobStatus
from leaderboard.tracks.models import Track

ACTIVE = (JobStatus.queued, JobStatus.running)
IS_VERIFICATION = Job.run_index.is_(None)  # the job the queue shows; its runs are leased
IS_RUN = Job.run_index.is_not(None)


def leasable(now: datetime):  # type: ignore[no-untyped-def]
    """Jobs a worker may lease now: queued ones, and running ones whose lease has expired."""
    return or_(
        Job.status == JobStatus.queued,
        and_(Job.status == JobStatus.running, Job.lease_expires_at < now),
    )


def lease_candidates(session: Session, now: datetime, track_slugs: Sequence[str] | None, limit: int) -> Iterator[Job]:
    """Leasable run jobs, oldest first, one at a time (at most ``limit``).

    On PostgreSQL each is read ``FOR UPDATE SKIP LOCKED``: a job another worker is looking at is
    skipped, not waited for, and only the rows actually examined are locked.
    """
    postgres = session.get_bind().dialect.name == "postgresql"
    after = 0
    for _ in range(limit):
        stmt = select(Job).where(leasable(now), IS_RUN, Job.id > after).order_by(Job.id).limit(1)
        if track_slugs is not None:
            stmt = stmt.join(Track, Track.id == Job.track_id).where(Track.slug.in_(list(track_slugs)))
        if postgres:
            stmt = stmt.with_for_update(skip_locked=True, of=Job)
        job = session.scalar(stmt.execution_options(populate_existing=True))
        if job is None:
            return
        after = job.id
        yield job


def try_claim(session: Session, job_id: int, now: datetime, values: dict[str, object]) -> bool:
    """Atomically take a job that is still leasable: exactly one caller gets rowcount 1."""
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, leasable(now))
        .values(attempts=Job.attempts + 1, **values)
        .execution_options(synchronize_session=False)
    )
    return getattr(result, "rowcount", 0) == 1


def update_if_leased(
    session: Session,
    job_id: int,
    token_sha256: str,
    now: datetime | None,
    values: dict[str, object],
    *,
    user_id: int | None,
) -> bool:
    """Update a job only while ``token`` holds its lease for worker account ``user_id``
    (compare-and-set); with ``now``, only while the lease is unexpired."""
    conditions = [Job.id == job_id, Job.status == JobStatus.running, Job.lease_token_sha256 == token_sha256]
    if user_id is not None:
        conditions.append(Job.lease_user_id == user_id)
    if now is not None:
        conditions.append(Job.lease_expires_at >= now)
    result = session.execute(
        update(Job).where(*conditions).values(**values).execution_options(synchronize_session=False)
    )
    return getattr(result, "rowcount", 0) == 1


def jobs_of_entry(session: Session, entry_id: int) -> list[Job]:
    """The entry's verification jobs, newest first."""
    return list(session.scalars(select(Job).where(Job.entry_id == entry_id, IS_VERIFICATION).order_by(Job.id.desc())))


def first_job_of_entry(session: Session, entry_id: int) -> Job | None:
    return session.scalar(select(Job).where(Job.entry_id == entry_id, IS_VERIFICATION).order_by(Job.id).limit(1))


def active_job_of_entry(session: Session, entry_id: int) -> Job | None:
    return session.scalar(select(Job).where(Job.entry_id == entry_id, IS_VERIFICATION, Job.status.in_(ACTIVE)).limit(1))


def runs_of(session: Session, job_id: int) -> list[Job]:
    """A verification job's run jobs, by run index."""
    return list(session.scalars(select(Job).where(Job.parent_id == job_id).order_by(Job.run_index)))


def entry_artifacts(session: Session, entry_id: int) -> list[tuple[EntryArtifact, Artifact]]:
    rows = session.execute(
        select(EntryArtifact, Artifact)
        .join(Artifact, Artifact.sha256 == EntryArtifact.sha256)
        .where(EntryArtifact.entry_id == entry_id, EntryArtifact.attached.is_(True))
        .order_by(EntryArtifact.id)
    ).all()
    return [(r[0], r[1]) for r in rows]


def job_upload(session: Session, job_id: int, name: str) -> EntryArtifact | None:
    return session.scalar(select(EntryArtifact).where(EntryArtifact.job_id == job_id, EntryArtifact.name == name))


def job_uploads(session: Session, job_id: int) -> dict[str, tuple[str, int]]:
    """A job's uploads: name -> (sha256, size in bytes)."""
    rows = session.execute(
        select(EntryArtifact.name, Artifact.sha256, Artifact.size_bytes)
        .join(Artifact, Artifact.sha256 == EntryArtifact.sha256)
        .where(EntryArtifact.job_id == job_id)
    ).all()
    return {str(name): (str(sha), int(size)) for name, sha, size in rows}


def job_upload_totals(session: Session, job_id: int, *, exclude_name: str) -> tuple[int, int]:
    """How many uploads a job holds and their bytes, without the one named ``exclude_name``."""
    row = session.execute(
        select(func.count(EntryArtifact.id), func.coalesce(func.sum(Artifact.size_bytes), 0))
        .join(Artifact, Artifact.sha256 == EntryArtifact.sha256)
        .where(EntryArtifact.job_id == job_id, EntryArtifact.name != exclude_name)
    ).one()
    return int(row[0]), int(row[1])


def attach_job_artifacts(session: Session, job_id: int, digests: Sequence[str]) -> None:
    if digests:
        session.execute(
            update(EntryArtifact)
            .where(EntryArtifact.job_id == job_id, EntryArtifact.sha256.in_(list(digests)))
            .values(attached=True)
            .execution_options(synchronize_session=False)
        )


def status_counts(session: Session) -> dict[str, int]:
    """Verification jobs by status."""
    rows = session.execute(select(Job.status, func.count(Job.id)).where(IS_VERIFICATION).group_by(Job.status)).all()
    counts = {s.value: 0 for s in JobStatus}
    for status, n in rows:
        counts[JobStatus(status).value] = int(n)
    return counts
