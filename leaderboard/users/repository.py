"""Queries on users and tokens."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from leaderboard.db import utcnow
from leaderboard.users.models import ApiToken, User, WebSession


def token_by_digest(session: Session, digest: str) -> tuple[ApiToken, User] | None:
    row = session.execute(
        select(ApiToken, User).join(User, User.id == ApiToken.user_id).where(ApiToken.token_sha256 == digest)
    ).first()
    return None if row is None else (row[0], row[1])


def user_by_name(session: Session, name: str) -> User | None:
    return session.scalar(select(User).where(User.name == name))


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.id)))


def token_by_id(session: Session, token_id: int) -> ApiToken | None:
    return session.get(ApiToken, token_id)


def tokens_of(session: Session, user_id: int) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.id)))


def end_sessions(session: Session, *, token_id: int | None = None, user_id: int | None = None) -> None:
    """End the open web sessions of a token or of a user."""
    stmt = update(WebSession).where(WebSession.ended_at.is_(None))
    if token_id is not None:
        stmt = stmt.where(WebSession.token_id == token_id)
    if user_id is not None:
        stmt = stmt.where(WebSession.user_id == user_id)
    session.execute(stmt.values(ended_at=utcnow()).execution_options(synchronize_session=False))
