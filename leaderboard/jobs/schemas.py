"""API shapes of the verification queue."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from leaderboard.jobs.models import JobStatus
from leaderboard.schemas import Schema


class JobPublic(Schema):
    id: int
    entry_id: int
    entry_title: str
    entry_url: str
    track: str
    status: JobStatus
    reason: str
    runs: int
    attempts: int
    max_attempts: int
    failure_reason: str | None
    progress: dict[str, Any] | None
    lease_owner: str | None
    lease_expires_at: datetime | None
    heartbeat_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class QueuePublic(Schema):
    jobs: list[JobPublic]
    counts: dict[str, int]
    total: int
