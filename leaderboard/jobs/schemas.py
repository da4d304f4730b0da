"""API shapes of the verification queue."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from leaderboard.jobs.models import JobStatus
from leaderboard.schemas import Schema
from leaderboard.urls import AbsoluteUrl


class JobPublic(Schema):
    id: int
    entry_id: int
    entry_title: str
    entry_url: AbsoluteUrl
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
    verdict: str | None = Field(
        default=None,
        description="the site's verdict on this job's verification, once done; 'awaiting_review': a fork's pass "
        "that is unranked until an admin approves its code",
    )
    verdict_p_value: float | None = Field(default=None, description="the p-value of that verification")
    duration_seconds: float | None = Field(default=None, description="started to finished, for a finished job")
    phase: str | None = Field(
        default=None,
        description="'preparing run 1/3', 'training run 2/3', 'scoring CORE, run 2/3', 'waiting for a worker'",
    )
    eta_seconds: float | None = Field(
        default=None, description="a running job: seconds left over all its runs (training and scoring)"
    )
    eta_basis: str | None = Field(default=None, description="what the ETA and the expected start were learned from")
    position: int | None = Field(default=None, description="a queued job: its place in its track's line (1 = next)")
    expected_start_at: datetime | None = Field(default=None, description="a queued job: when a worker should take it")


class QueuePublic(Schema):
    jobs: list[JobPublic]
    counts: dict[str, int]
    total: int


class WorkerPublic(Schema):
    """A worker account's standing in the queue, as admins see it."""

    user_id: int
    name: str
    abandoned: int = Field(description="leases abandoned or given back in a row (a completion resets it)")
    paused_at: datetime | None
    paused_reason: str | None
    last_worker_id: str | None
    last_seen_at: datetime | None
    active_leases: int
    leases: int = Field(description="leases ever taken")
    completed: int


class WorkerPause(Schema):
    reason: str = Field(default="", max_length=500)
