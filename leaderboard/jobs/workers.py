"""Worker accounts as admins see them: standing in the queue, pause and resume (audited)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from leaderboard.audit.service import record
from leaderboard.db import utcnow
from leaderboard.errors import NotFound
from leaderboard.jobs.leasing import active_leases
from leaderboard.jobs.models import LeaseOutcome, LeaseRecord, WorkerAccount
from leaderboard.jobs.schemas import WorkerPublic
from leaderboard.users import repository as users_repository
from leaderboard.users.models import User


def list_workers(session: Session) -> list[WorkerPublic]:
    """Every worker account that ever leased, paused ones first."""
    now = utcnow()
    totals = {
        int(uid): (int(n), int(done or 0))
        for uid, n, done in session.execute(
            select(
                LeaseRecord.user_id,
                func.count(LeaseRecord.id),
                func.sum(case((LeaseRecord.outcome == LeaseOutcome.completed, 1), else_=0)),
            )
            .where(LeaseRecord.user_id.is_not(None))
            .group_by(LeaseRecord.user_id)
        ).all()
    }
    rows = session.execute(
        select(WorkerAccount, User.name)
        .join(User, User.id == WorkerAccount.user_id)
        .order_by(WorkerAccount.paused_at.is_(None), WorkerAccount.user_id)
    ).all()
    return [_public(session, account, name, totals.get(account.user_id, (0, 0)), now) for account, name in rows]


def _public(
    session: Session, account: WorkerAccount, name: str, totals: tuple[int, int], now: datetime
) -> WorkerPublic:
    return WorkerPublic(
        user_id=account.user_id,
        name=name,
        abandoned=account.abandoned,
        paused_at=account.paused_at,
        paused_reason=account.paused_reason,
        last_worker_id=account.last_worker_id,
        last_seen_at=account.last_seen_at,
        active_leases=active_leases(session, account.user_id, now),
        leases=totals[0],
        completed=totals[1],
    )


def set_paused(session: Session, name: str, paused: bool, *, actor: User | None, reason: str = "") -> WorkerPublic:
    """Pause a worker account (it leases nothing until resumed) or resume it (its count restarts)."""
    user = users_repository.user_by_name(session, name)
    if user is None:
        raise NotFound(f"no user named {name!r}")
    account = session.get(WorkerAccount, user.id)
    if account is None:
        account = WorkerAccount(user_id=user.id, abandoned=0)
        session.add(account)
    if paused and account.paused_at is None:
        account.paused_at = utcnow()
        account.paused_reason = f"paused by an admin: {reason}" if reason else "paused by an admin"
        record(session, actor, "worker.pause", "user", user.id, name=name, reason=reason)
    elif not paused and account.paused_at is not None:
        account.paused_at, account.paused_reason, account.abandoned = None, None, 0
        record(session, actor, "worker.resume", "user", user.id, name=name, reason=reason)
    session.flush()
    return next(w for w in list_workers(session) if w.user_id == user.id)
