"""Owner and admin actions on entries: re-verification, code review approval, retraction, and an
admin's edit of a track, which re-reads its entries under the new rules (all audited).

Re-verification follows docs/RULES.md: an owner gets at most ``track.max_verifications`` counted
verifications (every run of each is pooled, ``pool.py``); an admin may always ask again (the runs
still pool, and alpha still shrinks with each look). GPU runs count against the requester's weekly
quota (``track.weekly_gpu_runs``); admins are exempt.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from contract.tracks import TrackRules
from leaderboard.audit.service import record
from leaderboard.db import utcnow
from leaderboard.entries import repository
from leaderboard.entries.board import entry_public, get_entry_row, job_public
from leaderboard.entries.models import Entry, EntryStatus
from leaderboard.entries.records import queue_job
from leaderboard.entries.review import approval_refusal, current_fork_diff
from leaderboard.entries.schemas import (
    EntryPublic,
)
from leaderboard.entries.standing import recompute_ranks
from leaderboard.entries.verification import reevaluate_track
from leaderboard.errors import Conflict, Forbidden, Invalid, RateLimited
from leaderboard.jobs import repository as jobs_repository
from leaderboard.jobs.models import Job, JobStatus
from leaderboard.jobs.schemas import JobPublic
from leaderboard.revision import bump_revision
from leaderboard.tracks import repository as tracks_repository
from leaderboard.tracks.models import SITE_SETTINGS_FIELDS, Track
from leaderboard.tracks.schemas import RULE_FIELDS, TrackPublic, TrackUpdate
from leaderboard.tracks.service import get_track_row
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


def counted_verifications(entry: Entry) -> int:
    """Verifications whose runs are in the entry's pool (rejected and error reports count nothing)."""
    ids = (entry.pool or {}).get("counted_verification_ids", [])
    return len(ids) if isinstance(ids, list) else 0


def check_gpu_quota(session: Session, user: User, track: Track) -> None:
    """429 when a verification of ``track`` would pass ``user``'s weekly GPU-run quota (admins exempt)."""
    quota = track.weekly_gpu_runs
    if quota is None or user.role == Role.admin or "cpu" in track.hardware_classes:
        return
    used = repository.verified_runs_since(session, user.id, utcnow() - timedelta(days=7))
    if used + track.min_runs > quota:
        raise RateLimited(
            f"a verification on track {track.slug} needs {track.min_runs} GPU runs; you asked for {used} in the "
            f"last 7 days and the track allows {quota} per user per week",
            headers={"Retry-After": str(24 * 3600)},
        )


def request_reverification(
    session: Session, user: User, entry_id: int, *, reason: str = "", max_attempts: int = 3
) -> JobPublic:
    """Queue a new verification job for an entry (owner or admin; audited)."""
    entry = get_entry_row(session, entry_id)
    track = check_reverification(session, user, entry)
    counted = counted_verifications(entry)
    job = queue_job(session, entry, track, user, "reverify", max_attempts)
    record(session, user, "entry.reverify", "entry", entry.id, job_id=job.id, reason=reason, counted_before=counted)
    bump_revision(session)
    return job_public(job, entry, track.slug)


def check_reverification(session: Session, user: User, entry: Entry) -> Track:
    """The entry's track when ``user`` may ask for a re-verification now; else the refusal
    (409 reported, retracted, already queued or over the owner's cap; 403 not the owner; 429 quota)."""
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
    counted = counted_verifications(entry)
    if user.role != Role.admin and counted >= track.max_verifications:
        raise Conflict(
            f"this entry has {counted} counted verification(s), the most an owner may ask for on track "
            f"{track.slug} ({track.max_verifications}); every run is pooled and every verdict is shown "
            "(docs/RULES.md); an admin may still re-verify"
        )
    check_gpu_quota(session, user, track)
    return track


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


def approve(
    session: Session, admin: User, entry_id: int, note: str = "", diff_sha256: str | None = None
) -> EntryPublic:
    """An admin approves a verified fork's code (``fork_review: required``): it is ranked (audited,
    with the sha256 of the diff approved). 409 with the reason when ``review.approval_refusal``
    refuses it (no diff, a cut diff, not the diff the admin read, ...)."""
    if admin.role != Role.admin:
        raise Forbidden("only an admin can approve an entry's code")
    entry = get_entry_row(session, entry_id)
    track = tracks_repository.by_id(session, entry.track_id)
    assert track is not None
    refusal = approval_refusal(session, entry, track, diff_sha256)
    if refusal is not None:
        raise Conflict(refusal)
    diff = current_fork_diff(session, entry)
    assert diff is not None
    entry.review_status = "approved"
    entry.reviewed_by_id = admin.id
    entry.reviewed_at = utcnow()
    entry.status = EntryStatus.verified
    entry.updated_at = utcnow()
    session.flush()
    recompute_ranks(session, entry.track_id)
    record(
        session,
        admin,
        "entry.approve",
        "entry",
        entry.id,
        note=note,
        commit=entry.commit,
        fork_diff_sha256=diff.sha256,
        base_commit=diff.base_commit,
        files_changed=diff.files_changed,
        flags=list(diff.flags),
    )
    bump_revision(session)
    return entry_public(entry, track)


def edit_track(session: Session, actor: User, slug: str, data: TrackUpdate) -> TrackPublic:
    """An admin's edit of a track, validated as a whole against ``TrackRules`` and audited.

    A change of a rule (``RULE_FIELDS``) re-reads every verified entry of the track under the new
    rules (docs/RULES.md): statuses, figures and ranks follow, and each change is audited."""
    track = get_track_row(session, slug)
    changes = data.model_dump(exclude_unset=True)
    rule_changes = {k: v for k, v in changes.items() if k not in SITE_SETTINGS_FIELDS}
    merged = {**track.rules_dict(), **rule_changes}
    try:
        TrackRules.model_validate(merged)
    except ValueError as exc:
        raise Invalid(next(iter(rule_changes), "track"), str(exc)) from exc
    current = {**track.rules_dict(), **track.site_settings()}
    before = {k: current[k] for k in changes}
    for key, value in changes.items():
        setattr(track, key, value)
    track.updated_at = utcnow()
    session.flush()
    record(session, actor, "track.update", "track", slug, before=before, after=changes)
    if RULE_FIELDS & {k for k in changes if before[k] != changes[k]}:
        reevaluated = reevaluate_track(session, track)
        record(session, actor, "track.reevaluate", "track", slug, fields=sorted(changes), entries=reevaluated)
    bump_revision(session)
    return TrackPublic.model_validate(track)
