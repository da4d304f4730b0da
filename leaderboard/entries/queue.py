"""Reading the queue for the site: each job with its entry, the verdict of its verification and its duration,
in a fixed number of queries whatever the number of jobs (the jobs with their entries and tracks,
the status counts, the verifications of the listed jobs). Cached like the board; since heartbeats
(progress) do not move the board revision, a queue's progress is at most the read cache's time to
live old (``settings.cache_ttl_seconds``, 5 s by default), refreshed in the background."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from leaderboard.cache import cached
from leaderboard.db import utcnow
from leaderboard.entries import repository
from leaderboard.entries.board import get_entry_row, job_public
from leaderboard.entries.eta import Timing, line_timings
from leaderboard.entries.models import Entry, EntryStatus, Verification
from leaderboard.errors import NotFound
from leaderboard.jobs import repository as jobs_repository
from leaderboard.jobs.models import Job, JobStatus
from leaderboard.jobs.schemas import JobPublic, QueuePublic
from leaderboard.tracks import repository as tracks_repository


def job_verdicts(session: Session, job_ids: Sequence[int]) -> dict[int, tuple[str, float | None]]:
    """The latest verification's (verdict, p-value) of each job that has one: one query. A fork's
    pass that waits for its code review reads 'awaiting_review', never 'verified', until approved."""
    if not job_ids:
        return {}
    rows = session.execute(
        select(Verification.job_id, Verification.verdict, Verification.p_value, Entry.status)
        .join(Entry, Entry.id == Verification.entry_id)
        .where(Verification.job_id.in_(list(job_ids)))
        .order_by(Verification.id)
    ).all()
    out: dict[int, tuple[str, float | None]] = {}
    for job_id, verdict, p, entry_status in rows:
        if job_id is None:
            continue
        waiting = str(verdict) == "verified" and entry_status == EntryStatus.awaiting_review
        out[int(job_id)] = ("awaiting_review" if waiting else str(verdict), p)
    return out


def with_verdict(
    public: JobPublic,
    job: Job,
    verdicts: dict[int, tuple[str, float | None]],
    timings: dict[int, Timing] | None = None,
) -> JobPublic:
    """``public`` with its verdict, p-value and (finished jobs) duration filled in, and for a
    running or queued job its phase, ETA, place in line and expected start (``eta.py``)."""
    verdict, p = verdicts.get(job.id, (None, None))
    duration = None
    if job.started_at is not None and job.finished_at is not None:
        duration = max(0.0, (job.finished_at - job.started_at).total_seconds())
    update: dict[str, object] = {"verdict": verdict, "verdict_p_value": p, "duration_seconds": duration}
    t = (timings or {}).get(job.id)
    if t is not None:
        update.update(
            phase=t.phase,
            eta_seconds=t.eta_seconds,
            eta_basis=t.basis,
            position=t.position,
            expected_start_at=t.expected_start_at,
        )
    return public.model_copy(update=update)


def queue_listing(session: Session, *, status: JobStatus | None = None, limit: int = 100) -> QueuePublic:
    """The visible queue (running, queued, then finished jobs), each with its verdict."""
    return cached(session, ("queue", *queue_key(status, limit)), lambda: _queue(session, status, limit))


def queue_key(status: JobStatus | None, limit: int) -> tuple[object, ...]:
    """The read-cache key of the queue's JSON."""
    return ("queue.json", None if status is None else status.value, limit)


def _queue(session: Session, status: JobStatus | None, limit: int) -> QueuePublic:
    rows = repository.queue_rows(session, None if status is None else [status], limit)
    counts = jobs_repository.status_counts(session)
    verdicts = job_verdicts(session, [job.id for job, _, _ in rows])
    timings = line_timings(session, utcnow())
    return QueuePublic(
        jobs=[with_verdict(job_public(job, entry, slug), job, verdicts, timings) for job, entry, slug in rows],
        counts=counts,
        total=sum(counts.values()),
    )


def entry_jobs(session: Session, jobs: Sequence[JobPublic]) -> list[JobPublic]:
    """An entry page's jobs with their verdicts and durations (one query for the verdicts)."""
    rows = {j.id: j for j in session.scalars(select(Job).where(Job.id.in_([p.id for p in jobs])))} if jobs else {}
    verdicts = job_verdicts(session, list(rows))
    active = any(j.status in (JobStatus.queued, JobStatus.running) for j in rows.values())
    timings = line_timings(session, utcnow()) if active else {}
    return [with_verdict(p, rows[p.id], verdicts, timings) if p.id in rows else p for p in jobs]


def get_job(session: Session, job_id: int) -> JobPublic:
    """One job with its entry, its verdict once done, and while it waits or runs its phase, ETA and
    place in line (``GET /api/jobs/{id}``)."""
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    entry = get_entry_row(session, job.entry_id)
    track = tracks_repository.by_id(session, job.track_id)
    assert track is not None
    active = job.status in (JobStatus.queued, JobStatus.running)
    timings = line_timings(session, utcnow()) if active else {}
    return with_verdict(job_public(job, entry, track.slug), job, job_verdicts(session, [job.id]), timings)
