"""Queries on entries, runs, submissions and verifications."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, String, case, cast, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, defer

from leaderboard.db import utcnow
from leaderboard.entries.models import Entry, EntryStatus, Run, RunKind, Submission, Verification
from leaderboard.jobs.models import Job, JobStatus
from leaderboard.jobs.repository import IS_VERIFICATION
from leaderboard.tracks.models import Track

RANKED = (EntryStatus.verified, EntryStatus.reported)


def board_filter(
    track_id: int, status: str, hardware: str | None, rules_version: str | None, search: str | None = None
) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [Entry.track_id == track_id]
    if search and search.strip():
        pattern = "%" + search.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        conditions.append(
            func.lower(Entry.title).like(pattern, escape="\\")
            | func.lower(cast(Entry.contributors, String)).like(pattern, escape="\\")
        )
    if status == "ranked":
        conditions.append(Entry.status.in_(RANKED))
    elif status != "all":
        conditions.append(Entry.status == EntryStatus(status))
    if hardware:
        conditions.append(Entry.hardware_class == hardware)
    if rules_version:
        conditions.append(Entry.rules_version == rules_version)
    return conditions


def board_page(
    session: Session, conditions: Sequence[ColumnElement[bool]], sort: str, limit: int, offset: int
) -> list[Entry]:
    """Entries in board order: verified first, then reported, then the rest; by rank, then newest."""
    section = case((Entry.status == EntryStatus.verified, 0), (Entry.status == EntryStatus.reported, 1), else_=2)
    if sort in ("time", "cost"):
        rank_col = Entry.rank_time if sort == "time" else Entry.rank_cost
        order = [section, Entry.rules_version, rank_col.is_(None), rank_col, Entry.id.desc()]
    else:
        col, descending = _SORT_COLUMNS[sort]
        order = [section, col.is_(None), col.desc() if descending else col, Entry.id.desc()]
    stmt = select(Entry).where(*conditions).order_by(*order).limit(limit).offset(offset)
    return list(session.scalars(stmt))


# the other sorts of a board: column, and whether high values come first
_SORT_COLUMNS: dict[str, tuple[Any, bool]] = {
    "core": (Entry.core_mean, True),
    "date": (Entry.record_date, True),
    "val_bpb": (Entry.val_bpb, False),
    "p_value": (Entry.p_value, False),
}


def board_count(session: Session, conditions: Sequence[ColumnElement[bool]]) -> int:
    return int(session.scalar(select(func.count(Entry.id)).where(*conditions)) or 0)


def distinct_values(session: Session, track_id: int, column: str) -> list[str]:
    col = Entry.hardware_class if column == "hardware" else Entry.rules_version
    return sorted(str(v) for v in session.scalars(select(col).where(Entry.track_id == track_id).distinct()))


def ranking_inputs(session: Session, track_id: int) -> list[Entry]:
    """Entries whose rank may change: ranked statuses, and any that still carry a rank."""
    return list(
        session.scalars(
            select(Entry).where(
                Entry.track_id == track_id,
                Entry.status.in_(RANKED) | Entry.rank_time.is_not(None) | Entry.rank_cost.is_not(None),
            )
        )
    )


def runs_of(session: Session, entry_id: int) -> list[Run]:
    return list(session.scalars(select(Run).where(Run.entry_id == entry_id).order_by(Run.id)))


def verifications_of(session: Session, entry_id: int, *, with_report: bool = True) -> list[Verification]:
    """Newest first; ``with_report=False`` leaves the stored report JSON unread (pages never show it)."""
    query = select(Verification).where(Verification.entry_id == entry_id).order_by(Verification.id.desc())
    if not with_report:
        query = query.options(defer(Verification.report))
    return list(session.scalars(query))


def entries_with_verifications(session: Session, track_id: int) -> list[Entry]:
    """Entries of a track that have at least one verification (what a rule change re-reads)."""
    has = select(Verification.id).where(Verification.entry_id == Entry.id).exists()
    return list(session.scalars(select(Entry).where(Entry.track_id == track_id, has).order_by(Entry.id)))


def verified_runs_since(session: Session, user_id: int, since: object) -> int:
    """GPU runs asked of the verifiers for ``user_id``'s requests since ``since`` (the weekly quota)."""
    total = session.scalar(
        select(func.coalesce(func.sum(Job.runs), 0)).where(Job.requested_by_id == user_id, Job.created_at >= since)
    )
    return int(total or 0)


def submission_by_key(session: Session, user_id: int, key: str) -> Submission | None:
    return session.scalar(select(Submission).where(Submission.user_id == user_id, Submission.idempotency_key == key))


def entry_of_submission(session: Session, submission_id: int) -> Entry | None:
    return session.scalar(select(Entry).where(Entry.submission_id == submission_id))


def board_points(session: Session, track_id: int) -> list[Entry]:
    return list(
        session.scalars(
            select(Entry)
            .where(Entry.track_id == track_id, Entry.status.in_(RANKED), Entry.hours.is_not(None))
            .order_by(Entry.record_date, Entry.id)
        )
    )


def claimed_run_count(session: Session, entry_id: int) -> int:
    return int(
        session.scalar(select(func.count(Run.id)).where(Run.entry_id == entry_id, Run.kind == RunKind.claimed)) or 0
    )


def insert_submission_once(
    session: Session, *, user_id: int, token_id: int, idempotency_key: str, body_sha256: str, body: dict[str, object]
) -> int | None:
    """Insert a submission unless (user, key) exists; its id, or None when another got there first.

    ``INSERT ... ON CONFLICT DO NOTHING``: on PostgreSQL a concurrent insert of the same key waits
    for the other transaction; on SQLite writers are serialized by the database lock.
    """
    values = {
        "user_id": user_id,
        "token_id": token_id,
        "idempotency_key": idempotency_key,
        "body_sha256": body_sha256,
        "body": body,
        "created_at": utcnow(),
    }
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        pg_stmt = pg_insert(Submission).values(**values).on_conflict_do_nothing().returning(Submission.id)
        return session.scalar(pg_stmt)
    lite_stmt = sqlite_insert(Submission).values(**values).on_conflict_do_nothing().returning(Submission.id)
    return session.scalar(lite_stmt)


def queue_rows(session: Session, statuses: Sequence[JobStatus] | None, limit: int) -> list[tuple[Job, Entry, str]]:
    stmt = (
        select(Job, Entry, Track.slug)
        .join(Entry, Entry.id == Job.entry_id)
        .join(Track, Track.id == Job.track_id)
        .where(IS_VERIFICATION)
        .order_by(
            # running first, then queued in the order workers take them (oldest first), then
            # finished, newest first
            (Job.status != JobStatus.running),
            (Job.status != JobStatus.queued),
            case((Job.status == JobStatus.queued, Job.id), else_=-Job.id),
        )
        .limit(limit)
    )
    if statuses:
        stmt = stmt.where(Job.status.in_(list(statuses)))
    return [(r[0], r[1], r[2]) for r in session.execute(stmt).all()]
