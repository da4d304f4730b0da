"""Server-side web sessions: the browser's cookie holds a random session id, never an API token.

Signing in with an API token creates a row keyed by the SHA-256 of a fresh random id; the id goes
into the (signed, ``HttpOnly``) cookie. Every request looks the row up: signing out, revoking the
token it was opened with or disabling the user ends it, so a replayed cookie signs in no one.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import bindparam, delete, or_, select
from sqlalchemy.orm import Session

from leaderboard.db import utcnow
from leaderboard.readers import DedicatedReader
from leaderboard.users.models import ApiToken, User, WebSession
from leaderboard.users.service import Principal, token_digest

SESSION_ID_PREFIX = "ss_"


def start_session(session: Session, principal: Principal, *, ttl_seconds: int) -> str:
    """Open a session for ``principal``; returns the new session id (goes into the cookie only)."""
    sid = SESSION_ID_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    # the user's dead sessions (signed out, ended by a revocation, expired) are of no use any more
    session.execute(
        delete(WebSession).where(
            WebSession.user_id == principal.user.id,
            or_(WebSession.ended_at.is_not(None), WebSession.expires_at <= now),
        )
    )
    session.add(
        WebSession(
            sid_sha256=token_digest(sid),
            user_id=principal.user.id,
            token_id=principal.token_id,
            created_at=now,
            expires_at=now + timedelta(seconds=ttl_seconds),
        )
    )
    session.flush()
    return sid


def session_principal(session: Session, sid: str | None) -> Principal | None:
    """Who the session ``sid`` signs in: None when it is unknown, ended or expired, or when its
    token was revoked or its user disabled since."""
    if not sid or not sid.startswith(SESSION_ID_PREFIX) or len(sid) > 100:
        return None
    row = session.execute(
        select(WebSession, ApiToken, User)
        .join(ApiToken, ApiToken.id == WebSession.token_id)
        .join(User, User.id == WebSession.user_id)
        .where(WebSession.sid_sha256 == token_digest(sid))
    ).first()
    if row is None:
        return None
    web, token, user = row[0], row[1], row[2]
    if web.ended_at is not None or web.expires_at <= utcnow():
        return None
    if token.revoked_at is not None or user.disabled_at is not None:
        return None
    return Principal(user=user, token_id=token.id)


def end_session(session: Session, sid: str | None) -> bool:
    """Sign out: the session ends for good (True when an open one was ended)."""
    if not sid:
        return False
    web = session.scalar(select(WebSession).where(WebSession.sid_sha256 == token_digest(sid)))
    if web is None or web.ended_at is not None:
        return False
    web.ended_at = utcnow()
    session.flush()
    return True


@dataclass(frozen=True)
class SessionUser:
    """Who an open web session signs in, as the pages' fast path needs it (``web.pages.common``)."""

    id: int
    name: str
    role: str


# the same checks as ``session_principal``, in one indexed read (``sid_sha256`` is unique)
_WHO = (
    select(
        User.id,
        User.name,
        User.role,
        User.disabled_at,
        WebSession.ended_at,
        WebSession.expires_at,
        ApiToken.revoked_at,
    )
    .select_from(WebSession)
    .join(ApiToken, ApiToken.id == WebSession.token_id)
    .join(User, User.id == WebSession.user_id)
    .where(WebSession.sid_sha256 == bindparam("digest"))
)


class SessionReader(DedicatedReader):
    """Reads who a web session signs in on one dedicated autocommit connection, without a Session
    (``leaderboard.readers``), for the event loop's fast path of signed-in pages: every request
    still looks its session up (sign-out, a revoked token or a disabled user stop it on the next
    request, in every process), as one indexed read of one row."""

    def read(self, sid: str | None) -> SessionUser | None:
        """The user the session ``sid`` signs in now; None when it is unknown, ended or expired,
        or when its token was revoked or its user disabled."""
        if not sid or not sid.startswith(SESSION_ID_PREFIX) or len(sid) > 100:
            return None
        row = self._query(lambda conn: conn.execute(_WHO, {"digest": token_digest(sid)}).first())
        if row is None:
            return None
        user_id, name, role, disabled_at, ended_at, expires_at, revoked_at = row
        if ended_at is not None or expires_at <= utcnow() or revoked_at is not None or disabled_at is not None:
            return None
        return SessionUser(id=int(user_id), name=str(name), role=str(role))
