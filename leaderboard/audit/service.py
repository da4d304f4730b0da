"""Recording audit events: services call ``record`` inside their transaction. Reading them with the
actors' names is ``users.service.list_audit_events``."""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy.orm import Session

from leaderboard.audit.models import AuditEvent


class Actor(Protocol):
    """Who acted: a user; the CLI's admin is unsaved and audited without an id."""

    @property
    def id(self) -> int | None: ...


def record(
    session: Session, actor: Actor | None, action: str, target_type: str, target_id: object, **detail: Any
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
