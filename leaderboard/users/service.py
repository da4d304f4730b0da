"""Users, API tokens and authentication.

Tokens are ``sr_`` + 43 random URL-safe characters; only their SHA-256 digest is stored, so a
token is shown once, when it is issued, and can never be read back.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from leaderboard.audit.models import AuditEvent
from leaderboard.audit.schemas import AuditEventPublic
from leaderboard.audit.service import record
from leaderboard.db import utcnow
from leaderboard.errors import Conflict, Forbidden, NotFound, Unauthorized
from leaderboard.users import repository
from leaderboard.users.models import ApiToken, Role, User
from leaderboard.users.schemas import TokenIssued, TokenPublic, UserCreate, UserPublic

TOKEN_PREFIX = "sr_"


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who is calling: the user and the token they used (rate limits count per token)."""

    user: User
    token_id: int


def authenticate_principal(session: Session, token: str | None) -> Principal:
    """The user and token behind ``token``; Unauthorized (401) when missing, unknown or revoked."""
    if not token:
        raise Unauthorized("an API token is required: send 'Authorization: Bearer <token>'", headers=_CHALLENGE)
    found = repository.token_by_digest(session, token_digest(token))
    if found is None:
        raise Unauthorized("invalid API token", headers=_CHALLENGE)
    api_token, user = found
    if user.disabled_at is not None:
        raise Unauthorized("this user is disabled", headers=_CHALLENGE)
    if api_token.revoked_at is not None:
        raise Unauthorized("this API token was revoked", headers=_CHALLENGE)
    return Principal(user=user, token_id=api_token.id)


def authenticate(session: Session, token: str | None) -> User:
    """The user a bearer token belongs to; Unauthorized (401) when it is missing or invalid."""
    return authenticate_principal(session, token).user


_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def require_role(user: User, *roles: Role) -> User:
    """``user`` when its role is one of ``roles``, else Forbidden (403)."""
    if user.role not in roles:
        wanted = " or ".join(r.value for r in roles)
        raise Forbidden(f"this action needs the role {wanted}; your token has the role {user.role.value}")
    return user


def create_user(session: Session, data: UserCreate, *, actor: User | None = None) -> TokenIssued:
    """Create a user and its first token (shown once in the reply)."""
    if repository.user_by_name(session, data.name) is not None:
        raise Conflict(f"a user named {data.name!r} exists already")
    user = User(name=data.name, role=data.role)
    session.add(user)
    session.flush()
    issued = issue_token(session, user, label=data.token_label)
    record(session, actor, "user.create", "user", user.id, name=user.name, role=user.role.value)
    return issued


def issue_token(session: Session, user: User, *, label: str = "") -> TokenIssued:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(user_id=user.id, token_sha256=token_digest(token), prefix=token[:10], label=label)
    session.add(row)
    session.flush()
    return TokenIssued(user=UserPublic.model_validate(user), token_id=row.id, token=token, prefix=row.prefix)


def issue_token_for(session: Session, name: str, *, label: str = "", actor: User | None = None) -> TokenIssued:
    user = repository.user_by_name(session, name)
    if user is None:
        raise NotFound(f"no user named {name!r}")
    issued = issue_token(session, user, label=label)
    record(session, actor, "token.issue", "user", user.id, token_id=issued.token_id)
    return issued


def list_users(session: Session) -> list[UserPublic]:
    return [UserPublic.model_validate(u) for u in repository.list_users(session)]


def _user_named(session: Session, name: str) -> User:
    user = repository.user_by_name(session, name)
    if user is None:
        raise NotFound(f"no user named {name!r}")
    return user


def list_tokens(session: Session, name: str) -> list[TokenPublic]:
    user = _user_named(session, name)
    return [TokenPublic.model_validate(t) for t in repository.tokens_of(session, user.id)]


def revoke_token(session: Session, token_id: int, *, actor: User | None, reason: str = "") -> TokenPublic:
    """Revoke one API token (audited): every request with it, and every web session signed in
    with it, is refused from the next request on. Revoking a revoked token changes nothing."""
    token = repository.token_by_id(session, token_id)
    if token is None:
        raise NotFound(f"no API token {token_id}")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        repository.end_sessions(session, token_id=token.id)
        session.flush()
        record(session, actor, "token.revoke", "token", token.id, user_id=token.user_id, reason=reason)
    return TokenPublic.model_validate(token)


def set_disabled(session: Session, name: str, disabled: bool, *, actor: User | None, reason: str = "") -> UserPublic:
    """Disable a user (all their tokens and sessions stop working at once) or enable them again; audited."""
    user = _user_named(session, name)
    if actor is not None and actor.id == user.id and disabled:
        raise Conflict("an admin cannot disable their own account")
    if disabled and user.disabled_at is None:
        user.disabled_at = utcnow()
        repository.end_sessions(session, user_id=user.id)
        record(session, actor, "user.disable", "user", user.id, name=user.name, reason=reason)
    elif not disabled and user.disabled_at is not None:
        user.disabled_at = None
        record(session, actor, "user.enable", "user", user.id, name=user.name, reason=reason)
    session.flush()
    return UserPublic.model_validate(user)


def list_audit_events(session: Session, *, limit: int = 100, offset: int = 0) -> list[AuditEventPublic]:
    """The audit log, newest first, each event with its actor's name."""
    rows = session.execute(
        select(AuditEvent, User.name)
        .outerjoin(User, User.id == AuditEvent.actor_id)
        .order_by(AuditEvent.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    out = []
    for event, name in rows:
        item = AuditEventPublic.model_validate(event)
        out.append(item.model_copy(update={"actor_name": name}))
    return out
