"""Owner and admin actions on an entry: re-verification and retraction (audited)."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from leaderboard.audit.service import record
from leaderboard.db import utcnow
from leaderboard.entries.board import entry_public, get_entry_row, job_public
from leaderboard.entries.models import Entry, EntryStatus
from leaderboard.entries.records import queue_job
from leaderboard.entries.schemas import (
    EntryPublic,
)
from leaderboard.entries.standing import recompute_ranks
from leaderboard.errors import Conflict, Forbidden
from leaderboard.jobs import repository as jobs_repository
from leaderboard.jobs.models import Job, JobStatus
from leaderboard.jobs.schemas import JobPublic
from leaderboard.revision import bump_revision
from leaderboard.tracks import repository as tracks_repository
from leaderboard.users.models import Role, User


def can_request_reverification(user: User | None, entry: EntryPublic | Entry, owner_id: int | None = None) -> bool:
    """Whether ``user`` may ask for a re-verification of the entry (its owner, or an admin)."""
    if user is None:
        return False
    status = entry.status
    if status in (EntryStatus.reported, EntryStatus.retracted):
        return False
    if user.role == Role.admin:
        return True
    oid = entry.owner_id if isinstance(entry, Entry) else owner_id
    return user.role == Role.submitter and oid is not None and oid == user.id


def request_reverification(
    session: Session, user: User, entry_id: int, *, reason: str = "", max_attempts: int = 3
) -> JobPublic:
    """Queue a new verification job for an entry (owner or admin; audited)."""
    entry = get_entry_row(session, entry_id)
    if entry.status == EntryStatus.reported:
        raise Conflict("imported history is reported, not verifiable here: it has no run config to reproduce")
    if entry.status == EntryStatus.retracted:
        raise Conflict("this entry was retracted")
    if user.role != Role.admin and entry.owner_id != user.id:
        raise Forbidden("only the entry's owner or an admin can request a re-verification")
    if jobs_repository.active_job_of_entry(session, entry.id) is not None:
        raise Conflict("a verification of this entry is already queued or running")
    track = tracks_repository.by_id(session, entry.track_id)
    assert track is not None
    job = queue_job(session, entry, track, user, "reverify", max_attempts)
    record(session, user, "entry.reverify", "entry", entry.id, job_id=job.id, reason=reason)
    bump_revision(session)
    return job_public(job, entry, track.slug)


def retract(session: Session, admin: User, entry_id: int, reason: str) -> EntryPublic:
    """Withdraw an entry from the board (admin; audited); its queued jobs are cancelled."""
    if admin.role != Role.admin:
        raise Forbidden("only an admin can retract an entry")
    entry = get_entry_row(session, entry_id)
    if entry.status == EntryStatus.retracted:
        raise Conflict("this entry is retracted already")
    before = entry.status.value
    entry.status = EntryStatus.retracted
    entry.retracted_reason = reason
    entry.updated_at = utcnow()
    session.execute(
        update(Job)
        .where(Job.entry_id == entry.id, Job.status == JobStatus.queued)
        .values(status=JobStatus.cancelled, finished_at=utcnow(), failure_reason="entry retracted")
    )
    session.execute(
        update(Job).where(Job.entry_id == entry.id, Job.status == JobStatus.running).values(cancel_requested=True)
    )
    session.flush()
    recompute_ranks(session, entry.track_id)
    record(session, admin, "entry.retract", "entry", entry.id, reason=reason, status_before=before)
    bump_revision(session)
    track = tracks_repository.by_id(session, entry.track_id)
    assert track is not None
    return entry_public(entry, track)
