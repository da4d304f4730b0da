"""Recording and reading audit events (services call ``record`` inside their transaction)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from leaderboard.audit.models import AuditEvent
from leaderboard.audit.schemas import AuditEventPublic
from leaderboard.users.models import User


def record(
    session: Session, actor: User | None, action: str, target_type: str, target_id: object, **detail: Any
) -> AuditEvent:
    event = AuditEvent(
        actor_id=None if actor is None else actor.id,
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        detail=detail,
    )
    session.add(event)
    session.flush()
    return event


def list_events(session: Session, *, limit: int = 100, offset: int = 0) -> list[AuditEventPublic]:
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
