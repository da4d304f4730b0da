"""API shape of audit events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from leaderboard.schemas import Schema


class AuditEventPublic(Schema):
    id: int
    actor_id: int | None
    actor_name: str | None = None
    action: str
    target_type: str
    target_id: str
    detail: dict[str, Any]
    created_at: datetime
